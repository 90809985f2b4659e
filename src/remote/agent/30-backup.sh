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


# copy_tree NAME SRC PREV_SET DEST: copies a live tree into the set as a plain tree, hard-linking
# what is unchanged since the previous set (agent/kadi_ops_agent/copier.py says how).
copy_tree() {
  local name=$1 src=$2 prev=$3 dest=$4
  [ -d "$src" ] || fail "$name directory $src does not exist"
  agent_py copier "$name" "$src" "$dest" "$prev" || return 1
}

# archive_tree NAME SRC OUT: OUT.tar.zst (or .tar.gz) of the tree, in name order. tar's own exit
# status is kept apart from the compressor's: 1 means files changed or vanished while tar read
# them (Kadi deletes files while it runs) - a warning, as for the copier; 2 or more fails.
# tar_tree SRC STATUS_FILE: the tar stream of SRC on stdout; tar's exit status into STATUS_FILE.
tar_tree() {
  local t=0
  tar -C "$1" --sort=name -cf - . || t=$?
  echo "$t" > "$2"
}

archive_tree() {
  local name=$1 src=$2 out=$3
  [ -d "$src" ] || fail "$name directory $src does not exist"
  local total rc=0 p w status="$(dirname "$out")/.$name.tar-status" t
  if have zstd; then
    tar_tree "$src" "$status" | zstd -q -T0 -3 -o "$out.tar.zst" &
  else
    tar_tree "$src" "$status" | gzip -1 > "$out.tar.gz" &
  fi
  p=$!
  # The compressor reads the whole tar stream: its read count against the tree's size, measured
  # while tar already runs (a walk of a large tree must not delay the archive).
  total=$(du -sb "$src" 2>/dev/null | cut -f1) || total=0
  watch_read "$name" "$p" "${total:-0}" & w=$!
  wait "$p" || rc=$?
  kill "$w" 2>/dev/null || true
  wait "$w" 2>/dev/null || true
  t=$(cat "$status" 2>/dev/null || echo 2)
  rm -f "$status"
  [ "$rc" -eq 0 ] || return "$rc"
  case $t in
    0) ;;
    1) echo "WARNING: $name: files changed or vanished while tar read them (tar names them above); the archive holds what tar read" >&2 ;;
    *) return "$t" ;;
  esac
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
  # The session's fds and pid are copied: bash unsets SNAP and SNAP_PID as soon as psql exits.
  coproc SNAP { PGAPPNAME="kadi-ops-$id" "$psql" -X -At -q "${PGCONN[@]}" -d "$(opt pg_db)" 2>&1; }
  local snap_in snap_out snap_pid=$SNAP_PID
  exec {snap_in}<&"${SNAP[0]}" {snap_out}>&"${SNAP[1]}" {SNAP[0]}<&- {SNAP[1]}>&-
  echo "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();" >&"$snap_out"
  local snapshot=''
  IFS= read -r -t 60 snapshot <&"$snap_in" || true
  [[ $snapshot =~ ^[0-9A-F-]+$ ]] || fail "could not export a database snapshot: $snapshot"
  echo "snapshot=$snapshot" >> "$info"

  local z; z=$(opt dump_compression)
  [[ $z =~ ^[0-9]$ ]] || fail "dump_compression must be a gzip level 0-9, got '$z'"
  step "database: pg_dump -Fc -Z $z ($pg_dump)"
  PGAPPNAME="kadi-ops-$id" "$pg_dump" -Fc -Z "$z" "${PGCONN[@]}" --snapshot="$snapshot" -f "$partial/db.dump" "$(opt pg_db)" &
  local dump_pid=$!
  watch_read database "$dump_pid" "$table_bytes" & local dump_watch=$!

  local mode; mode=$(opt files_mode)
  step "files: copying STORAGE_PATH and MISC_UPLOADS_PATH ($mode)"
  local st_pid up_pid t_files
  if [ "$mode" = archive ]; then
    archive_tree storage "$(opt storage_path)" "$partial/storage" & st_pid=$!
    archive_tree uploads "$(opt uploads_path)" "$partial/uploads" & up_pid=$!
  else
    copy_tree storage "$(opt storage_path)" "$prev" "$partial/storage" & st_pid=$!
    copy_tree uploads "$(opt uploads_path)" "$prev" "$partial/uploads" & up_pid=$!
  fi
  t_files=$(now)

  # Row counts in the same snapshot, for deep verification later; read while the dump and the
  # copies run. A failure is reported once they have ended (nothing is left writing into the set).
  # ON_ERROR_ROLLBACK (a savepoint per statement, set only after the export, which a savepoint
  # would refuse): a failing count must not end the transaction, or the snapshot would vanish
  # under a pg_dump that has not imported it yet.
  # Each count is one line: a tag no error message begins with, then a JSON array [schema, table,
  # rows]. JSON escapes newlines, tabs and quotes, so no identifier can split or forge a line.
  local tag; tag="kadi-ops-count-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  printf '\\set cnt_tag %s\n' "$tag" >&"$snap_out"
  cat >&"$snap_out" <<'SQL'
