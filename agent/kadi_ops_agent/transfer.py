"""Set transfers between hosts: the upload side's file lists, seal check and links.

  transfer list ROOT
      Prints a [path, size, sha256] JSON line for each regular file under ROOT (symbolic links
      and special files left out), path relative to ROOT, directories and files by name: what
      seal-upload checks.
  transfer seal-check UPLOAD
      Checks UPLOAD/.received (the `transfer list` of the upload, written there before) against the
      expected [path, size, sha256] lines on stdin: every expected file present with its size and
      hash, no other file (.received itself aside), manifest.json among them. Names the first 20
      mismatches and the first 20 unexpected files on stderr; exits 1 unless all is well. Both
      lists are sorted on disk by sort(1) and merged: its memory does not grow with the set.
  transfer link BACKUP_DIR SET UPLOAD
      For the tree files on stdin ([path, size, sha256] lines, paths TREE/REL) that another set in
      BACKUP_DIR (newest first) already has with the same size and hash (by its TREE.files.jsonl),
      hard-links that copy into UPLOAD instead of receiving it again, and prints each linked path
      as a JSON string, a chunk of LINK_CHUNK wanted files at a time. An unsafe path (absolute, '',
      '.' or '..' components, not inside a tree) fails the command (files of earlier chunks stay
      linked: they are the ones the upload wants).

The verbs built on them: read-toc, send-set, receive-set, upload-status, seal-upload, upload-link.

A transfer moves a set's regular files only, and not their times: a set that went through the
workstation arrives without its trees' symbolic links and empty directories, its files timed when
they were downloaded. Where the set records them (TREE.entries.jsonl, named by its manifest),
seal-upload makes them again from the record and the file list before it checks the upload
(restore_entries).
"""
import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

from .common import check_set_name, die, fail, one_line, out, sha256, sync_fs, walk_tree
from .verify_quick import O_DIR, descend, entries_name

USAGE = 'usage: transfer list ROOT | transfer seal-check UPLOAD | transfer link BACKUP_DIR SET UPLOAD'
SET_RE = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$')
# sort(1)'s buffer when two file lists are compared; it spills to disk beyond it.
SORT_MEMORY = '64M'
# Wanted files looked up at a time by `link` (~100 MiB of dict at most).
LINK_CHUNK = 200_000
# Prefix of a seal check's work folder beside the upload (sorted lists).
SEAL_WORK = '.kadi-ops-seal-check-'


def main(argv):
    sub = argv[0] if argv else ''
    args = argv[1:]
    if sub == 'list' and len(args) == 1:
        return list_files(*args)
    if sub == 'seal-check' and len(args) == 1:
        return seal_check(*args)
    if sub == 'link' and len(args) == 3:
        return link(*args)
    raise SystemExit(USAGE)


def list_files(root, write=None):
    """Writes a [path, size, sha256] JSON line for each regular file under ROOT (to stdout, or to
    WRITE), one at a time: a tree of any size in the same memory."""
    write = write or sys.stdout.write
    for d, dirs, files in walk_tree(root):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(d, fn)
            if os.path.islink(p) or not os.path.isfile(p): continue
            write(json.dumps([os.path.relpath(p, root), os.path.getsize(p), sha256(p)]) + '\n')


def _sorted_by_path(rows, work, name):
    """The (path, value) ROWS as a file of `PATH<TAB>VALUE` lines sorted by PATH (both as ASCII JSON,
    which holds no tab or newline), sorted by sort(1) in bounded memory, spilling to WORK: two lists
    of a million files are compared by merging, not by holding either in a dict."""
    raw = os.path.join(work, name + '.raw')
    with open(raw, 'w', encoding='ascii') as f:
        for path, value in rows:
            f.write(json.dumps(path) + '\t' + json.dumps(value) + '\n')
    done = os.path.join(work, name)
    subprocess.run(['sort', '-t', '\t', '-k1,1', '-s', '-S', SORT_MEMORY, '-T', work, '-o', done, raw],
                   env=dict(os.environ, LC_ALL='C'), check=True)
    os.unlink(raw)
    return done


def _rows_of(sorted_file):
    with open(sorted_file, encoding='ascii') as f:
        for line in f:
            key, value = line.rstrip('\n').split('\t', 1)
            yield key, value


def _expected_rows(lines):
    for line in lines:
        if line.strip():
            path, size, digest = json.loads(line)
            yield path, [size, digest]


