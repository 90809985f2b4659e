"""The incremental copier: a live tree into a backup set as a plain tree.

A file whose size, mtime and mode (and, run as root, owner) equal its copy in the previous set is
hard-linked to that copy (what rsync -a --link-dest does), so each set is complete but only new data
costs space; every other file is hashed while it is written, so the manifest never reads the set's
files back. Linked only if, in addition, its ctime is not after the previous set's copy of the tree
began (its manifest's trees.NAME.copyStartedNs, less COPY_MARGIN_NS; for an older set its startedAt,
less LINK_MARGIN_NS): content written in place under a size and mtime put back (`touch -r`) changes
the ctime, which nothing can set back, and is copied again; a previous set that does not say when it
began links nothing (every file copied, said in a WARNING). Nor is a path linked that the last
verification of any set in the backup directory found damaged (its copy there may be the very inode
the previous set holds): it is copied from the live tree; a set found damaged that does not say
which files (its problems cut short, or one naming no file) makes the copy link nothing
(sets.damaged_paths). Writes DEST's file list (NAME.files.jsonl: [path, size, mtime, sha256] per
file, the hashes of linked files taken from the previous set's list), the record of its directories
and symbolic links (NAME.entries.jsonl: ["d", path] and ["l", path, target] lines,
verify_quick.entries_name) and a summary (.NAME.copy.json) for the manifest. A file or directory
deleted on the live instance between being listed and being read (Kadi
deletes files and upload chunks while it runs) is left out, named, and counted as vanished, as tar
and rsync do; anything else that cannot be read fails the copy, naming it.

The live tree is read below one descriptor of its root: each directory and file is opened relative to
it, never through a link at its last name, and used only if it is the very entry (device and inode)
the walk listed; a file is opened as a path first (O_PATH) and read only once it is the listed file.
An entry made again or swapped for a link between its listing and its reading is left out, named,
and counted as vanished; what a link points to is never read in its place, nor a device opened
through it (for an agent run as root over a tree the Kadi user can write, a way to copy files from
outside the tree into a set the backup operator can read). A directory that was an automount point
when listed is copied as what is mounted on it.

With small files the walk is per entry (a stat, a link or mkdir, a few bytes): one Python process
is bound by its own CPU time. A tree is therefore shared by processes of their own (copier-part, see
parts.py), one per CPU, each taking the top's subdirectories whose name's path_key falls to it and
writing their lists in segments per top directory, which the copier puts together in the walk's
order; the copier itself does the top's own files. A repeat set of a tree under IN_PROCESS entries
(as the previous set counted them), or a tree with fewer than two top directories, is copied in the
copier's own process.

Usage: copier NAME SRC DEST PREV_SET  (PREV_SET empty for a first set)
       copier-part NAME SRC DEST PREV_SET K N MKDIR PREV_ORDER  (MKDIR: exact|inexact:UID:GID, what
           mkdir makes; PREV_ORDER: what the copier found the previous list to be, PreviousList.order)
"""
import collections, concurrent.futures, errno, itertools, json, os, stat, threading, time
import hashlib
import shutil
import sys

from . import parts
from .common import LOST_FOUND, Progress, is_fs_lost_found, one_line, user_name, user_of
from .manifest import tree_entries
from .verify_quick import entries_name, path_key

USAGE = 'usage: copier NAME SRC DEST PREV_SET'
PART_USAGE = 'usage: copier-part NAME SRC DEST PREV_SET K N MKDIR PREV_ORDER'
PREV_ORDERS = ('in-order', 'any-order', 'unusable', 'none')
IN_PROCESS = 5000
# A file is linked from the previous set only if its ctime is at least this much before that set
# began (its manifest's startedAt): room for a clock of the live tree's file system (an NFS server's)
# a little behind this host's. A file changed in that minute before a set began is copied once more.
LINK_MARGIN_NS = 60 * 1000000000
# Where the previous set recorded when its copy of the tree began (copyStartedNs, this host's clock):
# a file's ctime is the kernel's coarse clock (a tick, a few ms, behind the time read here), and a
# live tree on NFS takes its server's clock. A file changed in this time before that copy began is
# copied once more; one changed after it is never linked, for a file server whose clock is within
# it of this host's (network time keeps them within milliseconds).
COPY_MARGIN_NS = 200 * 1000000

# How a listed directory, file or link is opened (below the root's descriptor): never through a link
# at its last name. A file is first opened as a path only (O_PATH: its driver is never asked, a
# device or FIFO put in its place is not opened), and read through that descriptor once it is the
# very file listed: a directory on the way swapped for a link could lead anywhere.
DIR, FILE, LINK = 'directory', 'file', 'link'
OPEN = {DIR: os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
        FILE: os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
        LINK: os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC}
