# --- backup sets ----------------------------------------------------------------------------


# Newest set directory that has a manifest (the previous good set), or nothing.
newest_good_set() {
  local bd=$1 d
  for d in $(ls -1r "$bd" 2>/dev/null); do
    [[ $d =~ $SET_RE ]] || continue
    [ -f "$bd/$d/manifest.json" ] && { echo "$bd/$d"; return 0; }
  done
  return 0
}


# Copies a live tree into the set as a plain tree, hard-linking files unchanged since the
# previous set (rsync --link-dest), so each set is complete but only new data costs space.
copy_tree() {
  local name=$1 src=$2 prev=$3 dest=$4
  [ -d "$src" ] || fail "$name directory $src does not exist"
  if have rsync; then
    local link=()
    [ -n "$prev" ] && [ -d "$prev" ] && link=(--link-dest="$prev")
    rsync -a --info=progress2 --no-inc-recursive "${link[@]}" "$src/" "$dest/" | rsync_progress "$name"
  else
    echo "rsync is missing: copying $name in full (install rsync for incremental sets)" >&2
    cp -a "$src/." "$dest/"
  fi
}

archive_tree() {
  local name=$1 src=$2 out=$3
  [ -d "$src" ] || fail "$name directory $src does not exist"
  local total rc=0 p w
  if have zstd; then
    tar -C "$src" -cf - . | zstd -q -T0 -3 -o "$out.tar.zst" &
  else
    tar -C "$src" -cf - . | gzip -1 > "$out.tar.gz" &
  fi
  p=$!
  # The compressor reads the whole tar stream: its read count against the tree's size, measured
  # while tar already runs (a walk of a large tree must not delay the archive).
  total=$(du -sb "$src" 2>/dev/null | cut -f1) || total=0
  watch_read "$name" "$p" "${total:-0}" & w=$!
  wait "$p" || rc=$?
  kill "$w" 2>/dev/null || true
  wait "$w" 2>/dev/null || true
  return "$rc"
}

JOB_VERBS+=(backup)

