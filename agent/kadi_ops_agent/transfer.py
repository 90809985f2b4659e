"""Set transfers between hosts: the upload side's file lists, seal check and links.

  transfer list ROOT
      Prints a [path, size, sha256] JSON line for each regular file under ROOT (symbolic links
      and special files left out), path relative to ROOT, directories and files by name: what an
      interrupted upload left (upload-status), and what seal-upload checks.
  transfer seal-check UPLOAD
      Checks UPLOAD/.received (the `transfer list` of the upload, written there before) against the
      expected [path, size, sha256] lines on stdin: every expected file present with its size and
      hash, no other file (.received itself aside), manifest.json among them. Names the first 20
      mismatches and the first 20 unexpected files on stderr; exits 1 unless all is well.
  transfer link BACKUP_DIR SET UPLOAD
      For the tree files on stdin ([path, size, sha256] lines, paths TREE/REL) that another set in
      BACKUP_DIR (newest first) already has with the same size and hash (by its TREE.files.jsonl),
      hard-links that copy into UPLOAD instead of receiving it again, and prints each linked path
      as a JSON string. An unsafe path (absolute, '', '.' or '..' components, not inside a tree)
      fails the command.

The verbs built on them: read-toc, send-set, receive-set, upload-status, seal-upload, upload-link.
"""
import contextlib
import io
import json
import os
import re
import stat
import subprocess
import sys

from .common import check_set_name, die, fail, one_line, out, sha256, sync_fs

USAGE = 'usage: transfer list ROOT | transfer seal-check UPLOAD | transfer link BACKUP_DIR SET UPLOAD'
SET_RE = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$')


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


def list_files(root):
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(d, fn)
            if os.path.islink(p) or not os.path.isfile(p): continue
            print(json.dumps([os.path.relpath(p, root), os.path.getsize(p), sha256(p)]))


def seal_check(upload):
    want = {}
    for line in sys.stdin:
        if line.strip():
            path, size, digest = json.loads(line)
            want[path] = (size, digest)
    have = {}
    with open(upload + "/.received", encoding="utf-8") as f:
        for line in f:
            path, size, digest = json.loads(line)
            if path != ".received": have[path] = (size, digest)
    bad = [p for p in want if have.get(p) != want[p]]
    extra = [p for p in have if p not in want]
    for p in bad[:20]: print("mismatch: %s: %s, expected %s" % (one_line(p), have.get(p, "missing"), want[p]), file=sys.stderr)
    for p in extra[:20]: print("unexpected file: %s" % one_line(p), file=sys.stderr)
    return 1 if bad or extra or "manifest.json" not in have else 0


def link(bd, name, partial):
    want = {}
    for line in sys.stdin:
        if not line.strip(): continue
        path, size, digest = json.loads(line)
        parts = path.split("/")
        if path.startswith("/") or any(x in ("", ".", "..") for x in parts) or len(parts) < 2:
            sys.exit("unsafe path: %r" % path)
        want[path] = (size, digest)
    trees = sorted({p.split("/", 1)[0] for p in want})
    others = sorted((n for n in os.listdir(bd) if SET_RE.match(n) and n != name), reverse=True)
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
    files = [p for p in sys.stdin.buffer.read().split(b'\0') if p]
    for p in files:
        check_rel_path(os.fsdecode(p))
    if not files:
        die('no files requested')
    sys.stdout.flush()
    r = subprocess.run(['tar', '-C', d, '--null', '--no-recursion', '--hard-dereference', '-T', '-', '-cf', '-'],
                       input=b''.join(p + b'\0' for p in files))
    return r.returncode


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
    """upload-status BACKUP_DIR SET: what an interrupted upload left ([path, size, sha256] lines)."""
    p = _no_set_yet(*argv)
    if os.path.isdir(p):
        list_files(p)


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
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        list_files(p)
    with open(os.path.join(p, '.received'), 'w', encoding='utf-8') as f:
        f.write(listing.getvalue())
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
