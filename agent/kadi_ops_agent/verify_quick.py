"""Quick verification of a backup set: every artifact's size and sha256 against the manifest, every
tree file's size and sha256 against its tree's file list, files in a tree the list does not name,
archives' file and byte counts, and the dump's table of contents.

Prints a `[progress] verify ...` line as it hashes, a `PROBLEM: ...` line per problem (the first
200) and `checked N files, B bytes: P problem(s)`; writes the result (level quick, ok, problems,
problemCount, files, bytes, at) to OUT for verify-result.

Usage: verify-quick SET_DIR TOC_OK TOC_ENTRIES OUT ARCHIVES_TSV
  TOC_OK       yes when `pg_restore -l` read db.dump, else no
  TOC_ENTRIES  the entries it listed (empty: 0)
  ARCHIVES_TSV one `NAME<TAB>FILES BYTES` (or `NAME<TAB>unreadable`) line per archive of the set
"""
import array
import bisect
import datetime
import errno
import hashlib
import json
import os
import stat

from .common import Progress, one_line, sha256
from . import parts

USAGE = 'usage: verify-quick SET_DIR TOC_OK TOC_ENTRIES OUT ARCHIVES_TSV'
PART_USAGE = 'usage: verify-quick-part TREE ROOT LIST K N [RECORD]   (K = walkJ: the files the list does not name)'

# A tree's files are checked by processes of their own (verify-quick-part, see parts.py), one per
# CPU, each taking every Nth line of the list, beside as many that walk the tree (every Nth top
# directory) for files the list does not name: with small files the work is per file (open, read,
# hash, close), which one Python process does at about half the speed of sha256sum; side by side
# they keep up with it. Each reads the list as a stream: memory does not grow with the number of files.

# Bytes read at once into a buffer kept for the whole run (a fresh 1 MiB bytes object per read was
# an mmap and a munmap per file: most of the time went there with small files).
BUF = 1 << 18
# Trees with fewer files are checked in the verify's own process (4 process starts cost ~0.2 s).
IN_PROCESS = 5000
# Problems kept per process (and in the result): the count is exact beyond it.
KEEP = 1000


def entries_name(tree):
    """The set's record of TREE's directories and symbolic links, beside its file list (written by
    the copier since it keeps them): a ["d", path] line per directory below the tree's root and an
    ["l", path, target] line per symbolic link. Readers take the first elements and ignore any
    more."""
    return tree + '.entries.jsonl'


def path_key(rel):
    """A 64-bit key of a tree path (its bytes, as a name that is not UTF-8 has them): whether a file
    found in the tree is in the list is asked of these keys. Two paths share one with a chance of
    about n²/2⁶⁵ (~3·10⁻⁸ for a million files), and that could only hide a file the list does not
    name; every listed file is still checked by its own size and sha256."""
    return int.from_bytes(hashlib.blake2b(os.fsencode(rel), digest_size=8).digest(), 'little')


class KeySet:
    """Paths by their 64-bit path_key, 8 bytes each: add() them all, then ask `rel in keys`. The
    keys are gathered in 64 arrays by their top bits and each is sorted on its own (one sort of all
    made a Python int per path, 48 bytes while it lasted: +28 MiB for half a million), at most 16
    bytes per path at the peak."""

    def __init__(self):
        self.buckets = [array.array('Q') for _ in range(64)]
        self.keys = None

    def add(self, rel):
        k = path_key(rel)
        self.buckets[k >> 58].append(k)

    def __contains__(self, rel):
        if self.keys is None:
            self.keys = array.array('Q')
            for b in range(64):
                self.keys.extend(sorted(self.buckets[b]))
                self.buckets[b] = None
        k = path_key(rel)
        i = bisect.bisect_left(self.keys, k)
        return i < len(self.keys) and self.keys[i] == k


class Problems(list):
    """The first KEEP problems and how many there were."""
    count = 0

    def append(self, p):
        self.count += 1
        if len(self) < KEEP: super().append(p)

    def extend(self, ps):
        for p in ps: self.append(p)

    def add_count(self, n):
        self.count += n


# How the set's tree is read: every directory opened relative to its parent's descriptor, never
# through a link (a directory of the set swapped for a link to a copy elsewhere would otherwise be
# read as if it were in the set, and verified), every file opened relative to its directory's
# descriptor without following a link at its name, nor blocking on a FIFO put in its place.
O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC


def descend(paths, fds, root_fd, d, open_one):
    """The descriptor of the directory D ('' the root ROOT_FD) by an open chain: PATHS and FDS, the
    directories opened last, each inside the one before. Those D is not in are closed; D's other
    components are opened by OPEN_ONE(parent_fd, name, path) and added to the chain."""
    while paths and not (d.startswith(paths[-1]) and d[len(paths[-1]):len(paths[-1]) + 1] in ('', '/')):
        paths.pop(); os.close(fds.pop())
    at = paths[-1] if paths else ''
    fd = fds[-1] if fds else root_fd
    for name in (d[len(at) + 1:] if at else d).split('/') if d != at else ():
        at = at + '/' + name if at else name
        fd = open_one(fd, name, at)
        paths.append(at); fds.append(fd)
    return fd


class NotInSet(Exception):
    """A directory of a path that is not a directory in the set: the problem of every path below it."""


class Below:
    """A set's tree read below one descriptor of its root (TREE names it in problems): dir_fd(DIR)
    opens DIR ('' the root) one component at a time, each relative to its parent with O_NOFOLLOW |
    O_DIRECTORY, so a symbolic link anywhere on the way is NotInSet naming it. The chain of the
    directory asked last stays open (as the copier's walk keeps its directories): the lists are in
    walk order, every file of a directory after the other, so most paths cost no open at all."""

    def __init__(self, tree, root):
        self.tree, self.path = tree, root
        self.paths, self.fds, self.cur, self.fd = [], [], None, None
        try:
            self.root = os.open(root, O_DIR)
        except OSError as e:
            self.root = None
            self.error = self._why(e, None, '')

    def _why(self, e, parent, rel):
        """NotInSet for the directory REL ('' the root) that could not be opened in PARENT."""
        where = '%s/%s' % (self.tree, rel) if rel else self.tree
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            try:
                st = os.lstat(rel.rpartition('/')[2], dir_fd=parent) if rel else os.lstat(self.path)
            except OSError:
                st = None
            if e.errno == errno.ELOOP or st is not None and stat.S_ISLNK(st.st_mode):
                return NotInSet('%s is a symbolic link in the set, not a directory' % where)
            return NotInSet('missing (%s is not a directory in the set)' % where)
        if e.errno == errno.ENOENT:
            return NotInSet('missing')
        return NotInSet('cannot be read: %s: %s' % (where, e.strerror or e))

    def dir_fd(self, d):
        if d == self.cur:
            return self.fd
        if self.root is None:
            raise self.error
        self.cur = None

        def one(parent, name, at):
            try:
                return os.open(name, O_DIR, dir_fd=parent)
            except OSError as e:
                raise self._why(e, parent, at) from None
        fd = descend(self.paths, self.fds, self.root, d, one)
        self.cur, self.fd = d, fd
        return fd

    def close(self):
        for fd in self.fds: os.close(fd)
        if self.root is not None: os.close(self.root)
        self.paths, self.fds, self.cur, self.root = [], [], None, None
        self.error = NotInSet('missing')


def check_tree(tree, root, listing, progress, files_hint=None, record=None):
    """The tree's files against its list, by verify-quick-part processes: (files, bytes, problems in
    the list's order, then the files the list does not name). A small tree (FILES_HINT below
    IN_PROCESS, as its manifest counts them) is checked here: starting the processes would cost
    more than they save. RECORD: the tree's list of directories and links (NAME.entries.jsonl), in
    sets that have one."""
    if isinstance(files_hint, int) and files_hint < IN_PROCESS:
        found = Problems()
        try:
            files, nbytes = _check_part(tree, root, listing, 0, 1, lambda i, text: found.append(text), progress.add, record)
            _walk_part(tree, root, listing, lambda i, text: found.append(text), 0, 1, record)
        except (ValueError, TypeError, LookupError) as e:  # a list line that is not [path, size, mtime, sha256]
            raise SystemExit('ERROR: checking the %s tree failed: its file list cannot be read (%s)' % (tree, one_line(e)))
        return files, nbytes, found
    n = parts.workers()
    found = Problems()
    kept = []  # (index, problem) of every process, merged in list order
    files = nbytes = 0

    def done(_i, d):
        nonlocal files, nbytes
        files += d['files']; nbytes += d['bytes']
        found.add_count(d['more'])  # problems beyond what the process sent
    parts.run([['verify-quick-part', tree, root, listing, k, str(n), *([record] if record else [])] for k in [*map(str, range(n)), *('walk%d' % j for j in range(n))]],
              parts.reader(progress.add, lambda p: kept.append((p[0], p[1])), done),
              lambda status: 'ERROR: checking the %s tree failed (a verify-quick-part process ended with status %s; '
                             'its error is above)' % (tree, status))
    for _, text in sorted(kept, key=lambda x: x[0]): found.append(text)
    return files, nbytes, found


