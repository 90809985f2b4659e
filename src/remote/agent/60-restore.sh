# --- restore --------------------------------------------------------------------------------
# A restore is one job holding the instance lock from the safety backup to the last check, so no
# backup, verify or second restore can interleave with it. Every step records its duration in
# $JOB_DIR/steps; problems that need the operator go to $JOB_DIR/attention; both end up in the
# summary, which a re-attaching client reads from the log like everything else.

# The kadi CLI as the Kadi user with the configured KADI_CONFIG_FILE (kadiArgv in discovery.ts).
kadi_cli() { env KADI_CONFIG_FILE="$(opt kadi_config)" "$(opt kadi_cli)" "$@"; }

attention() { echo "ATTENTION: $*"; printf '%s\n' "$*" >> "$JOB_DIR/attention"; }

# step_run NAME FUNCTION ARGS...: runs one step, timing it. A failing step ends the job (errexit);
# a marker in $JOB_DIR/running/ names it in the failure summary (two steps may run side by side).
step_run() {
  local name=$1 t0=$SECONDS
  shift
  mkdir -p "$JOB_DIR/running"
  : > "$JOB_DIR/running/$name"
  step "$name"
  "$@"
  printf '%s %s ok\n' "$name" $((SECONDS - t0)) >> "$JOB_DIR/steps"
  echo "timing=$name $((SECONDS - t0))"
  rm -f "$JOB_DIR/running/$name"
}

# The database and the trees are independent once the services are stopped, so they are restored
# side by side (each its own step, with its own timing and progress). The job fails after both
# have ended if either failed; a failing step does not cut the other one short.
restore_db_and_files() {
  local dir=$1 db_pid files_pid rc_db=0 rc_files=0
  # Both in the background: a subshell in a `cmd || ...` list would run with errexit ignored.
  ( step_run database restore_db "$dir" ) &
  db_pid=$!
  ( step_run files restore_files "$dir" ) &
  files_pid=$!
  wait "$db_pid" || rc_db=$?
  wait "$files_pid" || rc_files=$?
  [ "$rc_db" -eq 0 ] && [ "$rc_files" -eq 0 ] || exit 1
}
step_skip() { printf '%s 0 skipped\n' "$1" >> "$JOB_DIR/steps"; echo "skipped=$1${2:+ ($2)}"; }

# section NAME CMD...: runs a command with its output between markers (parsed by restore/report.ts)
# and kept in $JOB_DIR/NAME.out for the checks here. Prints nothing else; returns the status.
section() {
  local name=$1 rc
  shift
  echo "[kadi-ops] begin $name"
  set +o errexit
  "$@" 2>&1 | tee "$JOB_DIR/$name.out"
  rc=${PIPESTATUS[0]}
  set -o errexit
  # A prompt ("[y/N]: ") leaves the line open; the end marker must start a line of its own.
  if [ -n "$(tail -c1 "$JOB_DIR/$name.out")" ]; then echo; fi
  echo "[kadi-ops] end $name rc=$rc"
  return "$rc"
}

has_component() { [[ ",$(opt components)," == *",$1,"* ]]; }

# --- services (systemd; root only through `sudo -n systemctl`, see restore/services.ts) --------

# Stops the listed services that exist, remembering them in $JOB_DIR/stopped so they are started
# again at the end, also after a failure or a cancel (cleanup_restore).
stop_services() {
  local s
  : > "$JOB_DIR/stopped"
  for s in $(opt services); do
    if ! systemctl list-unit-files --no-legend "$s.service" 2>/dev/null | grep -q .; then echo "service $s does not exist; skipping"; continue; fi
    systemctl is-active --quiet "$s" || { echo "service $s is not running; leaving it stopped"; continue; }
    sudo -n systemctl stop "$s" || fail "cannot stop $s: the Kadi user needs passwordless sudo for systemctl stop/start $s"
    echo "$s" >> "$JOB_DIR/stopped"
    echo "stopped $s"
  done
}

start_services() {
  [ -s "$JOB_DIR/stopped" ] || return 0
  local s rc=0
  # Reverse order: the web server last, after the application it proxies.
  for s in $(tac "$JOB_DIR/stopped"); do
    if sudo -n systemctl start "$s"; then echo "started $s"; else rc=1; attention "could not start $s again; start it by hand"; fi
  done
  rm -f "$JOB_DIR/stopped"
  return "$rc"
}

