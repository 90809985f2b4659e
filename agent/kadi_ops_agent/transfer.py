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
"""
import json
import os
import re
import stat
import sys

from .common import sha256

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
            print(json.dumps([os.path.relpath(p, root), os.path.getsize(p), sha256(p)], ensure_ascii=False))


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
    for p in bad[:20]: print("mismatch: %s: %s, expected %s" % (p, have.get(p, "missing"), want[p]), file=sys.stderr)
    for p in extra[:20]: print("unexpected file: %s" % p, file=sys.stderr)
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
                    print(json.dumps(path, ensure_ascii=False))
