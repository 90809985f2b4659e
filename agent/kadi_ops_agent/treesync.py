"""Makes a live tree exactly a set's tree: what restore does with STORAGE_PATH and MISC_UPLOADS_PATH.

One walk of both trees side by side, directory by directory, in name order: what the live tree has
and the set does not is removed; what differs (a type, or a file's size or modification time, the
check rsync makes; with `content`, also a file's bytes, as rsync --checksum) is copied from the set into a temporary name beside it and renamed over it, so a
live file is always either the old one or the whole new one; everything ends with the guide's modes
(directories 750, files 640), the live tree's group and, run as root, its owner. Run as the Kadi user,
entries of another owner cannot be given back: they are counted and named for a root chown; an entry
the set does not hold that it may not remove is left, counted and named, and the sync goes on. The
top's lost+found of root's (a tree that is a file system's root) is the file system's: left alone.

This replaces `rsync -a --delete` followed by find walks for owner, group and modes: the same work
in one process that reads each directory of each side once (rsync's two processes build and send
a file list first; the walks after it read the whole live tree again, each).

Never follows a symbolic link of the live tree: a link is an entry like any other, replaced or
removed as a link, and a directory is entered only when it is one. Interrupted, it is completed by
running it again (a temporary file left behind is not in the set, so it is removed then).

Below the top directory the work is shared by processes of their own (tree-sync-part, see parts.py),
one per CPU, each taking the top's subdirectories whose name's path_key falls to it: with small
files the work is per entry (two stats, a few syscalls), which one Python process does at about
rsync's speed; side by side they do it in less. A tree of fewer than IN_PROCESS entries is synced in
tree-sync's own process (starting the others would cost more than they save). A directory's times
are set to the set's only where they differ or something in it was changed.

Usage: tree-sync NAME SET_TREE LIVE_TREE UID GID ENTRIES RESULT [content]
  UID GID: the live tree's owner and group (numbers: the live root's, as restore read them)
  ENTRIES: the set tree's entry count for progress (0: unknown)
  content: a live file of the set's size and time is also read and compared with the set's, byte by
    byte, and copied over when they differ (what a failing disk leaves: other bytes, same size and
    time); every file of both trees is read, so it costs a read of both
Prints progress lines and `NAME: N entries checked, C files copied (B bytes), D removed, A attributes
set`; writes the counts, the entries of another owner or group it could not change, those it could
not remove and the files whose content alone differed, to RESULT (JSON) for the restore to report.
"""
import errno
import json
import os
import re
import secrets
import stat

from . import parts
from .common import Progress, is_fs_lost_found, one_line, user_of
from .verify_quick import Below, NotInSet, _check_entry, descend, path_key

USAGE = 'usage: tree-sync NAME SET_TREE LIVE_TREE UID GID ENTRIES RESULT [content]'
PART_USAGE = 'usage: tree-sync-part NAME SET_TREE LIVE_TREE UID GID K N SET_FD LIVE_FD [content]'
CHUNK = 1 << 20
IN_PROCESS = 5000
TMP = '.kadi-ops-restore-'
DIR_MODE, FILE_MODE = 0o750, 0o640


# Directories are opened by name in their parent's descriptor, never through a link (O_NOFOLLOW),
# and every change is made relative to the directory it is in: a directory of the live tree that
# something replaced with a link while the sync ran is an error, never a way out of the tree (the
# sync may run as root, and the live tree is writable by the Kadi user).
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Descriptors are held per level (two while syncing, one while removing): deeper trees than this
# fail with a message naming them (Kadi's are 4 deep); the open-files limit is raised to allow it.
MAX_DEPTH = 2000


class SyncError(Exception):
    pass


def _is_dir(e):
    return e.is_dir(follow_symlinks=False)


def _named(e, where):
    """E (an OSError about a name in the directory WHERE) naming the whole path."""
    if isinstance(e.filename, str) and not e.filename.startswith('/'):
        return OSError(e.errno, e.strerror, where + '/' + e.filename)
    return e