# --- database -------------------------------------------------------------------------------

PG_USER_TABLES_SQL="SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r','p','v','m','S') AND n.nspname NOT IN ('pg_catalog','information_schema')
   AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"

# The live database's objects as one line of JSON (JSON escapes newlines and quotes in names, so no
# identifier is ever split across lines): who we are, which roles' objects we may drop, and every
# object a TOC entry can name, keyed as pg_dump names it (desc, schema, tag; function tags with
# their argument types as format_type prints them under search_path ''). restore/dbPlan.ts decides
# from this which entries to keep as they are, which to create, and what to refuse.
PG_OBJECTS_SQL="SET search_path = '';
WITH nsp AS (
  SELECT oid, nspname FROM pg_catalog.pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
), ext AS (
  SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'
), objs AS (
  SELECT 'SCHEMA' AS kind, '-' AS sch, n.nspname AS tag, n.oid AS nsp_oid, pg_catalog.pg_get_userbyid(s.nspowner) AS owner, s.nspowner AS owner_oid,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND objid = n.oid) AS ext, true AS top
    FROM nsp n JOIN pg_catalog.pg_namespace s ON s.oid = n.oid
  UNION ALL
  SELECT 'EXTENSION', '-', e.extname, NULL, pg_catalog.pg_get_userbyid(e.extowner), e.extowner, false, true FROM pg_catalog.pg_extension e
  UNION ALL
  SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                        WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'INDEX' END,
         n.nspname, c.relname, n.oid, pg_catalog.pg_get_userbyid(c.relowner), c.relowner,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objid = c.oid), c.relkind NOT IN ('i', 'I')
    FROM pg_catalog.pg_class c JOIN nsp n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c', 'i', 'I')
  UNION ALL
  SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, n.nspname,
         p.proname || '(' || coalesce((SELECT pg_catalog.string_agg(pg_catalog.format_type(a.t, NULL), ', ' ORDER BY a.i)
                                         FROM pg_catalog.unnest(p.proargtypes) WITH ORDINALITY AS a(t, i)), '') || ')',
         n.oid, pg_catalog.pg_get_userbyid(p.proowner), p.proowner,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND objid = p.oid), true
    FROM pg_catalog.pg_proc p JOIN nsp n ON n.oid = p.pronamespace
  UNION ALL
  SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname, n.oid, pg_catalog.pg_get_userbyid(t.typowner), t.typowner,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND objid = t.oid), true
    FROM pg_catalog.pg_type t JOIN nsp n ON n.oid = t.typnamespace
   WHERE t.typtype IN ('b', 'd', 'e', 'r') AND t.typcategory <> 'A' AND t.typrelid = 0
  UNION ALL
  SELECT CASE o.contype WHEN 'f' THEN 'FK CONSTRAINT' WHEN 'c' THEN 'CHECK CONSTRAINT' ELSE 'CONSTRAINT' END, n.nspname,
         c.relname || ' ' || o.conname, n.oid, pg_catalog.pg_get_userbyid(c.relowner), c.relowner, false, false
    FROM pg_catalog.pg_constraint o JOIN pg_catalog.pg_class c ON c.oid = o.conrelid JOIN nsp n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'BLOB', '-', l.oid::pg_catalog.text, NULL, pg_catalog.pg_get_userbyid(l.lomowner), l.lomowner, false, false
    FROM pg_catalog.pg_largeobject_metadata l WHERE NOT pg_catalog.pg_has_role(current_user, l.lomowner, 'USAGE')
  UNION ALL
  SELECT 'EVENT TRIGGER', '-', e.evtname, NULL, pg_catalog.pg_get_userbyid(e.evtowner), e.evtowner, false, false FROM pg_catalog.pg_event_trigger e
  UNION ALL
  SELECT 'TRIGGER', n.nspname, c.relname || ' ' || g.tgname, n.oid, pg_catalog.pg_get_userbyid(c.relowner), c.relowner, false, false
    FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid JOIN nsp n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal
)
SELECT pg_catalog.json_build_object(
  'user', current_user,
  'superuser', (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
  'lockSlots', pg_catalog.current_setting('max_locks_per_transaction')::int
               * (pg_catalog.current_setting('max_connections')::int + pg_catalog.current_setting('max_prepared_transactions')::int),
  'roles', (SELECT pg_catalog.json_agg(rolname ORDER BY rolname) FROM pg_catalog.pg_roles),
  'myRoles', (SELECT pg_catalog.json_agg(rolname ORDER BY rolname) FROM pg_catalog.pg_roles WHERE pg_catalog.pg_has_role(current_user, oid, 'USAGE')),
  'objects', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(kind, sch, tag, owner,
                 pg_catalog.pg_has_role(current_user, owner_oid, 'USAGE'), ext, top)), '[]') FROM objs),
  'available', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(a.name, v.trusted, v.superuser)), '[]')
                  FROM pg_catalog.pg_available_extensions a
                  JOIN pg_catalog.pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version))"

