JOB_VERBS+=(verify)

# verify key=value...  (a job). Quick: every artifact's size and sha256, every tree file's size and
# sha256 against the set's file lists, and the dump's table of contents. Deep, in addition:
# restore the dump into a throwaway cluster (or a scratch database; see verify_deep), compare row
# counts with those taken at backup time, and check the set's own files against the set's own
# `file` rows (size and Kadi's MD5).
# The result goes to <set>/.verify.json; the manifest is never edited.
# The checks themselves are the agent's Python commands (agent/kadi_ops_agent/): verify-quick
# (verify_quick.py), deep-check (verify_deep.py), deep-note (verify_deep_note.py), and
# verify-result (verify_result.py), which merges them into .verify.json.
cmd_verify() {
  parse_opts "$@"
  local bd set pg_restore level
  bd=$(opt backup_dir); set=$(opt set); pg_restore=$(opt pg_restore); level=$(opt level)
  check_set_name "$set"
  local dir="$bd/$set"
  [ -f "$dir/manifest.json" ] || fail "set $set has no manifest; it is not a complete backup"
  step "verifying $set: checksums of every artifact and file"
  local toc_ok=yes toc_n
  if toc_n=$("$pg_restore" -l "$dir/db.dump" 2>/dev/null | grep -c '^[0-9]'); then :; else toc_ok=no; fi
  # Archives (archive-mode sets) must decompress and parse; their entry counts are compared below.
  local a
  : > "$JOB_DIR/archives.tsv"
  for a in "$dir"/storage.tar.* "$dir"/uploads.tar.*; do
    [ -f "$a" ] || continue
    printf '%s\t%s\n' "${a##*/}" "$(archive_listing "$a" 2>/dev/null || echo unreadable)" >> "$JOB_DIR/archives.tsv"
  done
  agent_py verify-quick "$dir" "$toc_ok" "${toc_n:-0}" "$JOB_DIR/quick.json" "$JOB_DIR/archives.tsv"
  if [ "$level" = deep ]; then
    verify_deep "$dir" || true
  fi
  agent_py verify-result "$dir" "$JOB_DIR" "$level"
}