def _remove_stale_work(parent):
    """Work folders of seal checks that were killed (older than a day: a running check of another
    upload is left alone)."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith(SEAL_WORK)]
    except OSError:
        return
    for n in names:
        p = os.path.join(parent, n)
        try:
            if time.time() - os.lstat(p).st_mtime > 86400:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def seal_check(upload):
    """Merges the expected lines (stdin) with UPLOAD/.received, each sorted by path on disk: the
    memory it takes does not grow with the number of files."""
    parent = os.path.dirname(os.path.abspath(upload))
    _remove_stale_work(parent)
    try:
        work = tempfile.mkdtemp(prefix=SEAL_WORK, dir=parent)
    except OSError as e:
        fail('cannot make a work folder in %s to compare the file lists: %s' % (parent, e))
    try:
        try:
            want = _sorted_by_path(_expected_rows(sys.stdin), work, 'want')
            with open(upload + "/.received", encoding="utf-8") as f:
                have = _sorted_by_path((r for r in _expected_rows(f) if r[0] != '.received'), work, 'have')
        except (OSError, subprocess.CalledProcessError) as e:
            fail('cannot sort the file lists in %s to compare them: %s' % (parent, e))
        except (ValueError, TypeError) as e:
            fail('a file list holds a line that is not [path, size, sha256]: %s' % e)
        manifest = json.dumps('manifest.json')
        bad = extra = 0
        has_manifest = False

        def show(value):
            return 'missing' if value is None else repr(tuple(json.loads(value)))

        def wrong(text):
            nonlocal bad
            bad += 1
            if bad <= 20:
                print(text, file=sys.stderr)

        def mismatch(key, got, expected):
            wrong("mismatch: %s: %s, expected %s" % (one_line(json.loads(key)), show(got), show(expected)))

        ws, hs = _rows_of(want), _rows_of(have)
        w, h = next(ws, None), next(hs, None)
        last = None
        while w is not None or h is not None:
            if h is not None and (w is None or h[0] < w[0]):
                extra += 1
                has_manifest = has_manifest or h[0] == manifest
                if extra <= 20:
                    print("unexpected file: %s" % one_line(json.loads(h[0])), file=sys.stderr)
                h = next(hs, None)
            elif h is None or w[0] < h[0]:
                if w[0] == last:
                    wrong("listed twice: %s" % one_line(json.loads(w[0])))
                else:
                    mismatch(w[0], None, w[1])
                last = w[0]
                w = next(ws, None)
            else:
                has_manifest = has_manifest or h[0] == manifest
                if w[1] != h[1]:
                    mismatch(w[0], h[1], w[1])
                last = w[0]
                w, h = next(ws, None), next(hs, None)
        if bad or extra:
            print("%d expected files missing or different, %d unexpected files" % (bad, extra), file=sys.stderr)
        if not has_manifest:
            print("manifest.json is missing", file=sys.stderr)
        return 1 if bad or extra or not has_manifest else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def link(bd, name, partial):
    """Reads the wanted files in chunks of LINK_CHUNK lines and looks each chunk up in the other
    sets' lists (newest first): the memory does not grow with the number of files."""
    others = sorted((n for n in os.listdir(bd) if SET_RE.match(n) and n != name), reverse=True)
    want = {}
    for line in sys.stdin:
        if not line.strip(): continue
        path, size, digest = json.loads(line)
        parts = path.split("/")
        if path.startswith("/") or any(x in ("", ".", "..") for x in parts) or len(parts) < 2:
            sys.exit("unsafe path: %r" % path)
        want[path] = (size, digest)
        if len(want) >= LINK_CHUNK:
            _link_chunk(bd, others, partial, want)
            want = {}
    _link_chunk(bd, others, partial, want)


def _link_chunk(bd, others, partial, want):
    trees = sorted({p.split("/", 1)[0] for p in want})
    for other in others:
        if not want: break
        for tree in trees:
            try:
                f = open(os.path.join(bd, other, tree + ".files.jsonl"), encoding="utf-8")
            except OSError:
                continue
            with f:
                for line in f:
                    try:
                        rel, size, _mtime, digest = json.loads(line)
                    except ValueError:
                        continue
                    path = tree + "/" + rel
                    if want.get(path) != (size, digest): continue
                    src = os.path.join(bd, other, tree, rel)
                    dst = os.path.join(partial, path)
                    try:
                        st = os.lstat(src)
                        if not stat.S_ISREG(st.st_mode) or st.st_size != size: continue
                        os.makedirs(os.path.dirname(dst), mode=0o700, exist_ok=True)
                        if os.path.lexists(dst): os.unlink(dst)
                        os.link(src, dst)
                    except OSError:
                        continue
                    del want[path]
                    print(json.dumps(path))


# --- verbs -------------------------------------------------------------------------------------