restore_db() {
  local dir=$1 psql pg_restore n
  psql=$(opt psql); pg_restore=$(opt pg_restore)
  local C=(-h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w)
  n=$("$psql" -X -At "${C[@]}" -d "$(opt pg_db)" -c "$PG_USER_TABLES_SQL") || fail "cannot reach the database"
  # One transaction: whatever fails (an entry, a privilege, a killed pg_restore, a cut database
  # connection, a full disk, a cancel), PostgreSQL rolls all of it back and the database is as it
  # was; only a COMMIT makes it the set's content (docs/guarantees.md says why not --jobs).
  local args=(--single-transaction --exit-on-error "${C[@]}" -d "$(opt pg_db)")
  # As a role that is not a superuser, objects whose owner in the set is another role are created
  # owned by this role instead of failing on ALTER ... OWNER (no_owner, decided in restore/dbPlan.ts).
  [ "$(opt no_owner)" = yes ] && args+=(--no-owner)
  if [ "$n" -gt 0 ] || [ "$(opt clean)" = yes ]; then
    echo "database is not empty ($n relations, or objects of the set exist already): pg_restore --clean --if-exists in one transaction"
    args+=(--clean --if-exists)
  else
    echo "database is empty: plain pg_restore in one transaction"
  fi
  [ -z "$(opt jobs)" ] || echo "not using --jobs $(opt jobs): parallel workers cannot share the one transaction that makes the restore atomic"
  local entries
  if [ -s "$JOB_DIR/listing" ]; then
    entries=$(grep -c '^[0-9]' "$JOB_DIR/listing" || true)
    echo "restoring the $entries enabled entries of the plan's listing (kept objects and left-out entries are commented out)"
    args+=(-L "$JOB_DIR/listing")
  elif [ -f "$dir/db.toc" ]; then
    entries=$(grep -c '^[0-9]' "$dir/db.toc" || true)
  else
    entries=$("$pg_restore" -l "$dir/db.dump" | grep -c '^[0-9]' || true)
  fi
  echo "pg_restore -v ${args[*]} $dir/db.dump"
  # -v names every entry as it is restored: the log shows where a long restore is, and the
  # count of those lines against the enabled entries is the progress.
  local rc=0
  set +o errexit
  PGAPPNAME="kadi-ops-$JOB_ID" "$pg_restore" -v "${args[@]}" "$dir/db.dump" 2>&1 >/dev/null | pg_restore_progress "${entries:-0}" "$JOB_DIR/pg_restore.err"
  rc=${PIPESTATUS[0]}
  set -o errexit
  if [ "$rc" -ne 0 ] || grep -q 'errors ignored on restore' "$JOB_DIR/pg_restore.err"; then
    # pg_restore names the entry it failed on ("from TOC entry 215; 1259 16390 TABLE ...").
    if grep -q 'from TOC entry' "$JOB_DIR/pg_restore.err"; then
      # The error names the entry without its schema; the dump's TOC line has it.
      local entry id
      while IFS= read -r entry; do
        id=${entry%%;*}
        if [ -f "$dir/db.toc" ] && grep -m1 "^$id; " "$dir/db.toc" | sed 's/^/FAILED TOC ENTRY: /'; then :; else echo "FAILED TOC ENTRY: $entry"; fi
      done < <(sed -n 's/^.*from TOC entry \([0-9][0-9]*;.*\)$/\1/p' "$JOB_DIR/pg_restore.err")
    else
      # Errors in the --clean phase name only the command; find its entry in the dump's TOC.
      local cmd
      cmd=$(sed -n 's/^Command was: //p' "$JOB_DIR/pg_restore.err" | head -n1)
      if [[ $cmd =~ ^(DROP|CREATE|ALTER)\ ([A-Z]+)\ (IF\ EXISTS\ )?(ONLY\ )?([A-Za-z0-9_]+)\.([A-Za-z0-9_]+) ]] && [ -f "$dir/db.toc" ]; then
        grep -E "^[0-9]+; [0-9]+ [0-9]+ ${BASH_REMATCH[2]} ${BASH_REMATCH[5]} ${BASH_REMATCH[6]} " "$dir/db.toc" | sed 's/^/FAILED TOC ENTRY: /' || true
      fi
    fi
    fail "pg_restore failed (exit status $rc); the database is unchanged: the restore ran in one transaction, which PostgreSQL rolled back"
  fi
  step "database: ANALYZE"
  # As the Kadi role, ANALYZE warns once per system table it may not analyze: noise, not news.
  PGOPTIONS='-c client_min_messages=error' "$psql" -X -q "${C[@]}" -d "$(opt pg_db)" -c 'ANALYZE' || fail "ANALYZE failed"
}