def part(argv):
    """verify-quick-part: one process's share of a tree's check. K of N: the files on every Nth
    line of the list from line K; walkJ: the files the list does not name in every Nth directory of
    the tree's top from the Jth (walk0 also the files at the top). Writes what parts.reader reads:
    progress in bytes, the first KEEP problems said as [index, text] (index: where the problem is in
    the list, or in the walk, for merging in order) and at the end {files, bytes, more} (more:
    problems found beyond those sent)."""
    if len(argv) not in (5, 6):
        raise SystemExit(PART_USAGE)
    tree, root, listing, k, n = argv[:5]
    record = argv[5] if len(argv) == 6 else None
    try:
        n = int(n)
        walk = int(k[4:]) if k.startswith('walk') else None
        k = None if walk is not None else int(k)
        if not 0 <= (k if walk is None else walk) < n: raise ValueError(k)
    except ValueError:
        raise SystemExit(PART_USAGE)
    progress = parts.Progress()  # bytes, added by _check_part 4 MiB at a time
    sent = [0, 0]  # problems sent, and found beyond them

    def problem(i, text):
        if sent[0] < KEEP:
            sent[0] += 1
            parts.say([i, text])
        else:
            sent[1] += 1
    try:
        if walk is not None:
            _walk_part(tree, root, listing, problem, walk, n, record)
            files = nbytes = 0
        else:
            files, nbytes = _check_part(tree, root, listing, k, n, problem, progress.add, record)
    except (ValueError, TypeError, LookupError) as e:  # a list line that is not [path, size, mtime, sha256]
        raise SystemExit('ERROR: %s: the file list cannot be read (%s)' % (tree, one_line(e)))
    progress.flush()
    parts.report({'files': files, 'bytes': nbytes, 'more': sent[1]})
    return 0


def _check_part(tree, root, listing, k, n, problem, done, record=None):
    """The files on every Nth line of LISTING from line K, then (RECORD: the tree's list of
    directories and links) the directories and links on every Nth line of RECORD from line K:
    PROBLEM(index, text) for each problem, DONE(bytes) now and then; returns (files, bytes). With a
    RECORD (written by a copier that also keeps each file's listed time), a file's modification time
    is checked too."""
    mv = memoryview(bytearray(BUF))
    files = nbytes = unreported = 0
    below = Below(tree, root)
    try:
        with open(listing, encoding='utf-8') as f:
            for i, line in enumerate(f):
                if i % n != k: continue
                rel, size, mtime, digest = json.loads(line)
                files += 1; nbytes += size; unreported += size
                r = _check_file(below, rel, size, mtime if record else None, digest, mv)
                if r: problem(i, '%s/%s: %s' % (tree, rel, r))
                if unreported >= 1 << 22:
                    done(unreported)
                    unreported = 0
        done(unreported)
        if record:
            with open(record, encoding='utf-8') as f:
                for i, line in enumerate(f):
                    if i % n != k: continue
                    r, rel = _check_entry(below, json.loads(line))
                    if r: problem(1 << 61 | i, '%s/%s: %s' % (tree, rel, r))
    finally:
        below.close()
    return files, nbytes


def _in_dir(below, rel):
    """(descriptor of REL's directory, REL's name); NotInSet if its directory is not one in the set."""
    d, _, name = rel.rpartition('/')
    return below.dir_fd(d), name


