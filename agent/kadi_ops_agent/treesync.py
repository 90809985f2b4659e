"""Makes a live tree exactly a set's tree: what restore does with STORAGE_PATH and MISC_UPLOADS_PATH.

One walk of both trees side by side, directory by directory, in name order: what the live tree has
and the set does not is removed; what differs (a type, or a file's size or modification time, the
check rsync makes) is copied from the set into a temporary name beside it and renamed over it, so a
live file is always either the old one or the whole new one; everything ends with the guide's modes
(directories 750, files 640), the live tree's group and, run as root, its owner. Run as the Kadi user,
entries of another owner cannot be given back: they are counted and named for a root chown.

This replaces `rsync -a --delete` followed by find walks for owner, group and modes: the same work
in one process that reads each directory of each side once (rsync's two processes build and send
a file list first; the walks after it read the whole live tree again, each).

Never follows a symbolic link of the live tree: a link is an entry like any other, replaced or
removed as a link, and a directory is entered only when it is one. Interrupted, it is completed by
running it again (a temporary file left behind is not in the set, so it is removed then).

Usage: tree-sync NAME SET_TREE LIVE_TREE UID GID ENTRIES RESULT
  UID GID: the live tree's owner and group (numbers: the live root's, as restore read them)
  ENTRIES: the set tree's entry count for progress (0: unknown)
Prints progress lines and `NAME: N entries checked, C files copied (B bytes), D removed, A attributes
set`; writes the counts, and the entries of another owner or group it could not change, to RESULT
(JSON) for the restore to report.
"""
import json
import os
import secrets
import stat

from .common import Progress, one_line

USAGE = 'usage: tree-sync NAME SET_TREE LIVE_TREE UID GID ENTRIES RESULT'
TMP = '.kadi-ops-restore-'
DIR_MODE, FILE_MODE = 0o750, 0o640


class SyncError(Exception):
    pass


def _is_dir(e):
    return e.is_dir(follow_symlinks=False)