# --- files ----------------------------------------------------------------------------------

# fix_tree_perms TREE OWNER GROUP: the guide's chown/chmod, touching only entries that differ and
# with one process per many files (find -exec {} +), so 20k+ files take a moment, not minutes.
fix_tree_perms() {
  local live=$1 owner=$2 group=$3 n
  # A non-root Kadi user cannot chown to another user. When it owns the live tree itself (the usual
  # kadi:kadi or kadi:www-data layout) everything rsync wrote is already its own, so only group and
  # modes remain. Anything owned by someone else is reported for a root chown.
  if [ "$(id -u)" -eq 0 ]; then
    find "$live" ! -user "$owner" -exec chown -h "$owner" {} +
  else
    n=$(find "$live" ! -user "$owner" -print | wc -l)
    [ "$n" -eq 0 ] || attention "$n entries under $live are not owned by $owner; run as root: chown -R $owner:$group $live"
  fi
  find "$live" ! -group "$group" -exec chgrp -h "$group" {} + || attention "could not set group $group everywhere under $live (is $(id -un) a member of $group?)"
  find "$live" -type d ! -perm 750 -exec chmod 750 {} +
  find "$live" -type f ! -perm 640 -exec chmod 640 {} +
}

# restore_tree NAME LIVE SETDIR: makes LIVE exactly the set's tree. rsync moves only differences
# and is idempotent, so an interrupted restore is completed by running it again. Never
# --link-dest toward the set: a hard link would make live files and backup files one inode, and
# a chmod or an edit of one would change the other.
restore_tree() {
  local name=$1 live=$2 dir=$3 src owner group
  [ -d "$live" ] || fail "$name directory $live does not exist"
  owner=$(stat -c %U "$live"); group=$(stat -c %G "$live")
  if [ -d "$dir/$name" ]; then
    src="$dir/$name"
  else
    local arch
    arch=$(ls "$dir/$name".tar.* 2>/dev/null | head -n1)
    [ -n "$arch" ] || fail "set has neither $name/ nor $name.tar.*"
    src="$JOB_DIR/extract-$name"
    remove_tree "$src"; mkdir -p "$src"
    echo "extracting $arch"
    case $arch in
      *.zst) zstd -q -d -c "$arch" | tar -C "$src" -xf - ;;
      *) tar -C "$src" -xzf "$arch" ;;
    esac
  fi
  echo "rsync -a --delete $src/ $live/   (owner $owner, group $group)"
  rsync -a --delete --stats --info=progress2 --no-inc-recursive "$src/" "$live/" |
    rsync_progress "$name" '^(Number of (regular )?files transferred|Number of deleted files|Total transferred file size)' || fail "rsync of $name failed"
  remove_tree "$JOB_DIR/extract-$name"
  fix_tree_perms "$live" "$owner" "$group"
}

restore_files() {
  local dir=$1
  if has_component storage; then restore_tree storage "$(opt storage_path)" "$dir"; fi
  if has_component uploads; then restore_tree uploads "$(opt uploads_path)" "$dir"; fi
}