\set ON_ERROR_ROLLBACK on
SELECT format('SELECT %L || json_build_array(%L::text, %L::text, count(*))::text FROM %I.%I;', :'cnt_tag' || ' ', n.nspname, c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY n.nspname, c.relname \gexec
\echo :cnt_tag done
SQL
  local line counts_error=''
  : > "$partial/.counts.jsonl"
  while :; do
    if ! IFS= read -r -t 3600 line <&"$snap_in"; then counts_error=${counts_error:-"counting rows: the database session ended early"}; break; fi
    [ "$line" = "$tag done" ] && break
    case $line in "$tag "*) printf '%s\n' "${line#"$tag "}" >> "$partial/.counts.jsonl" ;; *) counts_error=${counts_error:-"counting rows: $line"} ;; esac
  done
  local rc_dump=0 rc_st=0 rc_up=0 t_dump
  wait "$dump_pid" || rc_dump=$?
  kill "$dump_watch" 2>/dev/null || true
  t_dump=$(now)
  # The session may have ended already (the database went away): no SIGPIPE. psql sees the end
  # of its input only once the copies, which inherited the pipe, have ended too.
  ( trap '' PIPE; echo "COMMIT;" >&"$snap_out" ) 2>/dev/null || true
  exec {snap_out}>&- {snap_in}<&-
  wait "$st_pid" || rc_st=$?
  wait "$up_pid" || rc_up=$?
  wait "$snap_pid" 2>/dev/null || true
  local t_copied; t_copied=$(now)
  if [ "$(opt stop_services)" = yes ]; then
    step "services: starting them again"
    start_services || echo "WARNING: a service did not start again; see above" >&2
  fi
  [ -z "$counts_error" ] || fail "$counts_error"
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
  step "manifest: hashing the database dump and the other artifacts"
  echo "ended=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$info"
  # Hashes every artifact, writes db.counts.json and manifest.json (agent/kadi_ops_agent/manifest.py).
  agent_py manifest "$partial" "$(opt manifest_json)" || fail "writing the manifest failed"
  rm -f "$info" "$partial/.storage.copy.json" "$partial/.uploads.copy.json" "$partial/.counts.jsonl"

  local t_seal; t_seal=$(now)
  step "sealing the set"
  sync -f "$partial" 2>/dev/null || sync
  ts=$(date -u +%Y-%m-%dT%H-%M-%SZ)
  while [ -e "$bd/$ts" ]; do sleep 1; ts=$(date -u +%Y-%m-%dT%H-%M-%SZ); done
  mv "$partial" "$bd/$ts"
  rm -f "$JOB_DIR/partial"
  sync -f "$bd" 2>/dev/null || true
  # Where the time went (dump and file copies run side by side).
  echo "timing: until-copies-started=$(elapsed "$t0" "$t_files")s dump=$(elapsed "$t_files" "$t_dump")s files=$(elapsed "$t_files" "$t_copied")s toc-redis-config=$(elapsed "$t_copied" "$t_manifest")s manifest=$(elapsed "$t_manifest" "$t_seal")s seal=$(elapsed "$t_seal" "$(now)")s total=$(elapsed "$t0" "$(now)")s"
  echo "set=$ts"
}

# Removes what a cancelled or failed backup left behind.
cleanup_backup() {
  parse_opts "$@"
  if [ "$(opt stop_services)" = yes ]; then start_services || true; fi
  local p; p=$(cat "$JOB_DIR/partial" 2>/dev/null || true)
  if [ -n "$p" ] && [ -d "$p" ]; then
    if remove_tree "$p"; then echo "[kadi-ops] removed partial set $p"; else echo "WARNING: could not remove all of the partial set $p" >&2; fi
  fi
  rm -f "$JOB_DIR/pgpass"
}