def read_toc(argv):
    """read-toc BACKUP_DIR SET: the set's db.toc (the `pg_restore -l` output saved at backup time)."""
    bd, name = argv
    check_set_name(name)
    path = os.path.join(bd, name, 'db.toc')
    if not os.path.isfile(path):
        die('set %s has no db.toc' % name)
    with open(path, 'rb') as f:
        sys.stdout.buffer.write(f.read())


def check_rel_path(p):
    """A path inside a set: relative, no '.', '..' or empty components, no newline."""
    if not p or p.startswith('/') or '\n' in p or p.endswith('/') or any(c in ('', '.', '..') for c in p.split('/')):
        die('unsafe path: %s' % p)


def send_set(argv):
    """send-set BACKUP_DIR SET: reads NUL-separated paths inside the set on stdin and writes one tar
    stream of those files to stdout (hard links as content, so every member is a plain file)."""
    bd, name = argv
    check_set_name(name)
    d = os.path.join(bd, name)
    if not os.path.isfile(os.path.join(d, 'manifest.json')):
        die('no set %s in %s' % (name, bd))
    # The names are read, checked and handed to tar as they arrive: a million of them take the
    # memory of one read.
    tar = None
    rest = b''
    try:
        while True:
            chunk = sys.stdin.buffer.read1(1 << 16)
            rest += chunk
            names = rest.split(b'\0')
            rest = names.pop() if chunk else b''
            names = [p for p in names if p]
            for p in names:
                check_rel_path(os.fsdecode(p))
            if names:
                if tar is None:
                    sys.stdout.flush()
                    tar = subprocess.Popen(['tar', '-C', d, '--null', '--no-recursion', '--hard-dereference', '-T', '-', '-cf', '-'],
                                           stdin=subprocess.PIPE)
                tar.stdin.write(b''.join(p + b'\0' for p in names))
            if not chunk:
                break
    except BaseException:
        if tar is not None:
            tar.kill()  # a partial stream must not end like a whole one
            tar.wait()
        raise
    if tar is None:
        die('no files requested')
    tar.stdin.close()
    return tar.wait()


def upload_dir(bd, name):
    return os.path.join(bd, '.partial-upload-' + name)


def receive_set(argv):
    """receive-set BACKUP_DIR SET: unpacks a tar stream from stdin into BACKUP_DIR/.partial-upload-SET.
    Files of an earlier, interrupted upload stay (resuming); the set only appears with seal-upload."""
    bd, name = argv
    check_set_name(name)
    p = upload_dir(bd, name)
    if not os.path.isdir(bd):
        die('backup directory %s does not exist' % bd)
    if os.path.lexists(os.path.join(bd, name)):
        die('set %s already exists in %s' % (name, bd))
    os.makedirs(p, mode=0o700, exist_ok=True)
    r = subprocess.run(['tar', '-C', p, '--no-same-owner', '--no-same-permissions', '-xf', '-'])
    if r.returncode != 0:
        return r.returncode
    out('received=' + name)


def _no_set_yet(bd, name):
    check_set_name(name)
    if os.path.lexists(os.path.join(bd, name)):
        die('set %s already exists in %s' % (name, bd))
    return upload_dir(bd, name)


def upload_status(argv):
    """upload-status BACKUP_DIR SET: which of the files on stdin ([path, size, sha256] lines) an
    interrupted upload left complete (same size and hash), each printed as a JSON string. The client
    asks a batch at a time, so neither side holds the list of a whole set."""
    p = _no_set_yet(*argv)
    there = os.path.isdir(p)
    for line in sys.stdin:
        if not line.strip():
            continue
        path, size, digest = json.loads(line)
        check_rel_path(path)
        if not there:
            continue
        f = os.path.join(p, path)
        try:
            st = os.lstat(f)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == size and sha256(f) == digest:
            print(json.dumps(path))


def seal_upload(argv):
    """seal-upload BACKUP_DIR SET: makes the trees' recorded directories, links and file times again
    (restore_entries), checks the upload against the expected [path, size, sha256] lines on stdin
    (every file present with its size and hash, nothing else), then renames it into place."""
    bd, name = argv
    check_set_name(name)
    p = upload_dir(bd, name)
    if not os.path.isdir(p):
        die('no upload of %s in %s' % (name, bd))
    if os.path.lexists(os.path.join(bd, name)):
        die('set %s already exists in %s' % (name, bd))
    restore_entries(p)
    with open(os.path.join(p, '.received'), 'w', encoding='utf-8') as f:
        list_files(p, f.write)
    if seal_check(p):
        fail("the uploaded files do not match the set's manifest; nothing was sealed")
    os.unlink(os.path.join(p, '.received'))
    sync_fs(p)
    os.rename(p, os.path.join(bd, name))
    out('set=' + name)