# --- redis (needs root for the service and the file: sudo -n) --------------------------------
restore_redis() {
  local dir=$1 svc dump
  svc=$(opt redis_service); dump=$(opt redis_dump)
  [ -f "$dir/redis.rdb" ] || fail "the set has no Redis snapshot"
  sudo -n systemctl stop "$svc" || fail "cannot stop $svc: the Kadi user needs passwordless sudo for systemctl stop/start $svc"
  if ! sudo -n install -o redis -g redis -m 660 "$dir/redis.rdb" "$dump"; then
    sudo -n systemctl start "$svc" || true
    fail "cannot replace $dump (needs sudo for install)"
  fi
  sudo -n systemctl start "$svc" || fail "could not start $svc again"
  attention "Redis was restored: Celery tasks queued at the time of the backup will run again"
}

# --- config (only with overwrite_config=yes, confirmed separately by the operator) ------------
restore_config() {
  local dir=$1
  [ -f "$dir/config.tar.gz" ] || fail "the set has no config.tar.gz"
  tar -tzf "$dir/config.tar.gz" --absolute-names | sed 's/^/  overwriting /'
  tar -xzpf "$dir/config.tar.gz" --absolute-names || fail "extracting the configuration failed"
}

# --- after the restore ----------------------------------------------------------------------
# The kadi helpers (kadi_try, kadi_run, kadi_error, step_failed) are in 70-maintenance.sh.
db_upgrade_step() {
  kadi_run db-upgrade "kadi db upgrade" 'Upgrade completed successfully\.' kadi_cli db upgrade
}

# The checks after a restore fail the job but not at once: each one still runs (step_failed).
reindex_step() {
  local model=${1:-} n
  local args=(search reindex)
  [ -n "$model" ] && args+=(--model "$model")
  kadi_try reindex kadi_cli "${args[@]}" --i-am-sure
  if [ -n "$KADI_WHY" ]; then step_failed reindex "kadi search reindex failed ($KADI_WHY)"; return 0; fi
  # The CLI reports objects it could not index and still exits 0: those are failures.
  n=$(grep -c '^Error indexing ' "$JOB_DIR/reindex.out" || true)
  if [ "$n" -gt 0 ]; then step_failed reindex "$n object(s) could not be indexed (see the 'Error indexing' lines)"; fi
  grep -qx 'Search indices rebuilt successfully.' "$JOB_DIR/reindex.out" || step_failed reindex "kadi search reindex did not report success"
  return 0
}

indices_step() {
  local orphans why
  kadi_try search-ls kadi_cli search ls
  why=$KADI_WHY
  if [ -z "$why" ] && ! grep -q "^Indices for '.*':\$" "$JOB_DIR/search-ls.out"; then why="it listed no indices"; fi
  if [ -n "$why" ]; then step_failed indices "kadi search ls failed ($why); orphaned indices are unknown"; return 0; fi
  orphans=$(sed -n 's/^\* \([^ ]*\)$/\1/p' "$JOB_DIR/search-ls.out" | tr '\n' ' ')
  [ -z "$orphans" ] || attention "orphaned search indices (remove with remove-orphans): $orphans"
  return 0
}

files_check_step() {
  # "n": never resolve here; resolution is a separate, explicitly confirmed maintenance job.
  local n why
  kadi_try files-check sh -c 'printf "n\n" | "$@"' sh env KADI_CONFIG_FILE="$(opt kadi_config)" "$(opt kadi_cli)" files check
  why=$KADI_WHY
  n=$(sed -n 's/^Found \([0-9]*\) inconsistenc.*/\1/p' "$JOB_DIR/files-check.out" | tail -n1)
  # Only a check that ran to its end says how many inconsistencies there are.
  if [ -z "$why" ] && [ -z "$n" ] && ! grep -qx 'Files checked successfully.' "$JOB_DIR/files-check.out"; then
    why="it printed neither 'Files checked successfully.' nor 'Found N inconsistencies.'"
  fi
  if [ -n "$why" ]; then step_failed files-check "kadi files check failed ($why)"; return 0; fi
  [ -z "$n" ] || attention "kadi files check found $n inconsistencies (see files-check)"
  return 0
}

print_summary() {
  local what=$1
  echo "[kadi-ops] summary of $what"
  if [ -s "$JOB_DIR/steps" ]; then
    while read -r name secs result; do
      grep -qxF "$name" "$JOB_DIR/failed-steps" 2>/dev/null && result=FAILED
      printf '  %-16s %6ss  %s\n' "$name" "$secs" "$result"
    done < "$JOB_DIR/steps"
  fi
  if [ -s "$JOB_DIR/attention" ]; then
    echo "  needs attention:"
    sed 's/^/    - /' "$JOB_DIR/attention"
  fi
  local f
  for f in "$JOB_DIR"/running/*; do [ -e "$f" ] && echo "  FAILED in step: ${f##*/}"; done
  return 0
}