# Deep verification restores the dump into a throwaway PostgreSQL cluster the job starts itself
# (initdb of the server's major, data and socket in the job directory, no TCP, trust for the
# local socket only), so it needs no privilege on the production server and does not load it.
# Without those server binaries it falls back to a scratch database on the production server,
# which needs CREATEDB. Which one ran goes to the output and to the result's deep.mode; when
# neither can run, the result says why (deep.notRun) instead of calling the set damaged.
verify_deep() {
  local dir=$1 bindir major why mode
  rm -f "$JOB_DIR/deep.json" "$JOB_DIR/restored.counts.jsonl" "$JOB_DIR/restored.files.jsonl"
  major=$(opt pg_major)
  [ -n "$major" ] || major=$("$(opt pg_restore)" --version 2>/dev/null | sed -n 's/.* \([0-9][0-9]*\)\..*/\1/p;s/.* \([0-9][0-9]*\)$/\1/p' | head -n1)
  bindir=$(opt pg_bindir)
  [ -n "$bindir" ] || [ -z "$major" ] || bindir=/usr/lib/postgresql/$major/bin
  # The restore's connection: psql and pg_restore arguments, and the database.
  DEEP_CONN=() DEEP_DB=''
  if why=$(cluster_unusable "$bindir" "$major") && cluster_start "$dir" "$bindir" "$major"; then
    mode=throwaway-cluster
  else
    [ -n "$why" ] || why=$(cat "$JOB_DIR/cluster_failed" 2>/dev/null || echo 'the throwaway cluster did not start')
    cluster_stop
    echo "deep: no throwaway cluster ($why); falling back to a scratch database on the production server"
    if ! scratch_create; then
      deep_not_run "no throwaway PostgreSQL cluster ($why), and role $(opt pg_user) may not create a scratch database on the production server (CREATEDB)"
      return 1
    fi
    mode=scratch-database
  fi
  echo "deep: mode=$mode"
  [ "$mode" != throwaway-cluster ] || step "deep: restoring the dump into the throwaway cluster"
  local rc=0 where
  [ "$mode" = throwaway-cluster ] && where="the throwaway cluster" || where="the scratch database"
  set +o errexit
  "$(opt pg_restore)" -v --no-owner --no-privileges --exit-on-error "${DEEP_CONN[@]}" -d "$DEEP_DB" "$dir/db.dump" 2>&1 >/dev/null |
    pg_restore_progress "$(grep -c '^[0-9]' "$dir/db.toc" 2>/dev/null || true)" "$JOB_DIR/deep_restore.err" quiet
  rc=${PIPESTATUS[0]}
  set -o errexit
  if [ "$rc" -ne 0 ]; then
    local err; err=$(grep -m1 -E 'error:|ERROR:' "$JOB_DIR/deep_restore.err" 2>/dev/null | tr -d '\r' | cut -c1-400 || true)
    deep_finish
    # A missing extension or library of this host's server binaries is not a fault of the set.
    if [ "$mode" = throwaway-cluster ] && grep -qE 'extension "[^"]*" is not available|extension control file|could not access file|could not load library' "$JOB_DIR/deep_restore.err" 2>/dev/null; then
      deep_not_run "the dump needs something this host's PostgreSQL $major server binaries lack: $err"
    else
      agent_py deep-note "$JOB_DIR/deep.json" failed "pg_restore into $where failed${err:+: $err}" "$mode"
    fi
    return 1
  fi
  step "deep: counting rows and reading file records"
  # One JSON value per line: identifiers with newlines, tabs or quotes cannot split a line.
  local count_ok=yes files_ok=yes
  "$(opt psql)" -X -At -v ON_ERROR_STOP=1 "${DEEP_CONN[@]}" -d "$DEEP_DB" > "$JOB_DIR/restored.counts.jsonl" 2> "$JOB_DIR/restored.err" <<'SQL' || count_ok=no
SELECT format('SELECT json_build_array(%L::text, %L::text, count(*))::text FROM %I.%I;', n.nspname, c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY n.nspname, c.relname \gexec
SQL
  "$(opt psql)" -X -At -v ON_ERROR_STOP=1 "${DEEP_CONN[@]}" -d "$DEEP_DB" \
    -c "SELECT json_build_array(id::text, size, coalesce(checksum, ''), state::text)::text FROM file WHERE storage_type = 'local'" \
    > "$JOB_DIR/restored.files.jsonl" 2>> "$JOB_DIR/restored.err" || files_ok=no
  deep_finish
  step "deep: checking the set's files against the set's database"
  agent_py deep-check "$dir" "$JOB_DIR" "$(opt chunk_size)" "$mode" "$count_ok" "$files_ok"
}

# Why a throwaway cluster cannot run here (printed, status 1), or nothing (status 0).
# $1 directory of the server binaries, $2 the server's major.
cluster_unusable() {
  local bindir=$1 major=$2 t v
  [ -n "$bindir" ] || { echo "the server's PostgreSQL major is not known"; return 1; }
  for t in initdb pg_ctl postgres; do
    [ -x "$bindir/$t" ] || { echo "no $t in $bindir (install postgresql-$major)"; return 1; }
  done
  v=$("$bindir/postgres" --version 2>/dev/null | sed -n 's/.* \([0-9][0-9]*\)\..*/\1/p;s/.* \([0-9][0-9]*\)$/\1/p' | head -n1)
  [ -z "$major" ] || [ "$v" = "$major" ] || { echo "$bindir/postgres is PostgreSQL ${v:-?}, the server is $major"; return 1; }
  [ "$(id -u)" != 0 ] || { echo "PostgreSQL does not run as root"; return 1; }
  return 0
}

# Starts the throwaway cluster: $JOB_DIR/cluster/data, its socket in $JOB_DIR/cluster/s (or, when
# that path is too long or unusual for a socket, in a fresh 0700 directory under /tmp, recorded
# for the cleanup). The postmaster runs in the job's process group, so a cancel or kill of the job
# reaches it too; cluster_stop (also from cleanup_verify) stops it and removes everything.
# $1 set directory, $2 server binaries, $3 major. Sets DEEP_CONN and DEEP_DB.
cluster_start() {
  local dir=$1 bindir=$2 major=$3 base="$JOB_DIR/cluster" sock enc user i pid
  user=$(id -un)
  remove_tree "$base"
  mkdir -m 700 "$base" || return 1
  echo "$bindir" > "$JOB_DIR/cluster_bin"
  sock="$base/s"
  if [[ $sock =~ ^[A-Za-z0-9/._+-]+$ ]] && [ "${#sock}" -le 80 ]; then
    mkdir -m 700 "$sock" || return 1
  else
    sock=$(mktemp -d /tmp/kadi-ops-verify.XXXXXX) || return 1
    echo "$sock" > "$JOB_DIR/cluster_sock"
  fi
  # The dump's encoding (its header); the C locale goes with any encoding.
  enc=$("$(opt pg_restore)" -l "$dir/db.dump" 2>/dev/null | sed -n 's/^;[[:space:]]*Encoding: *\([A-Za-z0-9_]*\).*/\1/p' | head -n1)
  step "deep: starting a throwaway PostgreSQL $major cluster in $base (initdb, ${enc:-UTF8})"
  if ! "$bindir/initdb" -D "$base/data" -U "$user" -A trust -E "${enc:-UTF8}" --locale=C --no-sync > "$base/initdb.log" 2>&1; then
    echo "initdb failed: $(grep -v '^$' "$base/initdb.log" | tail -n1 | cut -c1-300)" > "$JOB_DIR/cluster_failed"
    return 1
  fi
  printf 'local all all trust\n' > "$base/data/pg_hba.conf"
  cat >> "$base/data/postgresql.conf" <<CONF

# kadi-ops throwaway cluster for a deep verify: no TCP, socket only, no durability needed.
listen_addresses = ''
unix_socket_directories = '$sock'
unix_socket_permissions = 0700
port = 5432
max_connections = 10
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
logging_collector = off
max_wal_size = '4GB'
CONF
  "$bindir/postgres" -D "$base/data" > "$base/server.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$JOB_DIR/cluster_pid"
  DEEP_CONN=(-h "$sock" -p 5432 -U "$user" -w)
  DEEP_DB=postgres
  for i in $(seq 1 600); do
    if "$(opt psql)" -X -At -q "${DEEP_CONN[@]}" -d "$DEEP_DB" -c 'select 1' >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the throwaway cluster did not start: $(grep -v '^$' "$base/server.log" | tail -n1 | cut -c1-300)" > "$JOB_DIR/cluster_failed"
  return 1
}

# Stops the throwaway cluster at once (nothing in it is worth keeping) and removes its directory
# and socket directory. Safe to call when there is none, and again.
cluster_stop() {
  local base="$JOB_DIR/cluster" bindir pid sock i
  bindir=$(cat "$JOB_DIR/cluster_bin" 2>/dev/null || true)
  pid=$(head -n1 "$base/data/postmaster.pid" 2>/dev/null || cat "$JOB_DIR/cluster_pid" 2>/dev/null || true)
  # Still our postmaster (its working directory is the cluster's), not a reused pid.
  if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$base/data" ] && [ -n "$bindir" ]; then
    "$bindir/pg_ctl" -D "$base/data" stop -m immediate -w -t 20 >/dev/null 2>&1 || true
  fi
  # Whatever of it is left (a postmaster killed outright leaves its backends for a moment).
  for i in $(seq 1 100); do
    pid=$(cluster_processes "$base/data")
    [ -n "$pid" ] || break
    [ "$i" -lt 30 ] || kill -KILL $pid 2>/dev/null || true
    sleep 0.1
  done
  wait "$(cat "$JOB_DIR/cluster_pid" 2>/dev/null || echo 0)" 2>/dev/null || true
  sock=$(cat "$JOB_DIR/cluster_sock" 2>/dev/null || true)
  [ -z "$sock" ] || [[ $sock != /tmp/kadi-ops-verify.* ]] || rm -rf -- "$sock"
  if [ -e "$base" ] && ! remove_tree "$base"; then echo "could not remove the throwaway cluster $base" >&2; return 1; fi
  rm -f "$JOB_DIR/cluster_bin" "$JOB_DIR/cluster_pid" "$JOB_DIR/cluster_sock"
  return 0
}

# Processes working in the cluster's data directory: the postmaster and its children.
cluster_processes() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/cwd" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
  done
  return 0
}