# --- a set's directories, links and file times, made again at sealing -------------------------------

class _Refused(Exception):
    """What in an upload or its record keeps its trees' directories and links from being made."""


def _plain_name(n):
    return isinstance(n, str) and n not in ('', '.', '..') and '/' not in n and '\0' not in n


def _safe_rel(rel):
    """A path below a tree's root: relative, no '', '.' or '..' component, no NUL."""
    return isinstance(rel, str) and not rel.startswith('/') and '\0' not in rel and all(c not in ('', '.', '..') for c in rel.split('/'))


def restore_entries(p):
    """For each tree of the upload P whose manifest names its record of directories and links
    (verify_quick.entries_name, sets written since the copier keeps one): every recorded directory
    made (empty ones too) and every recorded link made with its target, then every file of the
    tree's list given its listed modification time, as the copier left them in the set the upload
    was made from. A set without the record (written before it) is left as it arrived.

    Nothing is followed: every directory is opened below its parent with O_NOFOLLOW, so a link in
    the upload (or one the record makes) is never gone through, and nothing outside P is made or
    changed. The record and the list are used only as the manifest vouches for them. A file hard
    linked from another set of the host (upload-link) whose time is not its list's is replaced by a
    copy of its own first: that set's file keeps its time. Fails, nothing sealed, where the record
    cannot be carried out (an unsafe path, a file or directory where it has a link, a link or file
    where it has a directory). Runs again as often as the seal is tried: what is there already is
    left as it is."""
    try:
        with open(os.path.join(p, 'manifest.json'), encoding='utf-8') as f:
            m = json.load(f)
    except (OSError, ValueError):
        return  # the seal check says what is wrong with it
    artifacts = m.get('artifacts') if isinstance(m, dict) else None
    if not isinstance(artifacts, list):
        return
    artifacts = [a for a in artifacts if isinstance(a, dict)]
    for a in artifacts:
        tree = a.get('tree')
        if not tree or not isinstance(tree, str):
            continue
        rec = next((r for r in artifacts if r.get('name') == entries_name(tree)), None)
        if rec is None:
            continue
        if not _plain_name(tree) or not _plain_name(a.get('name')):
            why = 'the manifest names it by an unsafe path'
        else:
            why = _as_manifest_says(p, a) or _as_manifest_says(p, rec)
        if why is None:
            try:
                _restore_tree(p, tree, os.path.join(p, a['name']), os.path.join(p, rec['name']))
            except _Refused as e:
                why = str(e)
            except OSError as e:
                why = '%s%s' % (e.strerror or e, ': %s' % e.filename if e.filename else '')
        if why:
            fail('cannot make the %s tree\'s directories, links and file times again from %s and %s: %s; nothing was sealed'
                 % (one_line(tree), one_line(str(a.get('name'))), one_line(rec['name']), one_line(why)))


def _as_manifest_says(p, a):
    """Why the upload's artifact A is not what the manifest says (None: it is)."""
    f = os.path.join(p, a['name'])
    try:
        st = os.lstat(f)
    except OSError:
        return '%s is missing' % a['name']
    if not stat.S_ISREG(st.st_mode):
        return '%s is not a file' % a['name']
    if st.st_size != a.get('size') or sha256(f) != a.get('sha256'):
        return '%s does not match the set\'s manifest' % a['name']
    return None


class _Dirs:
    """Directories of a tree of the upload, each opened (O_PATH) below its parent's descriptor
    without following a link, made where missing if asked (0700, as the upload's others): a link,
    file or anything else where a directory belongs is _Refused, never gone through. The chain of
    the directory asked last stays open (the record and the list are in walk order)."""

    def __init__(self, tree, root_fd):
        self.tree, self.root = tree, root_fd
        self.paths, self.fds = [], []

    def fd(self, d, make):
        """The descriptor of the directory D ('' the root); FileNotFoundError where it is missing
        and not MAKE."""
        if not d:
            return self.root
        return descend(self.paths, self.fds, self.root, d, lambda parent, name, at: _open_dir(parent, name, make, '%s/%s' % (self.tree, at)))

    def close(self):
        for fd in self.fds: os.close(fd)
        self.paths, self.fds = [], []


def _open_dir(parent, name, make, where):
    for _ in range(2):
        try:
            return os.open(name, O_DIR, dir_fd=parent)
        except FileNotFoundError:
            if not make:
                raise
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass  # made meanwhile: opened as it is
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise _Refused('%s is %s in the upload, not a directory' % (where, _kind(parent, name))) from None
            raise
    return os.open(name, O_DIR, dir_fd=parent)


