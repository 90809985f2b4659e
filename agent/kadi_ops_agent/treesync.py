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

Below the top directory the work is shared by processes of their own (tree-sync-part, see parts.py),
one per CPU, each taking the top's subdirectories whose name's path_key falls to it: with small
files the work is per entry (two stats, a few syscalls), which one Python process does at about
rsync's speed; side by side they do it in less. A tree of fewer than IN_PROCESS entries is synced in
tree-sync's own process (starting the others would cost more than they save). A directory's times
are set to the set's only where they differ or something in it was changed.

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

import sys

from . import parts
from .common import Progress, one_line
from .verify_quick import path_key

USAGE = 'usage: tree-sync NAME SET_TREE LIVE_TREE UID GID ENTRIES RESULT'
PART_USAGE = 'usage: tree-sync-part NAME SET_TREE LIVE_TREE UID GID K N'
IN_PROCESS = 5000
TMP = '.kadi-ops-restore-'
DIR_MODE, FILE_MODE = 0o750, 0o640


class SyncError(Exception):
    pass


def _is_dir(e):
    return e.is_dir(follow_symlinks=False)


class Sync:
    def __init__(self, name, src, dst, uid, gid, progress, warn=None):
        self.name, self.src, self.dst = name, src, dst
        self.root = os.geteuid() == 0
        self.uid, self.gid = uid, gid
        self.progress = progress
        self.warn = warn or (lambda text: print(text, flush=True))
        self.checked = self.copied = self.copied_bytes = self.removed = self.attrs = 0
        self.writes = 0  # entries made, replaced or removed: a directory's time changed
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
        self.writes += 1

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
        self.writes += 1

    def top(self):
        """The top directory and its own entries: its subdirectories to walk, and what leave() needs."""
        root_st = os.lstat(self.src)
        live_st = os.lstat(self.dst)
        if not stat.S_ISDIR(live_st.st_mode):
            raise SyncError('%s is not a directory' % self.dst)
        self._own(self.dst, live_st, DIR_MODE)
        subs, wrote = self._dir('')
        return subs, ('', root_st, wrote or live_st.st_mtime_ns != root_st.st_mtime_ns)

    def share(self, k, n):
        """The top's subdirectories of tree-sync-part K of N (top() made and owned them)."""
        subs = []
        with os.scandir(self.src) as it:
            for e in it:
                if _is_dir(e) and path_key(e.name) % n == k:
                    subs.append(('/' + e.name, e.stat(follow_symlinks=False), os.lstat(self.dst + '/' + e.name).st_mtime_ns))
        return sorted(subs, key=lambda x: x[0])

    def walk(self, subs):
        """The trees below SUBS ([(rel, set stat, live mtime)]), depth first in name order; a
        directory's times once what is in it is done."""
        stack = [('enter', *x) for x in reversed(subs)]
        while stack:
            what, rel, st, x = stack.pop()
            if what == 'leave':
                self.leave(rel, st, x)
                continue
            below, wrote = self._dir(rel)
            stack.append(('leave', rel, st, wrote or x != st.st_mtime_ns))
            stack.extend(('enter', *y) for y in reversed(below))

    def leave(self, rel, st, differs):
        # The set's times, where they differ or writing into the directory changed them.
        if differs:
            os.utime(self.dst + rel if rel else self.dst, ns=(st.st_atime_ns, st.st_mtime_ns))

    def counts(self):
        return {'checked': self.checked, 'copied': self.copied, 'copiedBytes': self.copied_bytes, 'removed': self.removed,
                'attrs': self.attrs, 'otherOwner': self.other_owner_n, 'otherOwnerFirst': self.other_owner,
                'groupFailed': self.group_failed}

    def add(self, c):
        """Counts of a tree-sync-part."""
        self.checked += c['checked']; self.copied += c['copied']; self.copied_bytes += c['copiedBytes']
        self.removed += c['removed']; self.attrs += c['attrs']; self.group_failed += c['groupFailed']
        self.other_owner_n += c['otherOwner']
        self.other_owner = (self.other_owner + c['otherOwnerFirst'])[:5]

    def _dir(self, rel):
        """One directory of both sides: its subdirectories to enter [(rel, set stat, live mtime)],
        and whether an entry of it was made, replaced or removed."""
        writes = self.writes
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
                    self.writes += 1
                    lst = os.lstat(target)
                else:
                    lst = l.stat(follow_symlinks=False)
                self._own(target, lst, DIR_MODE)
                subs.append((rel + '/' + name, st, lst.st_mtime_ns))
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
                self.writes += 1
                self._own(target, os.lstat(target), None)
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            else:
                self.warn('WARNING: %s: skipping special file %s in the set' % (self.name, one_line(rel + '/' + name)))
        return subs, self.writes != writes

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
    src, dst = src.rstrip('/') or '/', dst.rstrip('/') or '/'
    progress = Progress(name, total, 'entries', estimated=total > 0)
    s = Sync(name, src, dst, uid, gid, progress)
    try:
        subs, top = s.top()
        if 0 < total < IN_PROCESS:
            s.walk(subs)
        else:
            _in_parts(s, [str(uid), str(gid)])
        s.leave(*top)
    except (OSError, SyncError) as e:
        raise SystemExit('ERROR: restoring %s failed: %s' % (name, one_line(e)))
    progress.finish()
    print(s.summary(), flush=True)
    with open(result, 'w', encoding='utf-8') as f:
        json.dump(s.counts(), f)
    return 0


def _in_parts(s, ids):
    n = parts.workers()

    def line(_i, raw):
        kind, _, rest = raw.decode('ascii').partition(' ')
        if kind == 'B':
            s.progress.add(int(rest))
        elif kind == 'W':
            s.warn(json.loads(rest))
        elif kind == 'D':
            s.add(json.loads(rest))
            return True
        return False
    parts.run([['tree-sync-part', s.name, s.src, s.dst, *ids, str(k), str(n)] for k in range(n)], line,
              lambda status: 'ERROR: restoring %s failed (a tree-sync-part process ended with status %s; its error is '
                             'above)' % (s.name, status))


class _PartProgress:
    """A part's progress, to tree-sync: `B entries` now and then."""
    EVERY = 2048

    def __init__(self, out):
        self.out, self.n = out, 0

    def add(self, n):
        self.n += n
        if self.n >= self.EVERY: self.flush()

    def flush(self):
        if self.n:
            self.out.write(b'B %d\n' % self.n); self.out.flush()
            self.n = 0


def part(argv):
    """tree-sync-part: the subdirectories of the top that fall to K of N (tree-sync made them and
    did the top's own entries). Writes `B entries` (progress), `W "warning"` and at the end
    `D {counts}`."""
    if len(argv) != 7:
        raise SystemExit(PART_USAGE)
    name, src, dst, uid, gid, k, n = argv
    try:
        uid, gid, k, n = int(uid), int(gid), int(k), int(n)
        if not 0 <= k < n: raise ValueError(k)
    except ValueError:
        raise SystemExit(PART_USAGE)
    out = sys.stdout.buffer
    progress = _PartProgress(out)
    s = Sync(name, src, dst, uid, gid, progress,
             warn=lambda text: (out.write(b'W %s\n' % json.dumps(text).encode('ascii')), out.flush()))
    try:
        s.walk(s.share(k, n))
    except (OSError, SyncError) as e:
        raise SystemExit('ERROR: restoring %s failed: %s' % (name, one_line(e)))
    progress.flush()
    out.write(b'D %s\n' % json.dumps(s.counts()).encode('ascii'))
    out.flush()
    return 0