# Opening /proc/self/fd/N opens the file descriptor N holds, not a path looked up again. Without
# /proc (rare) the name is opened again and checked again, without blocking on a FIFO.
PROC_FD = '/proc/self/fd/'
HAVE_PROC_FD = os.path.isdir(PROC_FD)
O_FILE_AGAIN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC


# Files smaller than this are copied by the walking thread itself: handing one to a worker cost ~100
# futex calls (the GIL passed between five threads), far more than copying it (10,000 small files:
# 1.07 million futex calls, 40,000 when copied here). Larger files go to the workers, whose
# hashing and I/O run outside the GIL side by side.
INLINE_BELOW = 64 * 1024


def main(argv):
    if len(argv) != 4:
        raise SystemExit(USAGE)
    return _copy(*argv, part=None)


def part(argv):
    """copier-part: the top's subdirectories that fall to K of N (the copier made DEST and does the
    top's own files). Writes `B entries` (progress), `W "line"` (what the copier says), and at the
    end `D {totals, entries, vanished, segments}`: its list (.NAME.part-K.jsonl) holds each top
    directory's lines at segments[dir] = [start, end]."""
    if len(argv) != 8:
        raise SystemExit(PART_USAGE)
    name, src, dest, prev_set, k, n, mk, prev_order = argv
    try:
        k, n = int(k), int(n)
        kind, uid, gid = mk.split(':')
        if not 0 <= k < n or kind not in ('exact', 'inexact') or prev_order not in PREV_ORDERS: raise ValueError(mk)
        mk = (kind == 'exact', (int(uid), int(gid)))
    except ValueError:
        raise SystemExit(PART_USAGE)
    return _copy(name, src, dest, prev_set, part=(k, n, mk, prev_order))


class Replaced(Exception):
    """An entry that is no longer the one the walk listed (deleted and made again, or a link now)."""


def _same(a, b):
    return (a.st_dev, a.st_ino, stat.S_IFMT(a.st_mode)) == (b.st_dev, b.st_ino, stat.S_IFMT(b.st_mode))


def open_listed(root_fd, rel, st, kind, parent=None):
    """REL below ROOT_FD opened as KIND (DIR, FILE: readable, LINK: O_PATH), if it is still the
    entry ST (a Meta) the walk listed; Replaced if something else is there now, FileNotFoundError if
    nothing is. (An inode number is used again once freed, so its type is compared too; a file that
    existed before cannot take a freed number: what is read is the listed entry, or one made since
    in its place.) PARENT: the Meta of REL's directory, for a directory that was an automount point
    when listed and is the root of what is mounted on it now."""
    fd, keep = None, False
    try:
        fd = os.open(rel, OPEN[kind], dir_fd=root_fd)
        now = os.fstat(fd)
        if not _same(now, st) and not (kind == DIR and _mounted_on(fd, now, st, parent)):
            raise Replaced()
        if kind != FILE:
            keep = True
            return fd
        if HAVE_PROC_FD:
            return os.open(PROC_FD + str(fd), os.O_RDONLY | os.O_CLOEXEC)
        again = os.open(rel, O_FILE_AGAIN, dir_fd=root_fd)
        try:
            if not _same(os.fstat(again), st): raise Replaced()
            os.set_blocking(again, True)
        except BaseException:
            os.close(again)
            raise
        return again
    except OSError as e:
        # A link at its last name (ELOOP; ENOTDIR when a directory was asked for), a file on the way,
        # a socket (ENXIO).
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO): raise Replaced() from None
        raise
    finally:
        if fd is not None and not keep: os.close(fd)


def _mounted_on(fd, now, st, parent):
    """True for a directory FD (fstat NOW) that the walk listed as ST on another filesystem, whose
    parent ('..' of a filesystem's root is the directory it is mounted in) is the listed PARENT: an
    automount point, mounted when it was opened. Only root can mount: a link swapped in on the way
    leads to a directory whose parent is not PARENT."""
    if parent is None or now.st_dev == st.st_dev: return False
    return _same(os.stat('..', dir_fd=fd, follow_symlinks=False), parent)


def unreadable(name, path, e):
    """The copy's end for a directory of the tree it cannot read: the whole path, and for a
    permission, whose it is and what to do (the backup must not leave out what it cannot read)."""
    why = e.strerror or str(e)
    if isinstance(e, PermissionError):
        try:
            st = os.lstat(path)
            why += ' (owner %s, mode %o)' % (user_of(st.st_uid), stat.S_IMODE(st.st_mode))
        except OSError:
            pass
        why += ('; the backup reads the tree as %s, which must be able to read all of it: give it read access, '
                'or move what is not the instance\'s out of the tree' % user_name())
    return SystemExit('ERROR: reading %s failed: %s: %s' % (name, one_line(path), why))