def _kind(dfd, name):
    try:
        mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
    except OSError:
        return 'something else'
    return ('a symbolic link' if stat.S_ISLNK(mode) else 'a directory' if stat.S_ISDIR(mode)
            else 'a file' if stat.S_ISREG(mode) else 'a special file')


def _restore_tree(p, tree, listing, record):
    top = os.open(p, O_DIR)
    try:
        root = _open_dir(top, tree, True, tree)
    finally:
        os.close(top)
    dirs = _Dirs(tree, root)
    try:
        with open(record, encoding='utf-8') as f:
            for n, line in enumerate(f, 1):
                try:
                    entry = json.loads(line)
                    if not isinstance(entry, list): raise TypeError(entry)
                    kind, rel = entry[0], entry[1]
                    target = entry[2] if kind == 'l' else None
                except (ValueError, TypeError, LookupError):
                    raise _Refused('line %d is not ["d", path] or ["l", path, target]' % n) from None
                if kind not in ('d', 'l') or not _safe_rel(rel) or kind == 'l' and not (isinstance(target, str) and target and '\0' not in target):
                    raise _Refused('line %d is not a safe ["d", path] or ["l", path, target]: %s' % (n, one_line(line.strip()[:300])))
                if kind == 'd':
                    dirs.fd(rel, True)
                else:
                    _make_link(dirs, tree, rel, target)
        with open(listing, encoding='utf-8') as f:
            for n, line in enumerate(f, 1):
                try:
                    e = json.loads(line)
                    rel, mtime = e[0], e[2]
                except (ValueError, TypeError, LookupError):
                    raise _Refused('%s: line %d is not [path, size, mtime, sha256]' % (os.path.basename(listing), n)) from None
                if not _safe_rel(rel) or not isinstance(mtime, int) or isinstance(mtime, bool):
                    raise _Refused('%s: line %d is not a safe [path, size, mtime, sha256]' % (os.path.basename(listing), n))
                _set_time(dirs, rel, mtime)
    finally:
        dirs.close()
        os.close(root)


def _make_link(dirs, tree, rel, target):
    d, _, name = rel.rpartition('/')
    dfd = dirs.fd(d, True)
    try:
        now = os.readlink(name, dir_fd=dfd)
    except FileNotFoundError:
        os.symlink(target, name, dir_fd=dfd)
        return
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise _Refused('%s/%s is %s in the upload where the record has a symbolic link' % (tree, rel, _kind(dfd, name))) from None
        raise
    if now != target:  # the link itself replaced (nothing to keep of a link but its target)
        tmp = _new_name(dfd, name, lambda t: os.symlink(target, t, dir_fd=dfd))
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)


def _new_name(dfd, name, make):
    """A name beside NAME that nothing has, made by MAKE(name)."""
    for i in range(100):
        tmp = '.kadi-ops-seal-%d-%d-%s' % (os.getpid(), i, name[:100])
        try:
            make(tmp)
            return tmp
        except FileExistsError:
            continue
    raise _Refused('no free name beside %s' % name)


def _set_time(dirs, rel, mtime):
    """Gives the listed file REL the time MTIME (seconds, as the list has it) where its time is
    another; a file missing or not a regular file is left to the seal check to name."""
    d, _, name = rel.rpartition('/')
    try:
        dfd = dirs.fd(d, False)
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except (FileNotFoundError, _Refused):
        return
    if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns // 1000000000 == mtime:
        return
    if st.st_nlink > 1:
        _own_copy(dfd, name, st)
    os.utime(name, ns=(st.st_atime_ns, mtime * 1000000000), dir_fd=dfd, follow_symlinks=False)


def _own_copy(dfd, name, st):
    """Replaces the file NAME (hard linked: another set has it too) by a copy of its own."""
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    fds = []
    try:
        tmp = _new_name(dfd, name, lambda t: fds.append(os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)))
        try:
            with open(src, 'rb', closefd=False) as fi, open(fds[0], 'wb', closefd=False) as fo:
                shutil.copyfileobj(fi, fo, 1 << 20)
            os.fchmod(fds[0], stat.S_IMODE(st.st_mode))
            os.close(fds.pop())
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            for fd in fds: os.close(fd)
            fds.clear()
            os.unlink(tmp, dir_fd=dfd)
            raise
    finally:
        os.close(src)


def upload_link(argv):
    """upload-link BACKUP_DIR SET: hard-links tree files another set already has (see link)."""
    bd, name = argv
    p = _no_set_yet(bd, name)
    os.makedirs(p, mode=0o700, exist_ok=True)
    return link(bd, name, p)