JOB_VERBS+=(restore)

# restore key=value...  (a job). The backup verb's options (for the safety backup) plus: set,
# components (comma list of db,storage,uploads,redis,config), safety (yes|no), jobs, listing
# (yes: the TOC listing follows the password on stdin), services (space separated),
# overwrite_config (yes|no), db_upgrade (yes|no), kadi_cli, redis_service.
cmd_restore() {
  parse_opts "$@"
  RESTORE_ARGS=("$@")
  local bd set dir
  bd=$(opt backup_dir); set=$(opt set)
  check_set_name "$set"
  dir="$bd/$set"
  [ -f "$dir/manifest.json" ] || fail "set $set has no manifest; it is not a complete backup"
  : > "$JOB_DIR/steps"; : > "$JOB_DIR/attention"; rm -f "$JOB_DIR/failed"
  echo "restoring set $set (components: $(opt components))"
  if [ "$(opt listing)" = yes ]; then tail -n +2 "$JOB_DIR/secret" > "$JOB_DIR/listing"; fi

  if [ "$(opt safety)" = yes ]; then
    step_run safety-backup safety_backup
  else
    step_skip safety-backup "opted out"
  fi
  step_run stop-services stop_services
  make_passfile "$JOB_DIR" "$(opt pg_host)" "$(opt pg_port)" "$(opt pg_db)" "$(opt pg_user)" < "$JOB_DIR/secret"
  if has_component db && { has_component storage || has_component uploads; }; then
    restore_db_and_files "$dir"
  else
    if has_component db; then step_run database restore_db "$dir"; else step_skip database; fi
    if has_component storage || has_component uploads; then step_run files restore_files "$dir"; else step_skip files; fi
  fi
  if has_component redis; then step_run redis restore_redis "$dir"; else step_skip redis; fi
  if has_component config && [ "$(opt overwrite_config)" = yes ]; then step_run config restore_config "$dir"
  elif has_component config; then step_skip config "not overwritten without confirmation"; fi
  if [ "$(opt db_upgrade)" = yes ]; then step_run db-upgrade db_upgrade_step; else step_skip db-upgrade "same Kadi version and revision"; fi
  step_run start-services start_services
  # The search indices mirror the database: rebuilt only when it was replaced.
  if has_component db; then
    step_run reindex reindex_step
    step_run indices indices_step
  else
    step_skip reindex "database not restored"
  fi
  step_run files-check files_check_step
  print_summary "restore of $set"
  : > "$JOB_DIR/summarised"
  if [ -f "$JOB_DIR/failed" ]; then echo "restore_result=failed"; exit 1; fi
  if [ -s "$JOB_DIR/attention" ]; then echo "restore_result=attention"; else echo "restore_result=ok"; fi
}

# The safety backup runs the backup verb in a fresh agent process inside this job (JOB_DIR and
# JOB_ID are exported by job-run), so it shares this job's lock instead of waiting for it.
safety_backup() {
  local name
  bash "$0" backup "${RESTORE_ARGS[@]}" | tee "$JOB_DIR/safety.out" || fail "the safety backup failed; nothing was changed"
  name=$(sed -n 's/^set=//p' "$JOB_DIR/safety.out" | tail -n1)
  [ -n "$name" ] || fail "the safety backup printed no set name"
  : > "$(opt backup_dir)/$name/.pre-restore"
  echo "safety_set=$name"
}

cleanup_restore() {
  parse_opts "$@"
  start_services || true
  # Failed after its own summary (a post-restore check failed): nothing more to say.
  [ -f "$JOB_DIR/summarised" ] && return 0
  cleanup_backup || true
  print_summary "restore of $(opt set)"
  local safety
  safety=$(sed -n 's/^set=//p' "$JOB_DIR/safety.out" 2>/dev/null | tail -n1 || true)
  [ -z "$safety" ] || echo "The state before this restore is in the pre-restore set $safety."
  echo "restore_result=failed"
}