class Sync:
    def __init__(self, name, src, dst, uid, gid, progress, warn=None, content=False):
        self.name, self.src, self.dst = name, src, dst
        self.content = content
        self.root = os.geteuid() == 0
        self.uid, self.gid = uid, gid
        self.progress = progress
        self.warn = warn or (lambda text: print(text, flush=True))
        self.checked = self.copied = self.copied_bytes = self.removed = self.attrs = 0
        self.writes = 0  # entries made, replaced or removed: a directory's time changed
        self.other_owner = []  # the first few live entries of another owner (not root)
        self.other_owner_n = 0
        self.group_failed = 0
        self.left = []  # the first few live entries the set does not hold that could not be removed
        self.left_n = 0
        self.linked = 0  # (own_tree, as root) files with other names, left as they are
        self.compared = 0  # (content) files read on both sides
        self.differed = []  # (content) the first few live files whose bytes alone differed
        self.differed_n = 0
        self.unread = []  # (content) the first few live files that could not be read to compare
        self.unread_n = 0
        self.mounts = None  # the system's mount points, read when a directory is first removed
        self.mounted = []  # the first few mount points the set does not hold, left with what is on them
        self.mounted_n = 0

    # --- attributes -------------------------------------------------------------------------------

    def _own(self, dfd, name, path, st, mode):
        """The guide's mode, the group and (as root) the owner of NAME in the directory DFD (NAME
        None: DFD itself; PATH names it), each set only where it differs. A directory keeps its
        set-group-ID bit (a kadi:www-data tree may rely on it for the group of files Kadi creates;
        chmod 750 by GNU chmod kept it too). Run as the Kadi user, an entry of another owner is
        counted for a root chown and left as it is: its mode and group cannot be changed by this
        user, and trying would end the restore half done."""
        if mode is not None and stat.S_ISDIR(st.st_mode):
            mode |= st.st_mode & stat.S_ISGID
        uid = st.st_uid != self.uid
        if uid and not self.root:
            self.other_owner_n += 1
            if len(self.other_owner) < 5: self.other_owner.append(path)
            if st.st_uid != os.geteuid():
                return
            uid = False
        gid = st.st_gid != self.gid
        mode = mode if mode is not None and stat.S_IMODE(st.st_mode) != mode else None
        if not (uid or gid or mode is not None):
            return
        if name is None:
            self._set(dfd, path, uid, gid, mode, None)
        elif self.root and not stat.S_ISLNK(st.st_mode):
            # As root, through a descriptor of the very entry that was read: a link, or another
            # file linked in under its name since, is never what is changed.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
            try:
                fst = os.fstat(fd)
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                    raise SyncError('%s was replaced while the restore ran' % path)
                self._set(fd, path, uid, gid, mode, None)
            finally:
                os.close(fd)
        else:
            # A link (owner and group only; they are the link's own), or run as the Kadi user: by
            # name in its directory (a link put in its place could only lead to what that user may
            # change anyway).
            self._set(name, path, uid, gid, mode, dfd)
        self.attrs += 1

    def _set(self, it, path, uid, gid, mode, dfd):
        at = {} if dfd is None else {'dir_fd': dfd, 'follow_symlinks': False}
        if uid:
            os.chown(it, self.uid, -1, **at)
        if gid:
            try:
                os.chown(it, -1, self.gid, **at)
            except PermissionError:
                self.group_failed += 1
        if mode is not None:
            if dfd is None: os.chmod(it, mode)
            else: os.chmod(it, mode, dir_fd=dfd)

    # --- entries ----------------------------------------------------------------------------------

    def _remove(self, dfd, e, where):
        """Removes the live entry E of the directory DFD (WHERE), a directory with all below it (an
        explicit stack, one descriptor per level: any depth up to MAX_DEPTH, no recursion)."""
        if not _is_dir(e):
            os.unlink(e.name, dir_fd=dfd)
            self.removed += 1
            self.writes += 1
            return
        stack = []  # [parent fd, name, its path, own fd, entries left, a mount point is kept below it]
        try:
            self._opened(stack, dfd, e, where + '/' + e.name)
            while stack:
                frame = stack[-1]
                x = next(frame[4], None)
                if x is None:
                    stack.pop()
                    os.close(frame[3])
                    if frame[5]:
                        # A mount point below it is kept: so is it, and so is each directory above it.
                        if stack: stack[-1][5] = True
                        continue
                    try:
                        os.rmdir(frame[1], dir_fd=frame[0])
                    except OSError as err:
                        raise OSError(err.errno, err.strerror, frame[2])
                    self.removed += 1
                elif _is_dir(x):
                    if len(stack) >= MAX_DEPTH:
                        raise SyncError('%s/%s is more than %d directories deep' % (frame[2], x.name, MAX_DEPTH))
                    try:
                        self._opened(stack, frame[3], x, frame[2] + '/' + x.name)
                    except OSError as err:
                        if err.errno != errno.EBUSY:
                            raise
                        self._mount_left(frame[2] + '/' + x.name)
                        frame[5] = True
                else:
                    try:
                        os.unlink(x.name, dir_fd=frame[3])
                    except OSError as err:
                        raise OSError(err.errno, err.strerror, frame[2] + '/' + x.name)
                    self.removed += 1
        finally:
            for frame in stack: os.close(frame[3])
        self.writes += 1

    def _mounts(self):
        if self.mounts is None:
            self.mounts = _mount_points()
        return self.mounts

    def _mount_left(self, path):
        # A mount point (or another device's root: a btrfs subvolume) the set does not hold: left on
        # purpose, with what is on it.
        self.mounted_n += 1
        if len(self.mounted) < 5: self.mounted.append(one_line(path))

    def _remove_extra(self, dfd, e, where):
        """Removes the live entry E the set does not hold. Run as the Kadi user, one it may not remove
        (a directory of root's in it, one without write permission for it) is left as it is,
        counted and named: the instance's own files are not in it (no record of the set names it),
        and stopping there would leave the rest of the tree half restored, worse than a leftover.
        So is, for any user, a mount point in it, with what is mounted there."""
        try:
            self._remove(dfd, e, where)
        except OSError as err:
            if not (err.errno == errno.EBUSY or isinstance(err, PermissionError) and not self.root):
                raise
            path = one_line(_named(err, where).filename or where + '/' + e.name)
            if err.errno == errno.EBUSY:
                self._mount_left(path)
            else:
                self.left_n += 1
                if len(self.left) < 5: self.left.append('%s (%s)' % (path, err.strerror or err))
            self.writes += 1  # what could go below it did: its directory's time changed

    def _opened(self, stack, pfd, e, path):
        # A directory to empty, opened without following a link; one without permissions for its
        # owner (the Kadi user) is given them first. As root none are needed. One that a file system
        # is mounted on (another device, or a bind mount of this one) is not emptied: what is on
        # that file system is not in this set, and may be anything.
        try:
            st = e.stat(follow_symlinks=False)
            if st.st_dev != os.fstat(pfd).st_dev or path in self._mounts():
                raise OSError(errno.EBUSY, 'another file system (a mount point) is there; left as it is')
            if not self.root:
                if st.st_mode & 0o700 != 0o700 and st.st_uid == os.geteuid():
                    os.chmod(e.name, 0o700, dir_fd=pfd)
            fd = os.open(e.name, O_DIR, dir_fd=pfd)
        except OSError as err:
            raise OSError(err.errno, err.strerror, path)
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as err:
            os.close(fd)
            raise OSError(err.errno, err.strerror, path)
        stack.append([pfd, e.name, path, fd, iter(entries), False])

    def _copy(self, sfd, name, st, dfd, taken, where):
        """The set's file NAME (in SFD) into the live directory DFD through a temporary name: a short
        random one (any name fits NAME_MAX) that is neither in the set's directory (TAKEN) nor on
        disk. One left behind by an interrupted run is not in the set: the next run removes it."""
        while True:
            tmp = TMP + secrets.token_hex(8)
            if tmp in taken: continue
            try:
                fo = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
                break
            except FileExistsError:
                continue
        try:
            try:
                try:
                    fi = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
                except OSError as e:
                    raise _named(e, self.src + where)
                try:
                    _sendfile(fi, fo, st.st_size)
                finally:
                    os.close(fi)
                try:
                    os.fchown(fo, self.uid if self.root else -1, self.gid)
                except PermissionError:
                    self.group_failed += 1
                os.fchmod(fo, FILE_MODE)
                os.utime(fo, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fo)
            try:
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except OSError as e:
                raise OSError(e.errno, e.strerror, self.dst + where + '/' + name)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)  # a full disk, a cancel: no half file left behind
            except OSError:
                pass
            raise
        self.copied += 1
        self.copied_bytes += st.st_size
        self.writes += 1

    def _same_content(self, sfd, dfd, name, st, lst, where):
        """Whether the live file NAME (in DFD, stat LST) holds the set's bytes (NAME in SFD, stat
        ST), read side by side and compared as they are read: the first difference ends it. A live
        file replaced since it was listed counts as different (it is copied over); so does one that
        cannot be read (another owner's, an I/O error of a failing disk), named apart: the set's
        copy replaces it. An error reading the set's file ends the restore, naming it."""
        self.compared += 1
        if (st.st_dev, st.st_ino) == (lst.st_dev, lst.st_ino):
            return True
        set_path, live_path = self.src + where + '/' + name, self.dst + where + '/' + name
        try:
            fi = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
        except OSError as e:
            raise OSError(e.errno, e.strerror, set_path)
        try:
            try:
                fl = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as e:
                return self._unread(live_path, e)
            try:
                fst = os.fstat(fl)
                if (fst.st_dev, fst.st_ino) != (lst.st_dev, lst.st_ino):
                    return False
                while True:
                    try:
                        a = _read_full(fi, CHUNK)
                    except OSError as e:
                        raise OSError(e.errno, e.strerror, set_path)
                    try:
                        b = _read_full(fl, CHUNK)
                    except OSError as e:
                        return self._unread(live_path, e)
                    if a != b:
                        break
                    if not a:
                        return True
            finally:
                os.close(fl)
        finally:
            os.close(fi)
        self.differed_n += 1
        if len(self.differed) < 5: self.differed.append(live_path)
        return False

    def _unread(self, path, e):
        self.unread_n += 1
        if len(self.unread) < 5: self.unread.append('%s (%s)' % (path, e.strerror or e))
        return False

    # --- the walk ---------------------------------------------------------------------------------

    def top(self):
        """Opens both tops (each may be reached through a link: STORAGE_PATH may be one) and does the
        top's own entries: its subdirectories to walk, and what leave() needs."""
        try:
            self.sfd = os.open(self.src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise SyncError('the set\'s %s cannot be read: %s' % (self.src, e.strerror or e))
        try:
            self.dfd = self._open_top()
        except NotADirectoryError:
            raise SyncError('%s is not a directory' % self.dst)
        except OSError as e:
            raise SyncError('%s cannot be opened: %s' % (self.dst, e.strerror or e))
        root_st, live_st = os.stat(self.sfd), os.stat(self.dfd)
        self._own(self.dfd, None, self.dst, live_st, DIR_MODE)
        subs, wrote = self._dir(self.sfd, self.dfd, '')
        return subs, (self.dfd, root_st, wrote or live_st.st_mtime_ns != root_st.st_mtime_ns, self.dst)

    def _open_top(self):
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            return os.open(self.dst, flags)
        except PermissionError:
            # The Kadi user's own top without permissions for its owner: given them, as below it.
            if self.root or os.stat(self.dst).st_uid != os.geteuid():
                raise
            os.chmod(self.dst, DIR_MODE)
            return os.open(self.dst, flags)

    def share(self, sfd, dfd, k, n):
        """The top's subdirectories of tree-sync-part K of N, in the tops tree-sync opened and handed
        down as SFD and DFD (never opened again by their paths: something may have been put in
        their place since), which top() made and owned."""
        for fd, what in ((sfd, self.src), (dfd, self.dst)):
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise SyncError('descriptor %d for %s is not a directory' % (fd, what))
        # Each part reads the tops through descriptors of its own ("." in the handed-down ones: the
        # same directories): an inherited descriptor shares its read position with every process
        # that holds it, and parts listing the top side by side through it each saw only some of
        # its entries.
        self.sfd, self.dfd = (os.open('.', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd) for fd in (sfd, dfd))
        subs = []
        try:
            with os.scandir(self.sfd) as it:
                for e in it:
                    if _is_dir(e) and path_key(e.name) % n == k:
                        subs.append((e.name, e.stat(follow_symlinks=False)))
        except OSError as e:
            raise OSError(e.errno, e.strerror, self.src)
        out = []
        for name, st in sorted(subs):
            try:
                out.append((name, st, os.stat(name, dir_fd=self.dfd, follow_symlinks=False).st_mtime_ns))
            except OSError as e:
                raise OSError(e.errno, e.strerror, self.dst + '/' + name)
        return out

    def walk(self, subs):
        """The trees below the top's subdirectories SUBS ([(name, set stat, live mtime)]), depth
        first in name order, each directory held open on both sides while it and what is below it
        are done; then its times."""
        stack = [(self.sfd, self.dfd, '', iter(subs), None)]
        try:
            while stack:
                sfd, dfd, rel, it, leave = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    if leave is not None:
                        try:
                            self.leave(dfd, *leave)
                        finally:
                            os.close(sfd); os.close(dfd)
                    continue
                name, st, live_mtime = nxt
                crel = rel + '/' + name
                if len(stack) > MAX_DEPTH:
                    raise SyncError('%s%s is more than %d directories deep' % (self.src, crel, MAX_DEPTH))
                try:
                    csfd = os.open(name, O_DIR, dir_fd=sfd)
                except OSError as e:
                    raise _named(e, self.src + rel)
                try:
                    cdfd = os.open(name, O_DIR, dir_fd=dfd)
                except OSError as e:
                    os.close(csfd)
                    raise _named(e, self.dst + rel)
                stack.append((csfd, cdfd, crel, iter(()), None))  # closed below on an error
                below, wrote = self._dir(csfd, cdfd, crel)
                stack[-1] = (csfd, cdfd, crel, iter(below), (st, wrote or live_mtime != st.st_mtime_ns, self.dst + crel))
        finally:
            for sfd, dfd, _, _, leave in stack[1:]:
                os.close(sfd); os.close(dfd)

    def leave(self, dfd, st, differs, path):
        # The set's times, where they differ or writing into the directory changed them. Run as
        # the Kadi user, a directory of another owner (counted for a root chown) keeps its own.
        if not differs:
            return
        try:
            os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
        except PermissionError as e:
            if self.root or os.fstat(dfd).st_uid == os.geteuid():
                raise OSError(e.errno, e.strerror, path)
        except OSError as e:
            raise OSError(e.errno, e.strerror, path)

    def counts(self):
        return {'checked': self.checked, 'copied': self.copied, 'copiedBytes': self.copied_bytes, 'removed': self.removed,
                'attrs': self.attrs, 'otherOwner': self.other_owner_n, 'otherOwnerFirst': self.other_owner,
                'groupFailed': self.group_failed, 'notRemoved': self.left_n, 'notRemovedFirst': self.left,
                'compared': self.compared, 'contentDiffered': self.differed_n, 'contentDifferedFirst': self.differed,
                'unreadLive': self.unread_n, 'unreadLiveFirst': self.unread,
                'mountsLeft': self.mounted_n, 'mountsLeftFirst': self.mounted}

    def add(self, c):
        """Counts of a tree-sync-part."""
        self.checked += c['checked']; self.copied += c['copied']; self.copied_bytes += c['copiedBytes']
        self.removed += c['removed']; self.attrs += c['attrs']; self.group_failed += c['groupFailed']
        self.other_owner_n += c['otherOwner']
        self.other_owner = (self.other_owner + c['otherOwnerFirst'])[:5]
        self.left_n += c['notRemoved']
        self.left = (self.left + c['notRemovedFirst'])[:5]
        self.compared += c['compared']
        self.differed_n += c['contentDiffered']
        self.differed = (self.differed + c['contentDifferedFirst'])[:5]
        self.unread_n += c['unreadLive']
        self.unread = (self.unread + c['unreadLiveFirst'])[:5]
        self.mounted_n += c.get('mountsLeft', 0)
        self.mounted = (self.mounted + c.get('mountsLeftFirst', []))[:5]

    def _dir(self, sfd, dfd, rel):
        """One directory of both sides (REL, open as SFD and DFD): its subdirectories to enter
        [(name, set stat, live mtime)], and whether an entry of it was made, replaced or removed."""
        sdir, ddir = self.src + rel, self.dst + rel
        try:
            with os.scandir(sfd) as it:
                S = {e.name: e for e in it}
        except OSError as e:
            raise OSError(e.errno, e.strerror, sdir)
        try:
            return self._entries(sfd, dfd, rel, S)
        except OSError as e:
            raise _named(e, ddir)

    def _entries(self, sfd, dfd, rel, S):
        writes = self.writes
        ddir = self.dst + rel
        try:
            with os.scandir(dfd) as it:
                L = {e.name: e for e in it}
        except OSError as e:
            raise OSError(e.errno, e.strerror, ddir)
        for name in sorted(L.keys() - S.keys()):
            e = L[name]
            if not rel:
                try:
                    lst = e.stat(follow_symlinks=False)
                except FileNotFoundError:  # gone since the directory was read
                    continue
                if is_fs_lost_found(name, lst.st_mode, lst.st_uid):
                    continue  # the file system's, not the instance's: never in a set, never removed
            self._remove_extra(dfd, e, ddir)
        subs = []
        for name in sorted(S):
            e, l = S[name], L.get(name)
            self.checked += 1
            self.progress.add(1)
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as x:
                raise _named(x, self.src + rel)
            if l is not None:
                try:
                    l.stat(follow_symlinks=False)
                except FileNotFoundError:  # gone since the directory was read
                    l = None
            if stat.S_ISDIR(st.st_mode):
                if l is not None and not _is_dir(l):
                    self._remove(dfd, l, ddir); l = None
                if l is None:
                    os.mkdir(name, DIR_MODE, dir_fd=dfd)
                    self.writes += 1
                    lst = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                else:
                    lst = l.stat(follow_symlinks=False)
                self._own(dfd, name, ddir + '/' + name, lst, DIR_MODE)
                subs.append((name, st, lst.st_mtime_ns))
            elif stat.S_ISREG(st.st_mode):
                if l is not None:
                    lst = l.stat(follow_symlinks=False)
                    # As root, a file with other names is copied over (breaking the link) rather than
                    # given the Kadi user: one of them may be outside the tree.
                    if stat.S_ISREG(lst.st_mode) and lst.st_size == st.st_size and _same_time(lst.st_mtime_ns, st.st_mtime_ns) \
                            and (lst.st_nlink == 1 or not self.root) \
                            and (not self.content or self._same_content(sfd, dfd, name, st, lst, rel)):
                        self._own(dfd, name, ddir + '/' + name, lst, FILE_MODE)
                        continue
                    if stat.S_ISDIR(lst.st_mode):
                        self._remove(dfd, l, ddir)
                self._copy(sfd, name, st, dfd, S, rel)
            elif stat.S_ISLNK(st.st_mode):
                try:
                    link = os.readlink(name, dir_fd=sfd)
                except OSError as x:
                    raise _named(x, self.src + rel)
                if l is not None:
                    if l.is_symlink() and os.readlink(name, dir_fd=dfd) == link:
                        self._own(dfd, name, ddir + '/' + name, l.stat(follow_symlinks=False), None)
                        continue
                    self._remove(dfd, l, ddir)
                os.symlink(link, name, dir_fd=dfd)
                self.writes += 1
                self._own(dfd, name, ddir + '/' + name, os.stat(name, dir_fd=dfd, follow_symlinks=False), None)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
            else:
                self.warn('WARNING: %s: skipping special file %s in the set' % (self.name, one_line(rel + '/' + name)))
        return subs, self.writes != writes

    def summary(self):
        return '%s: %d entries checked, %d files copied (%d bytes), %d removed, %d attributes set%s' % (
            self.name, self.checked, self.copied, self.copied_bytes, self.removed, self.attrs,
            ', %d files compared by content (%d differed)' % (self.compared, self.differed_n) if self.content else '')


class LiveDirs:
    """Whether tree-sync, run as this user, can write every directory of the live tree LIVE that the
    set also has: the restore's files step runs after its database step committed, and a directory
    it cannot enter or write into (root's, a file system mounted read-only or as root's inside the
    tree) would fail it there, half done. see(DIR) takes the set's directories in walk order; each
    live one is opened by an O_PATH chain that never follows a link (verify_quick.descend), once.
    One this user owns passes (the sync gives it 750 before it enters), unless its file system is
    read-only; one of another owner passes where read, write and search are allowed to this user.
    A live directory missing, or of another kind, is made by the sync in its parent: only the
    parent matters. One that cannot be opened for want of search permission on its parent: another
    owner's parent was counted when judged; this user's own parent is counted then, what is below
    it being unknown. Extra live entries are not looked at: one the sync may not remove is left and
    named, not a failure. A file system's read-only flag is asked once per mount: a directory that
    is a mount point (another device, or a bind mount of this one) is asked anew."""

    O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self, live, keep=5):
        self.live, self.keep = live, keep
        self.me = os.geteuid()
        self.n, self.found = 0, []
        self.paths, self.fds, self.absent = [], [], None
        self.read_only = {}  # (mount point or None, st_dev): mounted read-only
        self.mounts = _mount_points()
        self.unsearched = set()  # the directories below which nothing could be opened, said once each
        self.root = os.open(live, self.O_PATH_DIR & ~os.O_NOFOLLOW)  # the top may be a link (STORAGE_PATH often is)
        self._judge(self.root, None, os.fstat(self.root), '')

    def _judge(self, fd, name_in, st, rel):
        path = self.live + ('/' + rel if rel else '')
        if st.st_uid == self.me or self.me == 0:
            # Its own (or root): only a read-only mount stops it, asked once per mount.
            key = (self._mount_of(path), st.st_dev)
            ro = self.read_only.get(key)
            if ro is None:
                ro = self.read_only[key] = bool(os.statvfs(fd).f_flag & os.ST_RDONLY)
            if not ro:
                return
            why = 'on a read-only file system'
        else:
            if name_in is None:
                ok = os.access(path, os.R_OK | os.W_OK | os.X_OK)
            else:
                ok = os.access(name_in[1], os.R_OK | os.W_OK | os.X_OK, dir_fd=name_in[0], follow_symlinks=False)
            if ok:
                return
            why = 'owner %s, mode %o' % (user_of(st.st_uid), stat.S_IMODE(st.st_mode))
        self._count(path, why)

    def _count(self, path, why):
        self.n += 1
        if len(self.found) < self.keep:
            self.found.append('%s (%s)' % (one_line(path), why))

    def _unsearchable(self, parent_fd, rel):
        path = self.live + ('/' + rel if rel else '')
        st = os.fstat(parent_fd)
        if path in self.unsearched or st.st_uid != self.me and self.me != 0 and not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return  # said already here, or counted when judged (another owner's this user may not write)
        self.unsearched.add(path)  # few: each is a directory nothing below which could be opened
        self._count(path, 'yours, mode %o: what is below it cannot be checked; chmod 750 it' % stat.S_IMODE(st.st_mode)
                    if st.st_uid == self.me else 'owner %s, mode %o: what is below it cannot be searched' % (
                        user_of(st.st_uid), stat.S_IMODE(st.st_mode)))

    def _mount_of(self, path):
        """The nearest mount point at or above PATH, up to the live top (None: the top's own mount)."""
        while len(path) > len(self.live):
            if path in self.mounts:
                return path
            path = path.rpartition('/')[0]
        return path if path in self.mounts else None

    def see(self, d):
        if self.absent is not None and (d == self.absent or d.startswith(self.absent + '/')):
            return  # below a directory the sync makes: nothing there to check
        self.absent = None

        def one(parent, name, at):
            try:
                fd = os.open(name, self.O_PATH_DIR, dir_fd=parent)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise _Absent(at)
                if e.errno == errno.EACCES:
                    # Its parent may not be searched. Another owner's was counted when judged; this
                    # user's own (the sync would give it 750 and enter it) hides what is below it,
                    # which could not be checked: said, with what to run; so does a parent that
                    # passed its judging (a security module's denial). Nothing below is looked at.
                    self._unsearchable(parent, at.rpartition('/')[0])
                    raise _Absent(at)
                raise OSError(e.errno, e.strerror, self.live + '/' + at)
            try:
                self._judge(fd, (parent, name), os.fstat(fd), at)
            except BaseException:
                os.close(fd)
                raise
            return fd
        try:
            descend(self.paths, self.fds, self.root, d, one)
        except _Absent as e:
            self.absent = e.args[0]

    def mounted_over(self, set_root, keep=5):
        """The mount points inside the live tree where the set's tree SET_ROOT has a file or a link:
        the sync would have to replace them (a rename over, or an rmdir of, a mount point fails with
        EBUSY), after the database step. (count, the first KEEP as 'PATH (what the set has)')."""
        top = os.path.realpath(self.live)
        n, found = 0, []
        for m in sorted(self.mounts):
            if not m.startswith(top + '/'):
                continue
            try:
                st = os.lstat(os.path.join(set_root, m[len(top) + 1:]))
            except OSError:
                continue  # not in the set (left as it is, and named, by the sync) or below a file of it
            if not stat.S_ISDIR(st.st_mode):
                n += 1
                if len(found) < keep:
                    found.append('%s (the set has %s there)' % (one_line(m), 'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'a file'))
        return n, found

    def close(self):
        for fd in self.fds: os.close(fd)
        os.close(self.root)
        self.paths, self.fds = [], []


class _Absent(Exception):
    """A directory of the set the live tree does not have as one: the sync makes it."""


def check_set(name, root, listing, record=None, keep=5, live=None):
    """Whether the set's tree ROOT is what its file list LISTING (and RECORD, its directories and
    links, where the set has one) says, as far as a sync would carry it into the live tree: read
    below ROOT's descriptor, every directory on a listed path opened relative to its parent without
    following a link (verify_quick.Below), every listed file a regular file there, every recorded
    directory a directory and link a link to its target. The sync copies what the set holds: a
    directory of the set swapped for a link would become that link in the live tree, and the live
    directory's files would be removed as not in the set. Run by the restore before it changes
    anything (services, database, trees). Returns (problem count, the first KEEP problems).
    LIVE (a LiveDirs) is shown every directory of the set on the way: the record's, or in an older
    set without one, those of the listed files."""
    below = Below(name, root)
    found, n = [], 0
    last = None
    try:
        with open(listing, encoding='utf-8') as f:
            for line in f:
                rel = json.loads(line)[0]
                d, _, base = rel.rpartition('/')
                if live is not None and not record and d != last:
                    live.see(d)
                    last = d
                try:
                    st = os.lstat(base, dir_fd=below.dir_fd(d))
                    why = None if stat.S_ISREG(st.st_mode) else \
                        'a symbolic link, not the listed file' if stat.S_ISLNK(st.st_mode) else 'not a regular file'
                except NotInSet as e:
                    why = str(e)
                except FileNotFoundError:
                    why = 'missing'
                except OSError as e:
                    why = 'cannot be read: %s' % (e.strerror or e)
                if why:
                    n += 1
                    if len(found) < keep: found.append('%s/%s: %s' % (name, rel, why))
        if record:
            with open(record, encoding='utf-8') as f:
                for line in f:
                    entry = json.loads(line)
                    why, rel = _check_entry(below, entry)
                    if live is not None and entry[0] == 'd' and isinstance(rel, str):
                        live.see(rel)
                    if why:
                        n += 1
                        if len(found) < keep: found.append('%s/%s: %s' % (name, rel, why))
    finally:
        below.close()
    return n, found


def own_tree(live, uid, gid):
    """Maintenance's permission repair: the modes, group and (as root) owner a restore gives, on
    LIVE and every entry below it, by the same walk of directory descriptors that never follows a
    link (modes for directories and regular files; owner and group for links and others too).
    Returns the Sync, whose counts say what was set and what is another owner's."""
    s = Sync('', '', _top(live), uid, gid, Progress('', 0))
    fd = os.open(s.dst, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    s._own(fd, None, s.dst, os.stat(fd), DIR_MODE)
    stack = [(fd, s.dst)]
    try:
        while stack:
            fd, where = stack.pop()
            subs = []
            try:
                with os.scandir(fd) as it:
                    entries = sorted(it, key=lambda e: e.name)
                for e in entries:
                    st = e.stat(follow_symlinks=False)
                    if where == s.dst and is_fs_lost_found(e.name, st.st_mode, st.st_uid):
                        continue  # the file system's: never the Kadi user's, not even as root
                    mode = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE if stat.S_ISREG(st.st_mode) else None
                    if s.root and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                        s.linked += 1  # another of its names may be outside the tree: not given away
                        s.checked += 1
                        continue
                    s._own(fd, e.name, where + '/' + e.name, st, mode)
                    s.checked += 1
                    if stat.S_ISDIR(st.st_mode):
                        subs.append((os.open(e.name, O_DIR, dir_fd=fd), where + '/' + e.name))
            except OSError as x:
                for sub, _ in subs: os.close(sub)
                raise _named(x, where)
            finally:
                os.close(fd)
            stack.extend(reversed(subs))
    finally:
        for fd, _ in stack: os.close(fd)
    return s


def _mount_points():
    """The paths file systems are mounted on, as /proc/self/mountinfo has them (its fifth field,
    with a space, tab, newline or backslash written as an octal escape); none where it cannot be
    read."""
    try:
        with open('/proc/self/mountinfo', 'rb') as f:
            lines = f.read().split(b'\n')
    except OSError:
        return frozenset()
    unescape = re.compile(rb'\\([0-7]{3})')
    return frozenset(os.fsdecode(unescape.sub(lambda m: bytes([int(m.group(1), 8)]), line.split(b' ')[4]))
                     for line in lines if line.count(b' ') >= 5)


def _more_files():
    # Room for a descriptor per level of a deep tree (MAX_DEPTH): the soft open-files limit up to
    # the hard one, where that is more.
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * MAX_DEPTH + 64
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


def _top(path):
    # Absolute (errors name whole paths), without a trailing slash (paths below are TOP/REL).
    return os.path.abspath(path).rstrip('/') or '/'


def _same_time(live_ns, set_ns):
    """The check rsync makes, to the nanosecond - or to the second where the set's time has none
    (an archive-mode set: tar keeps whole seconds), so that those files are not all copied again."""
    return live_ns == set_ns or set_ns % 1000000000 == 0 and live_ns // 1000000000 == set_ns // 1000000000


def _read_full(fd, n):
    """Up to N bytes of FD: fewer only at its end (a read may return less than asked: NFS, FUSE)."""
    data = os.read(fd, n)
    if len(data) in (0, n):
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = os.read(fd, n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b''.join(parts)


def _sendfile(fi, fo, size):
    # The kernel copies (no round trip of the bytes through Python); a file that grew meanwhile is
    # read to its end.
    offset = 0
    while True:
        n = os.sendfile(fo, fi, offset, max(size - offset, 1 << 20))
        if n == 0:
            break
        offset += n


def _content(argv, n, usage):
    """The optional last argument `content` after N fixed ones."""
    if len(argv) == n + 1 and argv[n] == 'content':
        return True
    if len(argv) != n:
        raise SystemExit(usage)
    return False


def main(argv):
    content = _content(argv, 7, USAGE)
    name, src, dst, uid, gid, entries, result = argv[:7]
    try:
        uid, gid, total = int(uid), int(gid), int(entries or 0)
    except ValueError as e:
        raise SystemExit('tree-sync: bad uid, gid or entry count (%s)\n%s' % (e, USAGE))
    src, dst = _top(src), _top(dst)
    progress = Progress(name, total, 'entries', estimated=total > 0)
    s = Sync(name, src, dst, uid, gid, progress, content=content)
    _more_files()
    try:
        subs, top = s.top()
        if 0 < total < IN_PROCESS:
            s.walk(subs)
        else:
            _in_parts(s, [str(uid), str(gid)])
        s.leave(*top)
    except (OSError, SyncError, SystemExit) as e:
        # What was done before the failure, for the restore's note of what it wrote (a lower bound:
        # a part that failed reports nothing).
        try:
            with open(result, 'w', encoding='utf-8') as f:
                json.dump(dict(s.counts(), failed=True), f)
        except OSError:
            pass
        if isinstance(e, SystemExit):
            raise  # a part's failure, said by parts.run
        raise SystemExit('ERROR: restoring %s failed: %s' % (name, one_line(e)))
    progress.finish()
    print(s.summary(), flush=True)
    with open(result, 'w', encoding='utf-8') as f:
        json.dump(s.counts(), f)
    return 0


def _in_parts(s, ids):
    n = parts.workers()
    # The parts work in the tops this process opened (their descriptors handed down), not in
    # whatever their paths lead to by now.
    fds = [str(s.sfd), str(s.dfd)]
    parts.run([['tree-sync-part', s.name, s.src, s.dst, *ids, str(k), str(n), *fds, *(['content'] if s.content else [])] for k in range(n)],
              parts.reader(s.progress.add, s.warn, lambda _i, counts: s.add(counts)),
              lambda status: 'ERROR: restoring %s failed (a tree-sync-part process ended with status %s; its error is '
                             'above)' % (s.name, status), pass_fds=(s.sfd, s.dfd))


def part(argv):
    """tree-sync-part: the subdirectories of the top that fall to K of N (tree-sync made them and
    did the top's own entries). Writes `B entries` (progress), `W "warning"` and at the end
    `D {counts}`."""
    content = _content(argv, 9, PART_USAGE)
    name, src, dst, uid, gid, k, n, sfd, dfd = argv[:9]
    try:
        uid, gid, k, n, sfd, dfd = int(uid), int(gid), int(k), int(n), int(sfd), int(dfd)
        if not 0 <= k < n: raise ValueError(k)
    except ValueError:
        raise SystemExit(PART_USAGE)
    progress = parts.Progress()
    s = Sync(name, _top(src), _top(dst), uid, gid, progress, warn=parts.say, content=content)
    _more_files()
    try:
        s.walk(s.share(sfd, dfd, k, n))
    except (OSError, SyncError) as e:
        raise SystemExit('ERROR: restoring %s failed: %s' % (name, one_line(e)))
    progress.flush()
    parts.report(s.counts())
    return 0
