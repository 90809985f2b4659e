# --- dump listings and set transfers ------------------------------------------------------

# read-toc BACKUP_DIR SET: the set's db.toc (the `pg_restore -l` output saved at backup time).
cmd_read_toc() {
  check_set_name "$2"
  [ -f "$1/$2/db.toc" ] || die "set $2 has no db.toc"
  cat -- "$1/$2/db.toc"
}

# A path inside a set: relative, no '.', '..' or empty components, no newline.
check_rel_path() {
  local p=$1
  [[ -n $p && $p != /* && $p != *$'\n'* && $p != *//* && /$p/ != */../* && /$p/ != */./* && $p != */ ]] || die "unsafe path: $p"
}

# send-set BACKUP_DIR SET: reads NUL-separated paths inside the set on stdin and writes one tar
# stream of those files to stdout (hard links as content, so every member is a plain file).
cmd_send_set() {
  check_set_name "$2"
  local dir="$1/$2" p
  local -a files=()
  [ -f "$dir/manifest.json" ] || die "no set $2 in $1"
  while IFS= read -r -d '' p; do check_rel_path "$p"; files+=("$p"); done
  [ ${#files[@]} -gt 0 ] || die "no files requested"
  printf '%s\0' "${files[@]}" | tar -C "$dir" --null --no-recursion --hard-dereference -T - -cf -
}

upload_dir() { printf '%s/.partial-upload-%s' "$1" "$2"; }

# receive-set BACKUP_DIR SET: unpacks a tar stream from stdin into BACKUP_DIR/.partial-upload-SET.
# Files of an earlier, interrupted upload stay (resuming); the set only appears with seal-upload.
cmd_receive_set() {
  check_set_name "$2"
  local bd=$1 p
  p=$(upload_dir "$1" "$2")
  [ -d "$bd" ] || die "backup directory $bd does not exist"
  [ -e "$bd/$2" ] && die "set $2 already exists in $bd"
  mkdir -p -m 700 "$p"
  tar -C "$p" --no-same-owner --no-same-permissions -xf -
  echo "received=$2"
}

# Prints [path, size, sha256] JSON lines for the files under $1 (relative paths).
TRANSFER_LIST_PY="$PY_PRELUDE"'
import json, os
root = sys.argv[1]
for d, dirs, files in os.walk(root):
    dirs.sort()
    for fn in sorted(files):
        p = os.path.join(d, fn)
        if os.path.islink(p) or not os.path.isfile(p): continue
        print(json.dumps([os.path.relpath(p, root), os.path.getsize(p), sha256(p)], ensure_ascii=False))
'

# upload-status BACKUP_DIR SET: what an interrupted upload left ([path, size, sha256] lines).
cmd_upload_status() {
  check_set_name "$2"
  local p
  p=$(upload_dir "$1" "$2")
  [ -e "$1/$2" ] && die "set $2 already exists in $1"
  [ -d "$p" ] || return 0
  python3 -I -S -c "$TRANSFER_LIST_PY" "$p"
}

# seal-upload BACKUP_DIR SET: checks the upload against the expected [path, size, sha256] lines
# on stdin (every file present with its size and hash, nothing else), then renames it into place.
cmd_seal_upload() {
  check_set_name "$2"
  local bd=$1 p
  p=$(upload_dir "$1" "$2")
  [ -d "$p" ] || die "no upload of $2 in $bd"
  [ -e "$bd/$2" ] && die "set $2 already exists in $bd"
  python3 -I -S -c "$TRANSFER_LIST_PY" "$p" > "$p/.received"
  python3 -I -S -c '
import json, sys
want = {}
for line in sys.stdin:
    if line.strip():
        path, size, digest = json.loads(line)
        want[path] = (size, digest)
have = {}
with open(sys.argv[1] + "/.received", encoding="utf-8") as f:
    for line in f:
        path, size, digest = json.loads(line)
        if path != ".received": have[path] = (size, digest)
bad = [p for p in want if have.get(p) != want[p]]
extra = [p for p in have if p not in want]
for p in bad[:20]: print("mismatch: %s: %s, expected %s" % (p, have.get(p, "missing"), want[p]), file=sys.stderr)
for p in extra[:20]: print("unexpected file: %s" % p, file=sys.stderr)
sys.exit(1 if bad or extra or "manifest.json" not in have else 0)
' "$p" || fail "the uploaded files do not match the set's manifest; nothing was sealed"
  rm -f "$p/.received"
  sync -f "$p" 2>/dev/null || sync
  mv "$p" "$bd/$2"
  echo "set=$2"
}

# upload-link BACKUP_DIR SET: for the tree files on stdin ([path, size, sha256] lines) that another
# set on this host already has with the same size and hash (by its file list), hard-links that copy
# into the partial upload instead of receiving it again — as backups do with rsync --link-dest.
# Prints each linked path as a JSON string. seal-upload still hashes every file before sealing.
cmd_upload_link() {
  check_set_name "$2"
  local p
  p=$(upload_dir "$1" "$2")
  [ -e "$1/$2" ] && die "set $2 already exists in $1"
  mkdir -p -m 700 "$p"
  python3 -I -S -c '
import json, os, re, stat, sys
bd, name, partial = sys.argv[1], sys.argv[2], sys.argv[3]
SET_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$")
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
' "$1" "$2" "$p"
}