# set-toc BACKUP_DIR SET: the dump's table of contents as recorded at backup time (pg_restore -l),
# for validating a selective-restore listing before the job starts.
# With a third argument, the pg_restore to read the dump's own TOC with -v: the same entries plus
# a "depends on:" line under each entry that has dependencies (restore/dbPlan.ts uses them).
cmd_set_toc() {
  check_set_name "$2"
  if [ -n "${3:-}" ]; then
    [ -f "$1/$2/db.dump" ] || die "set $2 has no db.dump"
    "$3" -l -v "$1/$2/db.dump" || die "pg_restore -l cannot read the dump of set $2"
    return 0
  fi
  [ -f "$1/$2/db.toc" ] || die "set $2 has no db.toc"
  cat "$1/$2/db.toc"
}

# restore-probe key=value...  (password on stdin): what the preflight needs to know about the live
# side - owners and free space of the trees, whether the database is empty, which services exist.
cmd_restore_probe() {
  parse_opts "$@"
  PROBE_WORK=$(mktemp -d)
  trap 'rm -rf "$PROBE_WORK"' EXIT
  make_passfile "$PROBE_WORK" "$(opt pg_host)" "$(opt pg_port)" "$(opt pg_db)" "$(opt pg_user)"
  echo "me=$(id -un)"
  local name p
  for name in storage uploads; do
    p=$(opt "${name}_path")
    if [ -d "$p" ]; then
      echo "${name}_owner=$(stat -c %U "$p")"; echo "${name}_group=$(stat -c %G "$p")"
      df -Pk "$p" | awk -v n="$name" 'NR==2 {print n "_free_kb=" $4}'
      echo "${name}_kb=$(du -sk "$p" 2>/dev/null | cut -f1)"
    else
      echo "${name}_missing=yes"
    fi
  done
  df -Pk "$(opt backup_dir)" | awk 'NR==2 {print "backup_free_kb=" $4}'
  local n
  if n=$("$(opt psql)" -X -At -h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w -d "$(opt pg_db)" -c "$PG_USER_TABLES_SQL" 2>&1); then
    echo "db_relations=$n"
    echo "db_bytes=$("$(opt psql)" -X -At -h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w -d "$(opt pg_db)" -c 'select pg_database_size(current_database())')"
    local objects
    if objects=$("$(opt psql)" -X -q -At -h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w -d "$(opt pg_db)" -c "$PG_OBJECTS_SQL" 2>&1); then
      echo "db_objects=$objects"
    else
      echo "db_objects_error=$(printf '%s' "$objects" | tr '\n' ' ')"
    fi
  else
    echo "db_error=$(printf '%s' "$n" | tr '\n' ' ')"
  fi
  if have systemctl; then
    echo "systemctl=yes"
    local s
    for s in $(opt services) $(opt redis_service); do
      if systemctl list-unit-files --no-legend "$s.service" 2>/dev/null | grep -q .; then
        echo "service=$s exists $(systemctl is-active "$s" 2>/dev/null || true) $(sudo -n -l systemctl stop "$s" >/dev/null 2>&1 && echo sudo-ok || echo no-sudo)"
      else
        echo "service=$s missing"
      fi
    done
  else
    echo "systemctl=no"
  fi
}

# config-diff BACKUP_DIR SET: per file of the set's config.tar.gz, whether the live file differs,
# and a unified diff. Contains secrets: the client redacts it before showing (restore/configDiff.ts).
cmd_config_diff() {
  check_set_name "$2"
  local tarball="$1/$2/config.tar.gz" work f
  [ -f "$tarball" ] || die "set $2 has no config.tar.gz"
  DIFF_WORK=$(mktemp -d)
  trap 'rm -rf "$DIFF_WORK"' EXIT
  work=$DIFF_WORK
  tar -xzf "$tarball" -C "$work" 2>/dev/null || die "cannot read $tarball"
  while IFS= read -r f; do
    [ -f "$work/$f" ] || continue
    f=/${f#/}
    if [ ! -e "$f" ]; then echo "config_file=$f missing-live"
    elif cmp -s "$work$f" "$f"; then echo "config_file=$f same"
    elif [[ $f != *.py ]]; then echo "config_file=$f differs"   # key files: never their content
    else
      echo "config_file=$f differs"
      echo "--- begin diff $f"
      diff -u --label "backup:$f" --label "live:$f" "$work$f" "$f" || true
      echo "--- end diff $f"
    fi
  done < <(tar -tzf "$tarball" 2>/dev/null)
}