# The fallback: a scratch database on the production server (needs CREATEDB). Sets DEEP_CONN and
# DEEP_DB; fails when the database cannot be created.
scratch_create() {
  local pg_host pg_port pg_user scratch
  pg_host=$(opt pg_host); pg_port=$(opt pg_port); pg_user=$(opt pg_user)
  make_passfile "$JOB_DIR" "$pg_host" "$pg_port" "*" "$pg_user" < "$JOB_DIR/secret"
  DEEP_CONN=(-h "$pg_host" -p "$pg_port" -U "$pg_user" -w)
  scratch="kadi_ops_verify_$(printf '%s' "$JOB_ID" | tr -c 'A-Za-z0-9' '_' | tr 'A-Z' 'a-z')"
  DEEP_DB=$scratch
  step "deep: restoring the dump into scratch database $scratch on the production server"
  echo "$scratch" > "$JOB_DIR/scratch_db"
  "$(opt psql)" -X -At -v ON_ERROR_STOP=1 "${DEEP_CONN[@]}" -d "$(opt pg_db)" -c "CREATE DATABASE \"$scratch\"" || { rm -f "$JOB_DIR/scratch_db"; return 1; }
}

# After the restore was read (or failed): the cluster stopped, or the scratch database dropped.
deep_finish() { cluster_stop || true; drop_scratch || true; }

# Records that deep verification could not run, and why: not a problem of the set.
deep_not_run() {
  echo "deep verification could not run: $1" >&2
  agent_py deep-note "$JOB_DIR/deep.json" not-run "$1"
}

drop_scratch() {
  local scratch; scratch=$(cat "$JOB_DIR/scratch_db" 2>/dev/null || true)
  [ -n "$scratch" ] || return 0
  # After a cancel the killed pg_restore's session may linger a moment and block the DROP.
  local i
  for i in 1 2 3 4 5; do
    if "$(opt psql)" -X -q -h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w -d "$(opt pg_db)" \
      -c "DROP DATABASE IF EXISTS \"$scratch\""; then
      rm -f "$JOB_DIR/scratch_db"
      return 0
    fi
    sleep 1
  done
  echo "could not drop the scratch database $scratch; drop it by hand" >&2
  return 1
}

cleanup_verify() { parse_opts "$@"; cluster_stop || true; drop_scratch || true; }