# backup key=value...   (runs as a job; see backup/backupPlan.ts for the options)
cmd_backup() {
  parse_opts "$@"
  local bd; bd=$(opt backup_dir)
  local id=$JOB_ID ts partial prev
  [ -d "$bd" ] || fail "backup directory $bd does not exist"
  local t0; t0=$(now)
  partial="$bd/.partial-$id"
  mkdir -m 700 "$partial"
  echo "$partial" > "$JOB_DIR/partial"
  prev=$(newest_good_set "$bd")
  local info="$partial/.info"
  {
    echo "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "previous=${prev##*/}"
    echo "hostname=$(hostname -f 2>/dev/null || hostname)"
  } > "$info"

  # Database password: from the job's secret file into a 0600 passfile in the job dir.
  make_passfile "$JOB_DIR" "$(opt pg_host)" "$(opt pg_port)" "$(opt pg_db)" "$(opt pg_user)" < "$JOB_DIR/secret"
  local PGCONN=(-h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w)
  local psql=$(opt psql) pg_dump=$(opt pg_dump) pg_restore=$(opt pg_restore)

  step "checking free space in $bd"
  local sizes db_bytes table_bytes free_kb need_kb
  # The tables' own size (heap and TOAST, no indexes) is about what pg_dump reads: the estimate for
  # its progress. From pg_class statistics, because pg_table_size() would wait behind any lock
  # on a table before the dump even starts.
  sizes=$("$psql" -X -At -F ' ' "${PGCONN[@]}" -d "$(opt pg_db)" -c "select pg_database_size(current_database()),
    (select coalesce(sum(c.relpages + coalesce(t.relpages, 0)), 0) * current_setting('block_size')::bigint
       from pg_class c join pg_namespace n on n.oid = c.relnamespace left join pg_class t on t.oid = c.reltoastrelid
      where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema'))") || fail "cannot reach the database"
  read -r db_bytes table_bytes <<< "$sizes"
  free_kb=$(df -Pk "$bd" | awk 'NR==2 {print $4}')
  need_kb=$((db_bytes / 1024 / 4))
  if [ -z "$prev" ]; then
    need_kb=$((need_kb + $(du -sk "$(opt storage_path)" | cut -f1) + $(du -sk "$(opt uploads_path)" | cut -f1)))
  fi
  if [ "$need_kb" -gt "$free_kb" ]; then
    fail "not enough space in $bd: about $((need_kb / 1024)) MiB needed, $((free_kb / 1024)) MiB free"
  fi

  # Optional: stop the application for a fully consistent set (stop_services/start_services live
  # in 60-restore.sh); they are started again as soon as the dump and the copies are done.
  if [ "$(opt stop_services)" = yes ]; then
    step "services: stopping $(opt services)"
    stop_services
  fi

  step "database: exporting a snapshot"
  # One session holds a REPEATABLE READ snapshot; pg_dump uses it and the row counts are taken
  # in it, so the dump, the counts and the start of the file copies are one consistent moment.
  coproc SNAP { PGAPPNAME="kadi-ops-$id" "$psql" -X -At -q -v ON_ERROR_STOP=1 "${PGCONN[@]}" -d "$(opt pg_db)" 2>&1; }
  echo "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();" >&"${SNAP[1]}"
  local snapshot=''
  IFS= read -r -t 60 snapshot <&"${SNAP[0]}" || true
  [[ $snapshot =~ ^[0-9A-F-]+$ ]] || fail "could not export a database snapshot: $snapshot"
  echo "snapshot=$snapshot" >> "$info"

  local z; z=$(opt dump_compression)
  [[ $z =~ ^[0-9]$ ]] || fail "dump_compression must be a gzip level 0-9, got '$z'"
  step "database: pg_dump -Fc -Z $z ($pg_dump)"
  PGAPPNAME="kadi-ops-$id" "$pg_dump" -Fc -Z "$z" "${PGCONN[@]}" --snapshot="$snapshot" -f "$partial/db.dump" "$(opt pg_db)" &
  local dump_pid=$!
  watch_read database "$dump_pid" "$table_bytes" & local dump_watch=$!

  # Row counts in the same snapshot, for deep verification later.
  cat >&"${SNAP[1]}" <<'SQL'
SELECT format('SELECT %L || E''\t'' || count(*) FROM %I.%I;', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY 1 \gexec
\echo __kadi_ops_counts_done__
SQL
  local line
  : > "$partial/db.counts.tsv"
  while IFS= read -r -t 3600 line <&"${SNAP[0]}"; do
    [ "$line" = __kadi_ops_counts_done__ ] && break
    case $line in *$'\t'*) printf '%s\n' "$line" >> "$partial/db.counts.tsv" ;; *) fail "counting rows: $line" ;; esac
  done

  local mode; mode=$(opt files_mode)
  step "files: copying STORAGE_PATH and MISC_UPLOADS_PATH ($mode)"
  local st_pid up_pid
  if [ "$mode" = archive ]; then
    archive_tree storage "$(opt storage_path)" "$partial/storage" & st_pid=$!
    archive_tree uploads "$(opt uploads_path)" "$partial/uploads" & up_pid=$!
  else
    copy_tree storage "$(opt storage_path)" "${prev:+$prev/storage}" "$partial/storage" & st_pid=$!
    copy_tree uploads "$(opt uploads_path)" "${prev:+$prev/uploads}" "$partial/uploads" & up_pid=$!
  fi
  local rc_dump=0 rc_st=0 rc_up=0 t_files t_dump
  t_files=$(now)
  wait "$dump_pid" || rc_dump=$?
  kill "$dump_watch" 2>/dev/null || true
  t_dump=$(now)
  echo "COMMIT;" >&"${SNAP[1]}"
  exec {SNAP[1]}>&-
  wait "$SNAP_PID" 2>/dev/null || true
  wait "$st_pid" || rc_st=$?
  wait "$up_pid" || rc_up=$?
  local t_copied; t_copied=$(now)
  if [ "$(opt stop_services)" = yes ]; then
    step "services: starting them again"
    start_services || echo "WARNING: a service did not start again; see above" >&2
  fi
  [ "$rc_dump" -eq 0 ] || fail "pg_dump exited with status $rc_dump"
  [ "$rc_st" -eq 0 ] || fail "copying STORAGE_PATH failed (status $rc_st)"
  [ "$rc_up" -eq 0 ] || fail "copying MISC_UPLOADS_PATH failed (status $rc_up)"
  [ -s "$partial/db.dump" ] || fail "pg_dump produced an empty file"

  step "database: reading the dump's table of contents"
  "$pg_restore" -l "$partial/db.dump" > "$partial/db.toc" || fail "pg_restore -l cannot read the new dump"

  if [ "$(opt redis)" = yes ]; then
    step "redis: BGSAVE"
    redis_bgsave
    cp "$(opt redis_dump)" "$partial/redis.rdb" || fail "cannot copy $(opt redis_dump)"
  fi

  step "config: archiving the Kadi configuration"
  local cfg; cfg=$(opt kadi_config)
  local -a cfgfiles=("$cfg")
  local k
  while IFS= read -r k; do [ -n "$k" ] && cfgfiles+=("$k"); done <<< "$(opt config_extra)"
  tar -cf - --absolute-names "${cfgfiles[@]}" | gzip -6 > "$partial/config.tar.gz" || fail "cannot archive the Kadi configuration"

  if [ "$mode" = archive ]; then
    step "files: reading back the archives"
    local a
    for a in "$partial"/storage.tar.* "$partial"/uploads.tar.*; do
      echo "archive_${a##*/}=$(archive_listing "$a")" >> "$info" || fail "cannot read back ${a##*/}"
    done
  fi

  local t_manifest; t_manifest=$(now)
  step "manifest: listing and hashing new files"
  echo "ended=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$info"
  { echo "$PY_PRELUDE"; cat <<'PY'; } | python3 -I -S - "$partial" "${prev}" "$(opt manifest_json)" || fail "writing the manifest failed"
import concurrent.futures, json, os
partial, prev, base_json = sys.argv[1], sys.argv[2], sys.argv[3]

def load_list(path):
    out = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                rel, size, mtime, digest = json.loads(line)
                out[rel] = digest
    except FileNotFoundError:
        pass
    return out

def scan_tree(name):
    root = os.path.join(partial, name)
    prev_root = os.path.join(prev, name) if prev else None
    prev_hashes = load_list(os.path.join(prev, name + '.files.jsonl')) if prev else {}
    entries, todo = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            digest = None
            if prev_root and rel in prev_hashes:
                try:
                    pst = os.lstat(os.path.join(prev_root, rel))
                    if pst.st_ino == st.st_ino and pst.st_dev == st.st_dev:
                        digest = prev_hashes[rel]
                except FileNotFoundError:
                    pass
            entries.append([rel, st.st_size, int(st.st_mtime), digest])
            if digest is None: todo.append(len(entries) - 1)
    return entries, todo

def finish_tree(name, entries, todo, progress):
    root = os.path.join(partial, name)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        for i, d in zip(todo, ex.map(lambda i: sha256(os.path.join(root, entries[i][0])), todo)):
            entries[i][3] = d
            progress.add(entries[i][1])
    with open(os.path.join(partial, name + '.files.jsonl'), 'w', encoding='utf-8') as f:
        for e in entries: f.write(json.dumps(e, ensure_ascii=False) + '\n')
    return {'files': len(entries), 'bytes': sum(e[1] for e in entries), 'newFiles': len(todo), 'newBytes': sum(entries[i][1] for i in todo)}

info = dict(l.rstrip('\n').split('=', 1) for l in open(os.path.join(partial, '.info')) if '=' in l)
m = json.loads(base_json)
m['startedAt'] = info.get('started'); m['endedAt'] = info.get('ended')
m['hostname'] = info.get('hostname'); m['previousSet'] = info.get('previous') or None
m['artifacts'] = []
scans = {name: scan_tree(name) for name in ('storage', 'uploads') if os.path.isdir(os.path.join(partial, name))}
# One progress over everything hashed: the trees' new files, then the artifacts.
artifact_bytes = sum(os.path.getsize(os.path.join(partial, fn)) for fn in os.listdir(partial)
                     if not fn.startswith('.') and os.path.isfile(os.path.join(partial, fn)))
progress = Progress('manifest', artifact_bytes + sum(e[i][1] for e, todo in scans.values() for i in todo))
trees = {name: finish_tree(name, entries, todo, progress) for name, (entries, todo) in scans.items()}
toc_entries = sum(1 for l in open(os.path.join(partial, 'db.toc'), encoding='utf-8', errors='replace') if l and l[0].isdigit())
counts = {}
for l in open(os.path.join(partial, 'db.counts.tsv'), encoding='utf-8'):
    t, c = l.rstrip('\n').rsplit('\t', 1); counts[t] = int(c)
for fn in sorted(os.listdir(partial)):
    p = os.path.join(partial, fn)
    if fn.startswith('.') or not os.path.isfile(p): continue
    a = {'name': fn, 'size': os.path.getsize(p), 'sha256': sha256(p)}
    progress.add(a['size'])
    if fn == 'db.dump': a['tocEntries'] = toc_entries; a['tables'] = len(counts); a['rows'] = sum(counts.values())
    for name, t in trees.items():
        if fn == name + '.files.jsonl': a['tree'] = name; a.update(t)
    if fn.startswith(('storage.tar', 'uploads.tar')):
        a['archiveOf'] = fn.split('.')[0]
        files, nbytes = info.get('archive_' + fn, '0 0').split()
        a['files'] = int(files); a['bytes'] = int(nbytes)
    m['artifacts'].append(a)
m['trees'] = trees
m['rowCounts'] = counts
tmp = os.path.join(partial, 'manifest.json.tmp')
with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(m, f, indent=2, sort_keys=True); f.write('\n'); f.flush(); os.fsync(f.fileno())
os.rename(tmp, os.path.join(partial, 'manifest.json'))
PY
  rm -f "$info"

  local t_seal; t_seal=$(now)
  step "sealing the set"
  sync -f "$partial" 2>/dev/null || sync
  ts=$(date -u +%Y-%m-%dT%H-%M-%SZ)
  while [ -e "$bd/$ts" ]; do sleep 1; ts=$(date -u +%Y-%m-%dT%H-%M-%SZ); done
  mv "$partial" "$bd/$ts"
  rm -f "$JOB_DIR/partial"
  sync -f "$bd" 2>/dev/null || true
  # Where the time went (dump and file copies run side by side).
  echo "timing: until-dump-started=$(elapsed "$t0" "$t_files")s dump=$(elapsed "$t_files" "$t_dump")s files=$(elapsed "$t_files" "$t_copied")s toc-redis-config=$(elapsed "$t_copied" "$t_manifest")s manifest=$(elapsed "$t_manifest" "$t_seal")s seal=$(elapsed "$t_seal" "$(now)")s total=$(elapsed "$t0" "$(now)")s"
  echo "set=$ts"
}

# Removes what a cancelled or failed backup left behind.
cleanup_backup() {
  parse_opts "$@"
  if [ "$(opt stop_services)" = yes ]; then start_services || true; fi
  local p; p=$(cat "$JOB_DIR/partial" 2>/dev/null || true)
  if [ -n "$p" ] && [ -d "$p" ]; then rm -rf -- "$p"; echo "[kadi-ops] removed partial set $p"; fi
  rm -f "$JOB_DIR/pgpass"
}