class Sync:
    def __init__(self, name, src, dst, uid, gid, progress):
        self.name, self.src, self.dst = name, src, dst
        self.root = os.geteuid() == 0
        self.uid, self.gid = uid, gid
        self.progress = progress
        self.checked = self.copied = self.copied_bytes = self.removed = self.attrs = 0
        self.other_owner = []  # the first few live entries of another owner (not root)
        self.other_owner_n = 0
        self.group_failed = 0

    # --- attributes -------------------------------------------------------------------------------

    def _own(self, path, st, mode):
        """The guide's mode, the group and (as root) the owner, each set only where it differs. A
        directory keeps its set-group-ID bit (a kadi:www-data tree may rely on it for the group of
        files Kadi creates; chmod 750 by GNU chmod kept it too). Run as the Kadi user, an entry of
        another owner is counted for a root chown and left as it is: its mode and group cannot be
        changed by this user, and trying would end the restore half done."""
        if mode is not None and stat.S_ISDIR(st.st_mode):
            mode |= st.st_mode & stat.S_ISGID
        changed = False
        if st.st_uid != self.uid:
            if self.root:
                os.chown(path, self.uid, -1, follow_symlinks=False)
                changed = True
            else:
                self.other_owner_n += 1
                if len(self.other_owner) < 5: self.other_owner.append(path)
                if st.st_uid != os.geteuid():
                    return
        if st.st_gid != self.gid:
            try:
                os.chown(path, -1, self.gid, follow_symlinks=False)
                changed = True
            except PermissionError:
                self.group_failed += 1
        if mode is not None and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)  # PATH is no link: it was read with lstat (links get mode None)
            changed = True
        if changed: self.attrs += 1

    # --- entries ----------------------------------------------------------------------------------

    def _remove(self, e):
        if _is_dir(e):
            st = e.stat(follow_symlinks=False)
            if st.st_mode & 0o700 != 0o700 and (self.root or st.st_uid == os.geteuid()):
                os.chmod(e.path, 0o700)  # a directory without permissions for its owner is emptied too
            self._empty(e.path)
            os.rmdir(e.path)
        else:
            os.unlink(e.path)
        self.removed += 1

    def _empty(self, path):
        with os.scandir(path) as it:
            entries = list(it)
        for e in entries:
            self._remove(e)

    def _copy(self, s, st, target, taken):
        """The set's file S into TARGET through a temporary name in the same directory: a short
        random one (any name fits NAME_MAX) that is neither in the set's directory (TAKEN) nor on
        disk. One left behind by an interrupted run is not in the set: the next run removes it."""
        d = os.path.dirname(target)
        while True:
            name = TMP + secrets.token_hex(8)
            if name in taken: continue
            tmp = os.path.join(d, name)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                continue
        try:
            with open(s, 'rb') as fi, open(fd, 'wb', closefd=True) as fo:
                _sendfile(fi, fo, st.st_size)
                try:
                    os.fchown(fo.fileno(), self.uid if self.root else -1, self.gid)
                except PermissionError:
                    self.group_failed += 1
                os.fchmod(fo.fileno(), FILE_MODE)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)  # a full disk, a cancel: no half file left behind
            except OSError:
                pass
            raise
        self.copied += 1
        self.copied_bytes += st.st_size

    def run(self):
        # (rel, set dir's stat) of directories to enter; ('leave', ...) sets a directory's times
        # once what is in it is done (writing into it changed them).
        root_st = os.lstat(self.src)
        live_st = os.lstat(self.dst)
        if not stat.S_ISDIR(live_st.st_mode):
            raise SyncError('%s is not a directory' % self.dst)
        self._own(self.dst, live_st, DIR_MODE)
        stack = [('leave', '', root_st), ('enter', '', root_st)]
        while stack:
            what, rel, st = stack.pop()
            if what == 'leave':
                os.utime(self.dst + rel if rel else self.dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                continue
            subs = self._dir(rel)
            for sub, sst in reversed(subs):
                stack.append(('leave', sub, sst))
                stack.append(('enter', sub, sst))
        self.progress.finish()

    def _dir(self, rel):
        """One directory of both sides; returns its subdirectories to enter (rel, set stat)."""
        sdir, ddir = self.src + rel, self.dst + rel
        with os.scandir(sdir) as it:
            S = {e.name: e for e in it}
        with os.scandir(ddir) as it:
            L = {e.name: e for e in it}
        for name in sorted(L.keys() - S.keys()):
            self._remove(L[name])
        subs = []
        for name in sorted(S):
            e, l = S[name], L.get(name)
            target = ddir + '/' + name
            self.checked += 1
            self.progress.add(1)
            st = e.stat(follow_symlinks=False)
            if l is not None:
                try:
                    l.stat(follow_symlinks=False)
                except FileNotFoundError:  # gone since the directory was read
                    l = None
            if stat.S_ISDIR(st.st_mode):
                if l is not None and not _is_dir(l):
                    self._remove(l); l = None
                if l is None:
                    os.mkdir(target, DIR_MODE)
                    lst = os.lstat(target)
                else:
                    lst = l.stat(follow_symlinks=False)
                self._own(target, lst, DIR_MODE)
                subs.append((rel + '/' + name, st))
            elif stat.S_ISREG(st.st_mode):
                if l is not None:
                    lst = l.stat(follow_symlinks=False)
                    if stat.S_ISREG(lst.st_mode) and lst.st_size == st.st_size and _same_time(lst.st_mtime_ns, st.st_mtime_ns):
                        self._own(target, lst, FILE_MODE)
                        continue
                    if stat.S_ISDIR(lst.st_mode):
                        self._remove(l)
                self._copy(e.path, st, target, S)
            elif stat.S_ISLNK(st.st_mode):
                link = os.readlink(e.path)
                if l is not None:
                    if l.is_symlink() and os.readlink(l.path) == link:
                        self._own(target, l.stat(follow_symlinks=False), None)
                        continue
                    self._remove(l)
                os.symlink(link, target)
                self._own(target, os.lstat(target), None)
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            else:
                print('WARNING: %s: skipping special file %s in the set' % (self.name, one_line(rel + '/' + name)), flush=True)
        return subs

    def summary(self):
        return '%s: %d entries checked, %d files copied (%d bytes), %d removed, %d attributes set' % (
            self.name, self.checked, self.copied, self.copied_bytes, self.removed, self.attrs)


def _same_time(live_ns, set_ns):
    """The check rsync makes, to the nanosecond - or to the second where the set's time has none
    (an archive-mode set: tar keeps whole seconds), so that those files are not all copied again."""
    return live_ns == set_ns or set_ns % 1000000000 == 0 and live_ns // 1000000000 == set_ns // 1000000000


def _sendfile(fi, fo, size):
    # The kernel copies (no round trip of the bytes through Python); a file that grew meanwhile is
    # read to its end.
    offset = 0
    while True:
        n = os.sendfile(fo.fileno(), fi.fileno(), offset, max(size - offset, 1 << 20))
        if n == 0:
            break
        offset += n


def main(argv):
    if len(argv) != 7:
        raise SystemExit(USAGE)
    name, src, dst, uid, gid, entries, result = argv
    try:
        uid, gid, total = int(uid), int(gid), int(entries or 0)
    except ValueError as e:
        raise SystemExit('tree-sync: bad uid, gid or entry count (%s)\n%s' % (e, USAGE))
    s = Sync(name, src.rstrip('/') or '/', dst.rstrip('/') or '/', uid, gid, Progress(name, total, 'entries', estimated=total > 0))
    try:
        s.run()
    except (OSError, SyncError) as e:
        raise SystemExit('ERROR: restoring %s failed: %s' % (name, one_line(e)))
    print(s.summary(), flush=True)
    with open(result, 'w', encoding='utf-8') as f:
        json.dump({'checked': s.checked, 'copied': s.copied, 'copiedBytes': s.copied_bytes, 'removed': s.removed,
                   'attrs': s.attrs, 'otherOwner': s.other_owner_n, 'otherOwnerFirst': s.other_owner,
                   'groupFailed': s.group_failed}, f)
    return 0
