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

# Python: agent/kadi_ops_agent/transfer.py (`transfer list|seal-check|link`).

# upload-status BACKUP_DIR SET: what an interrupted upload left ([path, size, sha256] lines).
cmd_upload_status() {
  check_set_name "$2"
  local p
  p=$(upload_dir "$1" "$2")
  [ -e "$1/$2" ] && die "set $2 already exists in $1"
  [ -d "$p" ] || return 0
  agent_py transfer list "$p"
}

# seal-upload BACKUP_DIR SET: checks the upload against the expected [path, size, sha256] lines
# on stdin (every file present with its size and hash, nothing else), then renames it into place.
cmd_seal_upload() {
  check_set_name "$2"
  local bd=$1 p
  p=$(upload_dir "$1" "$2")
  [ -d "$p" ] || die "no upload of $2 in $bd"
  [ -e "$bd/$2" ] && die "set $2 already exists in $bd"
  agent_py transfer list "$p" > "$p/.received"
  agent_py transfer seal-check "$p" || fail "the uploaded files do not match the set's manifest; nothing was sealed"
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
  agent_py transfer link "$1" "$2" "$p"
}