def _check_file(below, rel, size, mtime, digest, mv):
    """What is wrong with the listed file REL, or None: opened once relative to its directory's
    descriptor (no stat by path), read into the process's one buffer. MTIME: the listed time in
    seconds, checked unless None."""
    d, _, name = rel.rpartition('/')
    try:
        fd = os.open(name, O_FILE, dir_fd=below.dir_fd(d))
    except NotInSet as e:
        return str(e)
    except FileNotFoundError:
        return 'missing'
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW met a link where the file was
            return 'a symbolic link, not the listed file'
        return 'cannot be read: %s' % (e.strerror or e)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 'not a regular file'
        if st.st_size != size:
            return 'size %d, list says %d' % (st.st_size, size)
        h = hashlib.sha256()
        while True:
            got = os.readv(fd, [mv])
            if not got: break
            h.update(mv[:got])
        if h.hexdigest() != digest:
            return 'sha256 does not match'
        if mtime is not None and st.st_mtime_ns // 1000000000 != mtime:
            return 'modified %s, list says %s' % (_when(st.st_mtime_ns // 1000000000), _when(mtime))
        return None
    except OSError as e:
        return 'cannot be read: %s' % (e.strerror or e)
    finally:
        os.close(fd)


def _when(seconds):
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    except (OverflowError, OSError, ValueError, TypeError):
        return str(seconds)


def _check_entry(below, entry):
    """(what is wrong with the directory or link ENTRY of a tree's record, or None; its path)."""
    kind, rel = entry[0], entry[1]
    if not isinstance(rel, str) or kind not in ('d', 'l'): raise ValueError(entry)
    try:
        if kind == 'd':
            below.dir_fd(rel)
            return None, rel
        target = entry[2]
        dfd, name = _in_dir(below, rel)
        try:
            now = os.readlink(name, dir_fd=dfd)
        except FileNotFoundError:
            return 'symbolic link missing (the list has one to %s)' % target, rel
        except OSError as e:
            if e.errno == errno.EINVAL:
                return 'not a symbolic link (the list has one to %s)' % target, rel
            return 'cannot be read: %s' % (e.strerror or e), rel
        if now != target:
            return 'symbolic link to %s, list says %s' % (now, target), rel
        return None, rel
    except NotInSet as e:
        why = str(e)
        return ('directory missing' if why == 'missing' and kind == 'd' else
                'symbolic link missing (the list has one to %s)' % entry[2] if why == 'missing' else why), rel


def _share(top, n):
    """Which of N walkers looks at the top directory TOP (None: the files at the top, walker 0's)."""
    return 0 if top is None else path_key(top) % n


def _walk_part(tree, root, listing, problem, j, n, record=None):
    # The listed paths of this walker's share (8 bytes each); then the walk asks each file of its
    # share of the tree. With the tree's RECORD of directories and links, also each directory and
    # link of its share: one the record does not name is a problem too (a link is walker 0's at
    # the top, like a file; a directory is the walker's whose share it is, as when it is entered).
    keys = KeySet()
    with open(listing, encoding='utf-8') as f:
        for line in f:
            rel = json.loads(line)[0]
            top, sep, _ = rel.partition('/')
            if _share(top if sep else None, n) == j:
                keys.add(rel)
    dirs = links = None
    if record:
        dirs, links = KeySet(), KeySet()
        with open(record, encoding='utf-8') as f:
            for line in f:
                kind, rel = json.loads(line)[:2]
                top, sep, _ = rel.partition('/')
                if _share(top if sep or kind == 'd' else None, n) == j:
                    (dirs if kind == 'd' else links).add(rel)
    i = 0
    # Depth first by name, each directory's files before its subdirectories (os.walk's order, links
    # left out), paths made as the walk goes (os.path.relpath per file was a third of the walk's time).
    # Problems are numbered by the top directory they are in (0: the top itself), then in walk
    # order, so that the walkers' reports merge in the tree's order.
    stack = [('', 0)]
    while stack:
        rel, top = stack.pop()
        where = lambda: 1 << 62 | top << 32 | i  # noqa: E731
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            if rel or j == 0:  # the top is every walker's: named once
                problem(where(), '%s: cannot be read: %s' % ('%s/%s' % (tree, rel) if rel else tree, e.strerror or e))
                i += 1
            continue
        subs = []
        nth = 0
        for e in entries:
            r = rel + '/' + e.name if rel else e.name
            if e.is_symlink():
                # The copier keeps a link of the live tree as a link, not in the file list (there
                # is no content of its own to checksum): neither a file to find in the list nor a
                # directory to enter, wherever it leads. Its record (where the set has one) names
                # it with its target, checked by _check_part.
                if links is not None and (rel or j == 0) and r not in links:
                    problem(where(), '%s/%s: symbolic link not in the list' % (tree, r))
                    i += 1
                continue
            if e.is_dir():
                if not rel:  # this process's share of the top directories
                    nth += 1
                    if _share(e.name, n) != j: continue
                if dirs is not None and r not in dirs:
                    problem(where(), '%s/%s: directory not in the list' % (tree, r))
                    i += 1
                subs.append((r, top or nth))
            elif not rel and j != 0:
                continue
            elif r not in keys:
                problem(where(), '%s/%s: not in the file list' % (tree, r))
                i += 1
        stack.extend(reversed(subs))


def main(argv, say_problems=True):
    """SAY_PROBLEMS: print a PROBLEM line each (run on its own); a verify job leaves that to
    verify-result, which prints the quick and the deep ones together, each once."""
    if len(argv) != 5:
        raise SystemExit(USAGE)
    d, toc_ok, out = argv[0], argv[1] == 'yes', argv[3]
    try:
        toc_n = int(argv[2] or 0)
    except ValueError:
        raise SystemExit('verify-quick: TOC_ENTRIES is not a number: %r\n%s' % (argv[2], USAGE))
    archives = dict(l.rstrip('\n').split('\t', 1) for l in open(argv[4]) if '\t' in l)
    m = json.load(open(os.path.join(d, 'manifest.json'), encoding='utf-8'))
    problems = Problems()
    checked_files = 0; checked_bytes = 0
    # Everything hashed: the artifacts, and the files of each tree (its list's artifact records their bytes).
    progress = Progress('verify', sum(a.get('size', 0) + (a.get('bytes', 0) if a.get('tree') else 0) for a in m.get('artifacts', [])))
    bad = set()
    for a in m.get('artifacts', []):
        p = os.path.join(d, a['name'])
        if not os.path.isfile(p):
            problems.append('missing artifact %s' % a['name']); bad.add(a['name']); continue
        size = os.path.getsize(p)
        if size != a['size']:
            problems.append('%s: size %d, manifest says %d' % (a['name'], size, a['size'])); bad.add(a['name']); continue
        if sha256(p) != a['sha256']:
            problems.append('%s: sha256 does not match the manifest' % a['name'])
            bad.add(a['name'])
        progress.add(size)
        checked_files += 1; checked_bytes += size
        if a.get('archiveOf'):
            got = archives.get(a['name'], 'unreadable')
            if got == 'unreadable' or len(got.split()) != 2:
                problems.append('%s: tar cannot read it' % a['name'])
            elif (int(got.split()[0]), int(got.split()[1])) != (a.get('files'), a.get('bytes')):
                problems.append('%s: %s files/bytes, manifest says %s %s' % (a['name'], got, a.get('files'), a.get('bytes')))
        if a['name'] == 'db.dump':
            if not toc_ok: problems.append('db.dump: pg_restore -l cannot read it')
            elif a.get('tocEntries') is not None and toc_n != a['tocEntries']:
                problems.append('db.dump: %d TOC entries, manifest says %d' % (toc_n, a['tocEntries']))
    for a in m.get('artifacts', []):
        tree = a.get('tree')
        if not tree: continue
        if a['name'] in bad:
            # The list itself is damaged, so it cannot vouch for the tree.
            problems.append('%s: tree not checked, its file list is damaged' % tree); continue
        # The tree's directories and links (NAME.entries.jsonl, sets written since it exists): only
        # as the manifest vouches for it; an older set has none, and is checked without.
        rec = next((r for r in m.get('artifacts', []) if r.get('name') == entries_name(tree)), None)
        if rec is not None and rec['name'] in bad:
            problems.append('%s: tree not checked, its list of directories and links is damaged' % tree); continue
        files, nbytes, found = check_tree(tree, os.path.join(d, tree), os.path.join(d, a['name']), progress, a.get('files'),
                                          os.path.join(d, rec['name']) if rec is not None else None)
        checked_files += files; checked_bytes += nbytes
        problems.extend(found)
        problems.add_count(found.count - len(found))
    result = {'level': 'quick', 'ok': not problems, 'problems': problems[:KEEP], 'problemCount': problems.count,
              'files': checked_files, 'bytes': checked_bytes,
              'at': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}
    if say_problems:
        for p in problems[:200]: print('PROBLEM: ' + one_line(p))
    with open(out, 'w') as f: json.dump(result, f)
    print('checked %d files, %d bytes: %d problem(s)' % (checked_files, checked_bytes, problems.count))