def part_line(k, n):
    """MINE for part K of N: a line of a top directory that falls to it (as shared() takes them).
    Lines are ASCII JSON arrays written by json.dumps, a path first: the text before the first
    slash, after '["', is the top directory's name as JSON escapes it (a name holds no slash,
    the rest of a line none either); a line that is not so is parsed (never wrong, only slower)."""
    tops = {}
    def mine(line):
        i = line.find('/')
        if i < 0: return line[:2] != '["'  # a file of the top: the copier's
        raw = line[2:i]
        m = tops.get(raw)
        if m is None:
            try:
                m = line[:2] != '["' or path_key(json.loads('"' + raw + '"')) % n == k
            except ValueError:
                m = True
            tops[raw] = m
        return m
    return mine


class _Mark:
    """In the list's queue: where a top directory's lines begin or end (a part's segments)."""
    __slots__ = ('begin', 'top')

    def __init__(self, begin, top):
        self.begin, self.top = begin, top


def _copy(name, src, dest, prev_set, part):
    partial = os.path.dirname(dest)
    prev = os.path.join(prev_set, name) if prev_set else ''
    euid = os.geteuid()
    # Directories are made with their final mode where mkdir gives exactly that (probed once), so
    # most need no chmod afterwards; files are created 0600 and get their mode once written.
    os.umask(0)
    def private(path, flags): return os.open(path, flags, 0o600)  # an opener= for everything else
    def dir_mode(st): return stat.S_IMODE(st.st_mode) & 0o1777 | 0o700  # writable while it is filled

    # Memory does not grow with the tree: the walk is taken in batches of 16384 entries, the previous
    # set's list is read alongside it, and at most 1024 files are in flight. (A previous list in
    # another order is held whole, as before; a directory's entries are read whole.)
    # Order: each directory's files, then its subdirectories, by name - the order of the lists.
    def order_key(rel):
        # A string that sorts as the walk goes: at each level "0name" for a file, "1name\0" for a
        # directory (NUL ends a name, so a name sorts before its extensions, as in the walk).
        i = rel.rfind('/')
        return '0' + rel if i < 0 else '1' + rel[:i].replace('/', '\x001') + '\x000' + rel[i + 1:]

    class PreviousList:
        """The previous set's file list, read in step with the walk (same order): size and digest of a
        path, or None. A list in another order (an older set's) is read whole into a dict instead.
        ORDER: what the copier found the list to be (for its parts, which do not check it again);
        MINE(line): False for a line that is another process's to read (not parsed then)."""
        def __init__(self, path, order=None, mine=None):
            self.f, self.cur, self.index, self.mine = None, None, None, mine
            self.order = 'none'
            try:
                self.f = open(path, encoding='utf-8')
            except FileNotFoundError:
                return
            if order == 'unusable' or order == 'none':
                self.unusable(None)
                return
            # One pass to check the order first: a miss while reading in step is then a real miss.
            if order is None:
                last = None
                try:
                    for line in self.f:
                        rel, size, mtime, digest = json.loads(line)
                        key = order_key(rel)
                        if last is not None and key <= last:
                            order = 'any-order'
                            break
                        last = key
                    else:
                        order = 'in-order'
                except (ValueError, TypeError, AttributeError) as e:
                    self.unusable(e)
                    return
                self.f.seek(0)
            self.order = order
            if order == 'any-order':
                self.index = {}
                for line in self.f:
                    if mine is None or mine(line):
                        rel, size, mtime, digest = json.loads(line)
                        self.index[rel] = (size, digest)
                self.f.close(); self.f = None
                return
            self._next()
        def unusable(self, e):
            # Nothing is linked then: every file is copied and hashed again (slower, never wrong).
            # (Said by the copier; its parts are told.)
            if e is not None: print('WARNING: %s: the previous set\'s file list is unreadable (%s); copying every file' % (name, e), file=sys.stderr, flush=True)
            if self.f: self.f.close()
            self.f, self.cur, self.index, self.order = None, None, {}, 'unusable'
        def _next(self):
            for line in self.f:
                if self.mine is not None and not self.mine(line): continue
                rel, size, mtime, digest = json.loads(line)  # checked by the copier's first pass
                self.cur = (order_key(rel), size, digest)
                return
            self.cur = None
        def get(self, rel):
            if self.index is not None: return self.index.get(rel)
            key = order_key(rel)
            while self.cur is not None and self.cur[0] < key: self._next()
            if self.cur is not None and self.cur[0] == key: return (self.cur[1], self.cur[2])
            return None

    # What is kept of each lstat (a plain tuple is a third of an os.stat_result).
    Meta = collections.namedtuple('Meta', 'st_mode st_size st_mtime_ns st_atime_ns st_uid st_gid st_dev st_ino st_ctime_ns')
    def meta(st): return Meta(st.st_mode, st.st_size, st.st_mtime_ns, st.st_atime_ns, st.st_uid, st.st_gid, st.st_dev, st.st_ino, st.st_ctime_ns)

    # Lines printed by more than one thread go through say(): print() writes a line and its end in
    # two calls, and another thread's line could land between them.
    output_lock = threading.Lock()
    def say(line):
        with output_lock:
            if part:
                parts.say(one_line(line))
            else:
                sys.stdout.write(one_line(line) + '\n'); sys.stdout.flush()

    vanished = replaced = 0  # vanished counts both
    def note_vanished(rel, what, kept='not in the set', how='vanished during the copy (deleted on the live instance)'):
        nonlocal vanished
        with output_lock:
            vanished += 1
            n = vanished
        if n <= 100: say('%s: %s %s %s; %s' % (name, what, rel, how, kept))
    def note_replaced(rel, what, kept='not in the set'):
        nonlocal replaced
        with output_lock: replaced += 1
        note_vanished(rel, what, kept, 'was replaced during the copy (it is no longer the entry that was listed: made again, or a link now)')

    changed = 0  # files written to while they were read, twice
    def note_changed(rel):
        nonlocal changed
        with output_lock:
            changed += 1
            n = changed
        if n <= 100: say('%s: file %s was written to while it was read, twice; the set holds what the second read got' % (name, rel))

    try:
        root_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # resolved by the caller
        root_st = meta(os.fstat(root_fd))
    except OSError as e:
        raise SystemExit('ERROR: reading %s failed: %s' % (name, e))

    def read_dir(rel, st=None, parent=None):
        """REL's entries (name, Meta) by name; ST: REL as its parent's listing had it, PARENT: that
        directory's Meta (neither for the root)."""
        def entry(e):
            try:
                return e.name, meta(e.stat(follow_symlinks=False))
            except (FileNotFoundError, NotADirectoryError):  # deleted since the directory was read
                note_vanished(rel + '/' + e.name if rel else e.name, 'entry')
                return None
        try:
            fd = open_listed(root_fd, rel, st, DIR, parent) if rel else root_fd
        except FileNotFoundError:
            note_vanished(rel, 'directory', 'the set holds it empty')
            return []
        except Replaced:
            note_replaced(rel, 'directory', 'the set holds it empty')
            return []
        except OSError as e:  # a directory that cannot be opened
            raise unreadable(name, src + '/' + rel if rel else src, e)
        try:
            with os.scandir(fd) as it:  # entries' lstat relative to FD
                return sorted((x for x in map(entry, it) if x is not None), key=lambda x: x[0])
        except OSError as e:  # a directory that cannot be read
            raise unreadable(name, src + '/' + rel if rel else src, e)
        finally:
            if fd != root_fd: os.close(fd)

    def walk(rel='', st=None, listed=None, parent=None):
        """(rel, Meta, False) in list order, each directory before what is in it, and (rel, Meta, True)
        for a directory once all that is in it was yielded. ST: REL's Meta as listed, PARENT: its
        directory's; LISTED: REL's entries, already read."""
        # An explicit stack, one frame per level (REL, its Meta, its subdirectories left): a tree of
        # any depth, where a generator per level would end at Python's recursion limit.
        def level(rel, st, listed, parent):
            files, subs = [], []
            for n, est in (read_dir(rel, st, parent) if listed is None else listed):
                r = rel + '/' + n if rel else n
                (subs if stat.S_ISDIR(est.st_mode) else files).append((r, est))
            return files, subs
        files, subs = level(rel, st, listed, parent)
        for r, est in files: yield r, est, False
        stack = [(None, st, iter(subs))]
        while stack:
            d, dst, left = stack[-1]
            nxt = next(left, None)
            if nxt is None:
                stack.pop()
                if d is not None: yield d, dst, True
                continue
            r, est = nxt
            yield r, est, False
            files, subs = level(r, est, None, dst or root_st)
            for f, fst in files: yield f, fst, False
            stack.append((r, est, iter(subs)))

    counted = threading.Event()  # the copy is over: a count still running stops
    def count(path):
        # The progress total (as rsync --no-inc-recursive's, but not waited for): names only, no lstat
        # (read by path: a link swapped in could make the total wrong, or the count longer, nothing
        # else; it stops when the copy is over).
        n, stack = 0, [path]
        while stack and not counted.is_set():
            try:
                d = stack.pop()
                with os.scandir(d) as it:
                    for e in it:
                        if d is path and e.name == LOST_FOUND:  # the one name worth a stat here
                            est = e.stat(follow_symlinks=False)
                            if is_fs_lost_found(e.name, est.st_mode, est.st_uid):
                                continue
                        n += 1
                        if e.is_dir(follow_symlinks=False): stack.append(e.path)
            except (FileNotFoundError, NotADirectoryError):
                pass  # gone since it was listed: the copy's walk decides what that means
            except OSError as e:
                raise unreadable(name, e.filename if isinstance(e.filename, str) else src, e)
        return n

    # What the previous set walked: the progress total of a repeat set without a second walk (a
    # day's changes are a small part; the last line is put right at the end).
    guess = tree_entries(prev_set, name) if prev else 0
    # files, directories and links
    progress = parts.Progress() if part else Progress(name, guess, 'entries', estimated=guess > 0)
    progress_lock = output_lock  # progress lines are printed by whichever thread ticks
    def count_total():
        # A first set (or one after a set without the number): counted beside the copy.
        try:
            n = 1 + count(src)
        except SystemExit:
            return  # the copy's own walk reports the unreadable directory
        with progress_lock:
            if counted.is_set(): return  # the copy was over first: its last line has the total
            progress.total, progress.estimated = n, False
            progress.add(0)
    counting = threading.Thread(target=count_total, daemon=True)
    if progress.total == 0 and not part: counting.start()
    def tick():
        with progress_lock: progress.add(1)

    def keep_attrs(path, st, made=None):
        # rsync -a's attributes: mode, mtime, owner (as root) and group (where allowed). made: the
        # (mode, uid, gid) a directory was made with; what already matches is not set again.
        if euid == 0:
            if made is None or (made[1], made[2]) != (st.st_uid, st.st_gid):
                os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
        elif made is None or made[2] != st.st_gid:
            try: os.chown(path, -1, st.st_gid)
            except PermissionError: pass
        if made is None or made[0] != stat.S_IMODE(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    def link_previous(r, st, t, known):
        # Changed since the previous set's copy began (its inode's ctime: content written under a
        # size and mtime put back, as `touch -r` does), or named damaged by a set's verification
        # (one inode in every set that links it): copied from the live tree instead.
        if known[0] != st.st_size or st.st_ctime_ns > link_before or (damaged and r in damaged): return None
        p = prev + '/' + r
        try:
            pst = os.lstat(p)
        except OSError:  # gone or unreadable in the previous set: copied instead (slower, never wrong)
            return None
        if not (stat.S_ISREG(pst.st_mode) and pst.st_size == st.st_size and pst.st_mtime_ns == st.st_mtime_ns
                and pst.st_mode == st.st_mode):
            return None
        # Owner and group are compared only where the copy keeps them (as root), as rsync does: run as
        # the Kadi user, a copy is the Kadi user's, and a file of another owner would never match.
        if euid == 0 and (pst.st_uid != st.st_uid or pst.st_gid != st.st_gid):
            return None
        try:
            os.link(p, t)
        except OSError:  # e.g. EMLINK: copy instead
            return None
        return known[1]

    # One read buffer per worker thread, kept: reading into a fresh 1 MiB bytes object per call
    # was an mmap and a munmap per file, most of the copy's system time with small files.
    local = threading.local()
    def thread_buffer():
        mv = getattr(local, 'mv', None)
        if mv is None:
            mv = local.mv = memoryview(bytearray(1 << 20))
        return mv

    def copy_file(r, st):
        s, t = src + '/' + r, dest + '/' + r
        try:
            try:
                fi = open(open_listed(root_fd, r, st, FILE), 'rb', buffering=0)
            except FileNotFoundError:
                note_vanished(r, 'file')
                return None
            except Replaced:
                note_replaced(r, 'file')
                return None
            except OSError as e:
                raise SystemExit('ERROR: copying %s failed: %s' % (s, e))
            mv = thread_buffer()
            with fi, open(t, 'xb', buffering=0, opener=private) as fo:
                # A file written to while it is read would be stored torn (old bytes and new, a
                # content that never was, under a time that says it is unchanged): its size and
                # times before and after the read tell, and it is read again once. Written to
                # during that read too, it is kept as read and named (as tar does).
                for again in (False, True):
                    before = os.fstat(fi.fileno())
                    h = hashlib.sha256(); n = 0
                    while True:
                        try:
                            got = fi.readinto(mv)
                        except OSError as e:
                            raise SystemExit('ERROR: copying %s failed: %s' % (s, e))
                        if not got: break
                        h.update(mv[:got])
                        done = 0
                        while done < got:  # an unbuffered write may take less than it was given
                            done += fo.write(mv[done:got])
                        n += got
                    after = os.fstat(fi.fileno())
                    unchanged = (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (after.st_size, after.st_mtime_ns, after.st_ctime_ns)
                    mtime = after.st_mtime_ns  # the time of what was read
                    if unchanged and n == after.st_size:
                        break
                    if again:
                        note_changed(r)
                        # Kept under the time it had when this read began, never the live file's
                        # last: the next backup must not take the live file for this copy (same
                        # size and time) and link it for good; it copies the file again.
                        mtime = before.st_mtime_ns
                        break
                    fi.seek(0); fo.seek(0); fo.truncate(0)
            st = st._replace(st_size=n, st_mtime_ns=mtime)
            keep_attrs(t, st)
            return [r, n, st.st_mtime_ns // 1000000000, h.hexdigest()], True
        except OSError as e:  # the set's side: a full disk, a quota
            raise SystemExit('ERROR: writing %s file %s into the set failed: %s' % (name, r, e))
        finally:
            tick()

    # What may be linked from the previous set (link_previous): a file whose ctime is not after
    # LINK_BEFORE and whose path no set's verification found damaged (DAMAGED). Decided by the
    # copier; its parts read it from .NAME.tops.json. -1: nothing is linked.
    link_before, damaged = -1, frozenset()
    # When this copy began, before anything of the live tree is read: the next set links a file only
    # if its ctime is not after it (recorded in .NAME.copy.json, the manifest's trees.NAME.copyStartedNs).
    copy_started_ns = time.time_ns()
    if prev and not part:
        link_before, damaged = _linkable(name, prev_set, partial)
    previous = PreviousList(os.path.join(prev_set, name + '.files.jsonl'),
                            *((part[3], part_line(part[0], part[1])) if part else ())) if prev and (part or link_before >= 0) else None
    try:
        if part:
            mkdir_exact, mkdir_owner = part[2]
        else:
            os.mkdir(dest, 0o700)
            # What mkdir makes here. Asked for 0o1777, a directory that shows exactly that (no default ACL
            # masking it, no set-gid bit inherited) shows every mode as asked; its owner is every one's.
            probe = dest + '/.kadi-ops-mkdir-probe'
            os.mkdir(probe, 0o1777)
            m = os.lstat(probe)
            os.rmdir(probe)
            mkdir_exact, mkdir_owner = stat.S_IMODE(m.st_mode) == 0o1777, (m.st_uid, m.st_gid)
        # What this process walks: the whole tree; in a part, its share of the top's directories
        # as the copier read them (.NAME.tops.json: read again, an entry could have become a file
        # meanwhile and been copied by neither); in the copier with parts, the top's own files,
        # links and others.
        tops = os.path.join(partial, '.%s.tops.json' % name)
        if part:
            with open(tops, encoding='ascii') as f:
                told = json.load(f)
            dirs = [(n, Meta(*m)) for n, m in told['dirs']]
            link_before, damaged = told['linkBefore'], frozenset(told['damaged'])
        else:
            top = []
            for n, st in read_dir(''):
                if is_fs_lost_found(n, st.st_mode, st.st_uid):
                    say('%s: %s left out: the file system\'s own directory (root\'s), not the instance\'s' % (name, n))
                else:
                    top.append((n, st))
            dirs = [(n, st) for n, st in top if stat.S_ISDIR(st.st_mode)]
        in_parts = not part and len(dirs) >= 2 and not 0 < guess < IN_PROCESS
        if in_parts:
            with open(tops, 'w', encoding='ascii', opener=private) as f:
                json.dump({'dirs': [[n, list(st)] for n, st in dirs], 'linkBefore': link_before, 'damaged': sorted(damaged)}, f)
        if part:
            def shared():
                for r, st in dirs:
                    if path_key(r) % part[1] == part[0]:
                        yield r, st, False
                        yield from walk(r, st, None, root_st)
                        yield r, st, True
            entries = shared()
        elif in_parts:
            entries = iter([(r, st, False) for r, st in top if not stat.S_ISDIR(st.st_mode)])
        else:
            entries = walk('', None, top)
        totals = {'files': 0, 'bytes': 0, 'newFiles': 0, 'newBytes': 0}
        # ASCII lines (JSON with \u escapes), written as bytes: a part's segments are byte offsets.
        list_path = os.path.join(partial, '.%s.part-%d.jsonl' % (name, part[0]) if part else name + '.files.jsonl')
        listing = open(list_path, 'wb', opener=private)
        # The tree's directories and links (verify_quick.entries_name), in the walk's order; a
        # part's go to a file of its own, appended to the copier's once the parts are done.
        entries_path = os.path.join(partial, '.%s.part-%d.entries.jsonl' % (name, part[0]) if part else entries_name(name))
        entries_file = open(entries_path, 'wb', opener=private)
        def record(*entry): entries_file.write((json.dumps(entry) + '\n').encode('ascii'))
        segments = {}
        pending = collections.deque()
        submitted = collected = 0
        def collect_oldest():
            nonlocal collected
            p = pending.popleft()
            if isinstance(p, _Mark):
                at = listing.tell()
                if p.begin: segments[p.top] = [at, at]
                else: segments[p.top][1] = at
                return
            done = p if p is None or isinstance(p, tuple) else p.result()
            collected += 1
            if done is None: return  # vanished
            e, new = done
            # ASCII with \u escapes: a file name that is not UTF-8 (held as surrogate escapes)
            # goes into the list and comes back as the same bytes.
            listing.write((json.dumps(e) + '\n').encode('ascii'))
            totals['files'] += 1; totals['bytes'] += e[1]
            if new: totals['newFiles'] += 1; totals['newBytes'] += e[1]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
            # The walk is taken in batches: walking the source and making directories alternate in
            # long runs (one source directory read per directory made costs markedly more here).
            # Directories are made here, in walk order, while the workers link and copy the files of
            # the directories made before; results go to the list in walk order as they come, with
            # at most 1024 files in flight.
            # A directory's owner, mode and times are set once every file submitted before the walk
            # ended it is written (deepest first, as the walk ends them), a batch's worth at a time:
            # set one by one between links and mkdirs, they cost five times as much here.
            ended = collections.deque()  # (files submitted when it ended, rel, Meta)
            def finish_dirs():
                while ended and ended[0][0] <= collected:
                    _, r, st = ended.popleft()
                    keep_attrs(dest + '/' + r, st, (dir_mode(st), *mkdir_owner) if mkdir_exact else None)
            while True:
                batch = list(itertools.islice(entries, 16384))
                if not batch: break
                for r, st, end in batch:
                    if end:
                        ended.append((submitted, r, st))
                        if part and '/' not in r: pending.append(_Mark(False, r))
                    elif stat.S_ISDIR(st.st_mode):
                        if part and '/' not in r: pending.append(_Mark(True, r))
                        os.mkdir(dest + '/' + r, dir_mode(st))
                        record('d', r)
                        tick()
                    elif stat.S_ISREG(st.st_mode):
                        # An unchanged file is linked here, not by a worker: a link is one system call,
                        # cheaper than handing it over (half the copier's CPU on a repeat set).
                        known = previous.get(r) if previous else None
                        linked = link_previous(r, st, dest + '/' + r, known) if known else None
                        if linked:
                            pending.append(([r, st.st_size, st.st_mtime_ns // 1000000000, linked], False))
                            tick()
                        elif st.st_size < INLINE_BELOW:
                            pending.append(copy_file(r, st))
                        else:
                            pending.append(ex.submit(copy_file, r, st))
                        submitted += 1
                        if len(pending) > 1024: collect_oldest()
                    elif stat.S_ISLNK(st.st_mode):
                        t = dest + '/' + r
                        try:
                            lfd = open_listed(root_fd, r, st, LINK)
                            try: target = os.readlink('', dir_fd=lfd)
                            finally: os.close(lfd)
                        except FileNotFoundError:
                            note_vanished(r, 'link')
                            tick()
                            continue
                        except Replaced:
                            note_replaced(r, 'link')
                            tick()
                            continue
                        os.symlink(target, t)
                        os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
                        record('l', r, target)
                        try:
                            to_dir = stat.S_ISDIR(os.stat(r, dir_fd=root_fd).st_mode)
                        except OSError:  # dangling, a loop, or not ours to read
                            to_dir = False
                        if to_dir:
                            # As tar and rsync -a: the link, not what it leads to. Said loudly: a
                            # tree spread over disks by links would otherwise be backed up in part,
                            # and verified as complete.
                            print('WARNING: %s: %s is a symbolic link to a directory (%s): the set holds the link, not the '
                                  'files behind it; back those up separately, or point the path at a tree without such links'
                                  % (name, one_line(r), one_line(target)), file=sys.stderr, flush=True)
                        else:
                            say('%s: symbolic link %s copied as a link (not checksummed)' % (name, r))
                        tick()
                    else:
                        print('WARNING: %s: skipping special file %s' % (name, one_line(r)), file=sys.stderr, flush=True)
                        tick()
                finish_dirs()
            while pending: collect_oldest()
            finish_dirs()
        listing.close()
        entries_file.close()
        if part:
            with output_lock:
                progress.flush()
                parts.report({'totals': totals, 'vanished': vanished, 'replaced': replaced, 'changed': changed, 'segments': segments})
            return 0
        if in_parts:
            v, rp, ch = _in_parts(name, src, dest, prev_set, previous.order if previous else 'none',
                                  (mkdir_exact, mkdir_owner), partial, totals, progress, output_lock, say)
            vanished += v; replaced += rp; changed += ch
        keep_attrs(dest, root_st)
        tick()
        with progress_lock: counted.set()  # a count still running is not waited for
        progress.finish()
        totals['entries'] = progress.done
        totals['vanished'] = vanished
        totals['changedWhileRead'] = changed
        if changed:
            print('WARNING: %s: %d %s written to while the backup read %s, twice (%s): the set holds what was read'
                  % (name, changed, 'file was' if changed == 1 else 'files were', 'it' if changed == 1 else 'them',
                     'the first 100 are named above' if changed > 100 else 'named above'), file=sys.stderr, flush=True)
        if vanished:
            print('WARNING: %s: %d %s %s during the copy (%s on the live instance while the backup ran) and %s left out of the set (%s)'
                  % (name, vanished, 'entry' if vanished == 1 else 'entries',
                     ('vanished or was replaced' if vanished == 1 else 'vanished or were replaced') if replaced else 'vanished',
                     'deleted or changed' if replaced else 'deleted',
                     'is' if vanished == 1 else 'are', 'the first 100 are named above' if vanished > 100 else 'named above'),
                  file=sys.stderr, flush=True)
    except OSError as e:  # the set's side: a full disk, a directory that cannot be made
        raise SystemExit('ERROR: copying %s into the set failed: %s' % (name, e))
    finally:
        counted.set()
        os.close(root_fd)  # the worker threads are done with it: their pool was left
    totals['copyStartedNs'] = copy_started_ns
    with open(os.path.join(partial, '.' + name + '.copy.json'), 'w', encoding='utf-8', opener=private) as f:
        json.dump(totals, f)


def _linkable(name, prev_set, partial):
    """What the copy of tree NAME may link from the previous set PREV_SET: (LINK_BEFORE, DAMAGED).
    A file is linked only if its ctime (any write, chmod or utime sets it to the time it happened, and
    nothing can set it back) is not after LINK_BEFORE: when the previous set's copy of the tree began
    (its manifest's trees.NAME.copyStartedNs) less COPY_MARGIN_NS, or for a set without it its start
    (startedAt, whole seconds, taken before its trees were read) less LINK_MARGIN_NS; and only if its path is not in
    DAMAGED: the paths of the tree that the last verification of any set in the backup directory
    found damaged (sets.damaged_paths). (-1, ...): nothing is linked, every file copied and hashed
    again (slower, never wrong), said in one WARNING: when the previous set does not say when it
    began, or a set found damaged does not say which of the tree's files."""
    from .manifest import copy_started_ns, started_ns
    from .sets import damaged_paths
    # When the previous set's copy of this tree began, to the nanosecond (sets from this version on);
    # else when its backup began, in whole seconds, less a minute.
    began = copy_started_ns(prev_set, name)
    if began is not None:
        began -= COPY_MARGIN_NS
    else:
        began = started_ns(prev_set)
        if began is not None:
            began -= LINK_MARGIN_NS
    if began is None:
        why = 'the previous set %s does not say when it began (its manifest has no startedAt)' % os.path.basename(prev_set)
    else:
        paths, why = damaged_paths(os.path.dirname(partial), name)
        if why is None:
            return began, frozenset(paths)
    print('WARNING: %s: nothing is linked from the previous set: %s; every file is copied and hashed again'
          % (name, one_line(why)), file=sys.stderr, flush=True)
    return -1, frozenset()


def _in_parts(name, src, dest, prev_set, prev_order, mk, partial, totals, progress, lock, say):
    """The top's directories by copier-part processes; their lists appended to the copier's (which
    holds the top's own files) in the walk's order. Returns how many entries vanished in them, how
    many of those were replaced, and how many files were written to while read twice."""
    n = parts.workers()
    segments = {}  # top directory -> (part, start, end)
    vanished = replaced = changed = 0

    def add(n):
        with lock: progress.add(n)  # the count of a first set's entries may still be running

    def done(i, d):
        nonlocal vanished, replaced, changed
        for k, v in d['totals'].items(): totals[k] += v
        vanished += d['vanished']; replaced += d['replaced']; changed += d['changed']
        for top, (start, end) in d['segments'].items(): segments[top] = (i, start, end)
    mkdir = '%s:%d:%d' % ('exact' if mk[0] else 'inexact', *mk[1])
    part_lists = [os.path.join(partial, '.%s.part-%d.jsonl' % (name, k)) for k in range(n)]
    parts.run([['copier-part', name, src, dest, prev_set, str(k), str(n), mkdir, prev_order] for k in range(n)],
              parts.reader(add, say, done),
              lambda status: 'ERROR: copying %s failed (a copier-part process ended with status %s; its error is above)'
                             % (name, status))
    readers = [open(p, 'rb') for p in part_lists]
    try:
        with open(os.path.join(partial, name + '.files.jsonl'), 'ab') as listing:
            for top in sorted(segments):
                i, start, end = segments[top]
                f = readers[i]
                f.seek(start)
                left = end - start
                while left:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk: raise OSError('%s ends before its segment %s' % (part_lists[i], top))
                    listing.write(chunk)
                    left -= len(chunk)
    finally:
        for f in readers: f.close()
    # Their directories and links, part by part (each in its walk's order).
    part_entries = [os.path.join(partial, '.%s.part-%d.entries.jsonl' % (name, k)) for k in range(n)]
    with open(os.path.join(partial, entries_name(name)), 'ab') as out:
        for p in part_entries:
            with open(p, 'rb') as f:
                shutil.copyfileobj(f, out, 1 << 20)
    for p in part_lists + part_entries: os.unlink(p)
    os.unlink(os.path.join(partial, '.%s.tops.json' % name))
    return vanished, replaced, changed
