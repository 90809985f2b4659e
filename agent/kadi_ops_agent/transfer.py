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
"""
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
    """seal-upload BACKUP_DIR SET: checks the upload against the expected [path, size, sha256] lines
    on stdin (every file present with its size and hash, nothing else), then renames it into place."""
    bd, name = argv
    check_set_name(name)
    p = upload_dir(bd, name)
    if not os.path.isdir(p):
        die('no upload of %s in %s' % (name, bd))
    if os.path.lexists(os.path.join(bd, name)):
        die('set %s already exists in %s' % (name, bd))
    with open(os.path.join(p, '.received'), 'w', encoding='utf-8') as f:
        list_files(p, f.write)
    if seal_check(p):
        fail("the uploaded files do not match the set's manifest; nothing was sealed")
    os.unlink(os.path.join(p, '.received'))
    sync_fs(p)
    os.rename(p, os.path.join(bd, name))
    out('set=' + name)


def upload_link(argv):
    """upload-link BACKUP_DIR SET: hard-links tree files another set already has (see link)."""
    bd, name = argv
    p = _no_set_yet(bd, name)
    os.makedirs(p, mode=0o700, exist_ok=True)
    return link(bd, name, p)
