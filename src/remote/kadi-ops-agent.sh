#!/bin/bash
# kadi-ops host agent. Installed by Kadi Ops under <backupDir>/.kadi-ops/agent/ (named by the
# hash of its content) and run as the Kadi user: `bash kadi-ops-agent-<hash>.sh VERB ARGS...`.
# It is static text: every value reaches it as a quoted argument, secrets only on stdin.
# Output protocol: machine-readable lines are `key=value`; everything else is for humans.
set -o errexit -o nounset -o pipefail
umask 077

die() { echo "kadi-ops: $*" >&2; exit 2; }

# --- PostgreSQL helpers ---------------------------------------------------------------------

# Reads the database password (one line) from stdin into a fresh 0600 passfile and exports
# PGPASSFILE, so the password is never in argv or in an environment line of a script.
# $1 dir for the file, $2 host, $3 port, $4 db, $5 user
make_passfile() {
  local dir=$1 pw=''
  IFS= read -r pw || true
  PGPASSFILE="$dir/pgpass"
  local esc
  esc=$(printf '%s' "$pw" | sed -e 's/[\\:]/\\&/g')
  printf '%s:%s:%s:%s:%s\n' "$(pg_escape "$2")" "$3" "$(pg_escape "$4")" "$(pg_escape "$5")" "$esc" > "$PGPASSFILE"
  chmod 600 "$PGPASSFILE"
  export PGPASSFILE
}
pg_escape() { printf '%s' "$1" | sed -e 's/[\\:]/\\&/g'; }

# Picks the client binary for a server major: /usr/lib/postgresql/<major>/bin first, else PATH
# if its major matches. $1 tool, $2 major. Prints the path or nothing.
pg_tool_for_major() {
  local tool=$1 major=$2 cand v
  for cand in "/usr/lib/postgresql/$major/bin/$tool" "$(command -v "$tool" 2>/dev/null || true)"; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    v=$("$cand" --version 2>/dev/null | sed -n 's/.* \([0-9][0-9]*\)\..*/\1/p;s/.* \([0-9][0-9]*\)$/\1/p' | head -n1)
    if [ "$v" = "$major" ]; then echo "$cand"; return 0; fi
  done
  return 0
}

any_psql() {
  local p
  for p in $(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V -r) "$(command -v psql 2>/dev/null || true)"; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

# --- facts ----------------------------------------------------------------------------------
# facts KADI_CLI KADI_CONFIG BACKUP_DIR PGHOST PGPORT PGDB PGUSER   (password on stdin)
cmd_facts() {
  local cli=$1 cfg=$2 backup_dir=$3 host=$4 port=$5 db=$6 user=$7
  FACTS_WORK=$(mktemp -d)
  trap 'rm -rf "$FACTS_WORK"' EXIT
  make_passfile "$FACTS_WORK" "$host" "$port" "$db" "$user"
  echo "hostname=$(hostname -f 2>/dev/null || hostname)"
  echo "remote_user=$(id -un)"
  local v
  if v=$(KADI_CONFIG_FILE=$cfg "$cli" --version 2>/dev/null | tail -n1); then echo "kadi_version=$v"; else echo "kadi_version_error=kadi --version failed"; fi
  local psql num
  if psql=$(any_psql); then
    echo "psql=$psql"
    if num=$("$psql" -X -At -h "$host" -p "$port" -U "$user" -d "$db" -w -c 'show server_version_num' 2>&1); then
      echo "pg_server_version_num=$num"
      local major=$((num / 10000))
      echo "pg_server_major=$major"
      echo "pg_dump=$(pg_tool_for_major pg_dump "$major")"
      echo "pg_restore=$(pg_tool_for_major pg_restore "$major")"
      local rev
      if rev=$("$psql" -X -At -h "$host" -p "$port" -U "$user" -d "$db" -w -c 'select version_num from alembic_version' 2>/dev/null); then
        echo "alembic_revision=$rev"
      fi
    else
      echo "pg_error=$(printf '%s' "$num" | tr '\n' ' ')"
    fi
  else
    echo "pg_error=no psql client found"
  fi
  local d
  for d in /usr/lib/postgresql/*/bin/pg_dump; do [ -x "$d" ] && echo "pg_dump_available=$d"; done
  if [ -d "$backup_dir" ]; then
    echo "backup_dir_exists=yes"
    df -Pk "$backup_dir" | awk 'NR==2 {print "backup_free_kb=" $4; print "backup_fs_size_kb=" $2}'
  else
    echo "backup_dir_exists=no"
  fi
  local t
  for t in rsync zstd pigz gzip tar sha256sum flock setsid; do
    command -v "$t" >/dev/null 2>&1 && echo "tool_$t=yes" || echo "tool_$t=no"
  done
}


# --- jobs and the instance lock ---------------------------------------------------------------
# A job lives in <state>/jobs/<id>/: meta (key=value), log (stdout+stderr), pgid, status (exit
# code, written last and atomically), secret (stdin of the launch, 0600, removed by the job).
# The lock is an flock on <state>/lock held by the job's process group for the whole job, with
# <state>/lock.holder describing the holder.

state_dir() { printf '%s/.kadi-ops' "$1"; }

# job-start BACKUP_DIR JOB_ID KIND OPERATOR CLIENT BREAK_STALE(yes|no) VERB ARGS...
cmd_job_start() {
  local backup_dir=$1 id=$2 kind=$3 operator=$4 client=$5 break_stale=$6
  shift 6
  [[ $id =~ ^[A-Za-z0-9T:._-]+$ ]] || die "bad job id"
  local st; st=$(state_dir "$backup_dir")
  mkdir -p "$st/jobs"
  chmod 700 "$st" "$st/jobs"
  local dir="$st/jobs/$id"
  mkdir -m 700 "$dir" || die "job $id exists"
  # Secrets for the job arrive on stdin and go to a 0600 file only the job reads.
  cat > "$dir/secret"
  chmod 600 "$dir/secret"
  {
    echo "id=$id"; echo "kind=$kind"; echo "operator=$operator"; echo "client=$client"
    echo "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "command=$*"
  } > "$dir/meta"
  exec 9>>"$st/lock"
  if ! flock -n 9; then
    local holder_pid holder
    holder=$(cat "$st/lock.holder" 2>/dev/null || true)
    holder_pid=$(printf '%s\n' "$holder" | sed -n 's/^pid=//p')
    if [ -n "$holder_pid" ] && ! kill -0 "$holder_pid" 2>/dev/null; then
      if [ "$break_stale" = yes ]; then
        echo "Breaking stale lock held by dead job (pid $holder_pid)." >&2
        kill_lock_holders "$st/lock"
        flock -w 10 9 || { rm -rf "$dir"; die "stale lock could not be broken"; }
      else
        rm -rf "$dir"
        printf '%s\n' "$holder" | sed 's/^/holder_/'
        echo "lock=stale"
        exit 75
      fi
    else
      rm -rf "$dir"
      printf '%s\n' "$holder" | sed 's/^/holder_/'
      echo "lock=busy"
      exit 75
    fi
  fi
  # setsid: the job gets its own session and process group, so it survives this SSH session and
  # can be signalled as a whole. fd 9 (the lock) is inherited and held until the job ends.
  setsid bash "$0" job-run "$backup_dir" "$id" "$@" < /dev/null > "$dir/log" 2>&1 &
  local i
  for i in $(seq 1 100); do [ -s "$dir/pgid" ] && break; sleep 0.05; done
  local pgid; pgid=$(cat "$dir/pgid" 2>/dev/null || true)
  {
    echo "job=$id"; echo "kind=$kind"; echo "operator=$operator"; echo "client=$client"
    echo "started=$(sed -n 's/^started=//p' "$dir/meta")"; echo "pid=$pgid"
  } > "$st/lock.holder.tmp"
  mv "$st/lock.holder.tmp" "$st/lock.holder"
  echo "job=$id"
  echo "pgid=$pgid"
}

# Kills processes that hold the lock file open (a stale lock after its job leader died).
kill_lock_holders() {
  local lock=$1 p fd
  for p in /proc/[0-9]*; do
    for fd in "$p"/fd/*; do
      [ "$(readlink "$fd" 2>/dev/null)" = "$lock" ] && { kill -KILL "${p#/proc/}" 2>/dev/null || true; break; }
    done
  done
}

# job-run BACKUP_DIR JOB_ID VERB ARGS...   (detached; runs the verb, records the exit status)
cmd_job_run() {
  local backup_dir=$1 id=$2 verb=$3
  shift 3
  local dir; dir="$(state_dir "$backup_dir")/jobs/$id"
  echo $$ > "$dir/pgid.tmp" && mv "$dir/pgid.tmp" "$dir/pgid"
  case $verb in backup|verify|prune|sleep) ;; *) echo "kadi-ops: $verb cannot run as a job" >&2; echo 2 > "$dir/status"; return 2 ;; esac
  JOB_DIR=$dir
  export JOB_DIR JOB_ID=$id
  local cancelled=no
  trap 'cancelled=yes' TERM INT HUP
  echo "[kadi-ops] job $id: $verb started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) as $(id -un)"
  set +o errexit
  ( trap - TERM INT HUP; set -o errexit; "cmd_$verb" "$@" ) 9>&- &
  local child=$! rc
  while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  rm -f "$dir/secret" "$dir/pgpass"
  # A cancelled or failed job removes its partial output; a set is only ever complete or absent.
  if [ "$cancelled" = yes ] || [ "$rc" -ne 0 ]; then
    if declare -F "cleanup_$verb" >/dev/null; then "cleanup_$verb" "$@" || true; fi
  fi
  if [ "$cancelled" = yes ]; then
    echo "[kadi-ops] job $id: cancelled"
    echo cancelled > "$dir/status.tmp"
  else
    echo "[kadi-ops] job $id: exit status $rc at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "$rc" > "$dir/status.tmp"
  fi
  mv "$dir/status.tmp" "$dir/status"
}

# The state of one job directory as key=value lines.
job_state_lines() {
  local dir=$1 pgid status state
  pgid=$(cat "$dir/pgid" 2>/dev/null || true)
  status=$(cat "$dir/status" 2>/dev/null || true)
  if [ -n "$status" ]; then state=finished
  elif [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then state=running
  else state=died; fi
  sed 's/^/meta_/' "$dir/meta" 2>/dev/null || true
  echo "state=$state"; echo "status=$status"; echo "pgid=$pgid"
  echo "log_bytes=$(stat -c %s "$dir/log" 2>/dev/null || echo 0)"
  echo "finished=$(stat -c %Y "$dir/status" 2>/dev/null || true)"
}

# job-status BACKUP_DIR JOB_ID
cmd_job_status() {
  local dir; dir="$(state_dir "$1")/jobs/$2"
  [ -d "$dir" ] || die "no job $2"
  job_state_lines "$dir"
}

# job-list BACKUP_DIR   (newest first; a blank line separates jobs)
cmd_job_list() {
  local jobs; jobs="$(state_dir "$1")/jobs"
  [ -d "$jobs" ] || return 0
  local d
  for d in $(ls -1r "$jobs"); do
    [ -d "$jobs/$d" ] || continue
    job_state_lines "$jobs/$d"
    echo
  done
}

# job-tail BACKUP_DIR JOB_ID OFFSET: the log from byte OFFSET, following it while the job runs.
cmd_job_tail() {
  local dir; dir="$(state_dir "$1")/jobs/$2"
  local offset=$3 pgid
  [ -d "$dir" ] || die "no job $2"
  pgid=$(cat "$dir/pgid" 2>/dev/null || true)
  if [ ! -s "$dir/status" ] && [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then
    # --pid: stop following once the job leader is gone; the rest is then printed.
    tail -c "+$((offset + 1))" -s 0.2 --pid="$pgid" -f "$dir/log"
  else
    tail -c "+$((offset + 1))" "$dir/log"
  fi
}

# job-cancel BACKUP_DIR JOB_ID GRACE_SECONDS
cmd_job_cancel() {
  local dir; dir="$(state_dir "$1")/jobs/$2"
  local grace=$3 pgid i
  [ -d "$dir" ] || die "no job $2"
  pgid=$(cat "$dir/pgid" 2>/dev/null || true)
  [ -n "$pgid" ] || die "job $2 has no process group"
  if [ -s "$dir/status" ]; then echo "already=$(cat "$dir/status")"; return 0; fi
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for i in $(seq 1 $((grace * 10))); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 -- "-$pgid" 2>/dev/null; then
    echo "Job $2 did not stop within ${grace}s; killing it." >&2
    kill -KILL -- "-$pgid" 2>/dev/null || true
    sleep 0.3
  fi
  for i in $(seq 1 50); do [ -s "$dir/status" ] && break; sleep 0.1; done
  if [ ! -s "$dir/status" ]; then
    echo cancelled > "$dir/status.tmp" && mv "$dir/status.tmp" "$dir/status"
  fi
  echo "status=$(cat "$dir/status")"
}

# job-forget BACKUP_DIR JOB_ID  (removes a finished job's directory)
cmd_job_forget() {
  local dir; dir="$(state_dir "$1")/jobs/$2"
  [ -s "$dir/status" ] || die "job $2 is not finished"
  rm -rf -- "$dir"
}

# lock-status BACKUP_DIR
cmd_lock_status() {
  local st; st=$(state_dir "$1")
  mkdir -p "$st"
  exec 9>>"$st/lock"
  if flock -n 9; then echo "lock=free"; return 0; fi
  sed 's/^/holder_/' "$st/lock.holder" 2>/dev/null || true
  local pid; pid=$(sed -n 's/^pid=//p' "$st/lock.holder" 2>/dev/null || true)
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then echo "lock=stale"; else echo "lock=busy"; fi
}

# sleep-job SECONDS: a job that only prints ticks (used to test jobs, lock and cancel).
cmd_sleep() {
  local n=$1 i
  for i in $(seq 1 "$n"); do echo "tick $i"; sleep 1; done
}

# --- backup sets ----------------------------------------------------------------------------

# Options arrive as key=value arguments into the associative array O.
declare -A O
parse_opts() {
  local kv
  for kv in "$@"; do
    [[ $kv == *=* ]] || die "bad option: $kv"
    O[${kv%%=*}]=${kv#*=}
  done
}
opt() { printf '%s' "${O[$1]-}"; }

step() { echo "[step] $*"; }
fail() { echo "ERROR: $*" >&2; exit 1; }

SET_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z$'

# Newest set directory that has a manifest (the previous good set), or nothing.
newest_good_set() {
  local bd=$1 d
  for d in $(ls -1r "$bd" 2>/dev/null); do
    [[ $d =~ $SET_RE ]] || continue
    [ -f "$bd/$d/manifest.json" ] && { echo "$bd/$d"; return 0; }
  done
  return 0
}

have() { command -v "$1" >/dev/null 2>&1; }

# Copies a live tree into the set as a plain tree, hard-linking files unchanged since the
# previous set (rsync --link-dest), so each set is complete but only new data costs space.
copy_tree() {
  local name=$1 src=$2 prev=$3 dest=$4
  [ -d "$src" ] || fail "$name directory $src does not exist"
  if have rsync; then
    if [ -n "$prev" ] && [ -d "$prev" ]; then
      rsync -a --link-dest="$prev" "$src/" "$dest/"
    else
      rsync -a "$src/" "$dest/"
    fi
  else
    echo "rsync is missing: copying $name in full (install rsync for incremental sets)" >&2
    cp -a "$src/." "$dest/"
  fi
}

archive_tree() {
  local name=$1 src=$2 out=$3
  [ -d "$src" ] || fail "$name directory $src does not exist"
  if have zstd; then
    tar -C "$src" -cf - . | zstd -q -T0 -3 -o "$out.tar.zst"
  else
    tar -C "$src" -cf - . | gzip -1 > "$out.tar.gz"
  fi
}

# backup key=value...   (runs as a job; see backup/backupPlan.ts for the options)
cmd_backup() {
  parse_opts "$@"
  local bd; bd=$(opt backup_dir)
  local id=$JOB_ID ts partial prev
  [ -d "$bd" ] || fail "backup directory $bd does not exist"
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
  local db_bytes free_kb need_kb
  db_bytes=$("$psql" -X -At "${PGCONN[@]}" -d "$(opt pg_db)" -c 'select pg_database_size(current_database())') || fail "cannot reach the database"
  free_kb=$(df -Pk "$bd" | awk 'NR==2 {print $4}')
  need_kb=$((db_bytes / 1024 / 4))
  if [ -z "$prev" ]; then
    need_kb=$((need_kb + $(du -sk "$(opt storage_path)" | cut -f1) + $(du -sk "$(opt uploads_path)" | cut -f1)))
  fi
  if [ "$need_kb" -gt "$free_kb" ]; then
    fail "not enough space in $bd: about $((need_kb / 1024)) MiB needed, $((free_kb / 1024)) MiB free"
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

  step "database: pg_dump -Fc ($pg_dump)"
  PGAPPNAME="kadi-ops-$id" "$pg_dump" -Fc "${PGCONN[@]}" --snapshot="$snapshot" -f "$partial/db.dump" "$(opt pg_db)" &
  local dump_pid=$!

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
  local rc_dump=0 rc_st=0 rc_up=0
  wait "$dump_pid" || rc_dump=$?
  echo "COMMIT;" >&"${SNAP[1]}"
  exec {SNAP[1]}>&-
  wait "$SNAP_PID" 2>/dev/null || true
  wait "$st_pid" || rc_st=$?
  wait "$up_pid" || rc_up=$?
  [ "$rc_dump" -eq 0 ] || fail "pg_dump exited with status $rc_dump"
  [ "$rc_st" -eq 0 ] || fail "copying STORAGE_PATH failed (status $rc_st)"
  [ "$rc_up" -eq 0 ] || fail "copying MISC_UPLOADS_PATH failed (status $rc_up)"
  [ -s "$partial/db.dump" ] || fail "pg_dump produced an empty file"

  step "database: reading the dump's table of contents"
  "$pg_restore" -l "$partial/db.dump" > "$partial/db.toc" || fail "pg_restore -l cannot read the new dump"

  if [ "$(opt redis)" = yes ]; then
    step "redis: BGSAVE"
    local rcli=$(opt redis_cli) rport=$(opt redis_port) last
    last=$("$rcli" -p "$rport" LASTSAVE) || fail "redis-cli LASTSAVE failed"
    "$rcli" -p "$rport" BGSAVE >/dev/null || fail "redis BGSAVE failed"
    local i now=''
    for i in $(seq 1 600); do
      now=$("$rcli" -p "$rport" LASTSAVE)
      [ "$now" != "$last" ] && break
      sleep 0.2
    done
    [ "$now" != "$last" ] || fail "redis did not finish BGSAVE within 120 s"
    cp "$(opt redis_dump)" "$partial/redis.rdb" || fail "cannot copy $(opt redis_dump)"
  fi

  step "config: archiving the Kadi configuration"
  local cfg; cfg=$(opt kadi_config)
  local -a cfgfiles=("$cfg")
  local k
  while IFS= read -r k; do [ -n "$k" ] && cfgfiles+=("$k"); done <<< "$(opt config_extra)"
  tar -cf - --absolute-names "${cfgfiles[@]}" 2>/dev/null | gzip -6 > "$partial/config.tar.gz" || fail "cannot archive the Kadi configuration"

  step "manifest: listing and hashing new files"
  echo "ended=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$info"
  python3 - "$partial" "${prev}" "$(opt manifest_json)" <<'PY' || fail "writing the manifest failed"
import concurrent.futures, hashlib, json, os, sys
partial, prev, base_json = sys.argv[1], sys.argv[2], sys.argv[3]

def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            h.update(b)
    return h.hexdigest()

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

def tree_list(name):
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
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        for i, d in zip(todo, ex.map(lambda i: sha256(os.path.join(root, entries[i][0])), todo)):
            entries[i][3] = d
    with open(os.path.join(partial, name + '.files.jsonl'), 'w', encoding='utf-8') as f:
        for e in entries: f.write(json.dumps(e, ensure_ascii=False) + '\n')
    return {'files': len(entries), 'bytes': sum(e[1] for e in entries), 'newFiles': len(todo), 'newBytes': sum(entries[i][1] for i in todo)}

info = dict(l.rstrip('\n').split('=', 1) for l in open(os.path.join(partial, '.info')) if '=' in l)
m = json.loads(base_json)
m['startedAt'] = info.get('started'); m['endedAt'] = info.get('ended')
m['hostname'] = info.get('hostname'); m['previousSet'] = info.get('previous') or None
m['artifacts'] = []
trees = {}
for name in ('storage', 'uploads'):
    if os.path.isdir(os.path.join(partial, name)):
        trees[name] = tree_list(name)
toc_entries = sum(1 for l in open(os.path.join(partial, 'db.toc'), encoding='utf-8', errors='replace') if l and l[0].isdigit())
counts = {}
for l in open(os.path.join(partial, 'db.counts.tsv'), encoding='utf-8'):
    t, c = l.rstrip('\n').rsplit('\t', 1); counts[t] = int(c)
for fn in sorted(os.listdir(partial)):
    p = os.path.join(partial, fn)
    if fn.startswith('.') or not os.path.isfile(p): continue
    a = {'name': fn, 'size': os.path.getsize(p), 'sha256': sha256(p)}
    if fn == 'db.dump': a['tocEntries'] = toc_entries; a['tables'] = len(counts); a['rows'] = sum(counts.values())
    for name, t in trees.items():
        if fn == name + '.files.jsonl': a['tree'] = name; a.update(t)
    if fn.startswith(('storage.tar', 'uploads.tar')): a['archiveOf'] = fn.split('.')[0]
    m['artifacts'].append(a)
m['trees'] = trees
m['rowCounts'] = counts
tmp = os.path.join(partial, 'manifest.json.tmp')
with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(m, f, indent=2, sort_keys=True); f.write('\n'); f.flush(); os.fsync(f.fileno())
os.rename(tmp, os.path.join(partial, 'manifest.json'))
PY
  rm -f "$info"

  step "sealing the set"
  sync -f "$partial" 2>/dev/null || sync
  ts=$(date -u +%Y-%m-%dT%H-%M-%SZ)
  while [ -e "$bd/$ts" ]; do sleep 1; ts=$(date -u +%Y-%m-%dT%H-%M-%SZ); done
  mv "$partial" "$bd/$ts"
  rm -f "$JOB_DIR/partial"
  sync -f "$bd" 2>/dev/null || true
  echo "set=$ts"
}

# Removes what a cancelled or failed backup left behind.
cleanup_backup() {
  local p; p=$(cat "$JOB_DIR/partial" 2>/dev/null || true)
  if [ -n "$p" ] && [ -d "$p" ]; then rm -rf -- "$p"; echo "[kadi-ops] removed partial set $p"; fi
  rm -f "$JOB_DIR/pgpass"
}

# list-sets BACKUP_DIR: one JSON document describing every set, partial set and the lock, so a
# host's listing is a single round trip even with a thousand sets.
cmd_list_sets() {
  python3 - "$1" <<'PY'
import json, os, re, sys
bd = sys.argv[1]
SET_RE = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$')
out = {'sets': [], 'partials': [], 'invalid': []}
try:
    names = sorted(os.listdir(bd), reverse=True)
except FileNotFoundError:
    names = []
for n in names:
    p = os.path.join(bd, n)
    if n.startswith('.partial-') and os.path.isdir(p):
        out['partials'].append({'name': n, 'job': n[len('.partial-'):], 'mtime': int(os.path.getmtime(p))})
        continue
    if not SET_RE.match(n) or not os.path.isdir(p):
        continue
    try:
        with open(os.path.join(p, 'manifest.json'), encoding='utf-8') as f:
            m = json.load(f)
    except FileNotFoundError:
        out['invalid'].append({'name': n, 'reason': 'no manifest.json'}); continue
    except ValueError as e:
        out['invalid'].append({'name': n, 'reason': 'manifest.json is not valid JSON: %s' % e}); continue
    verify = None
    try:
        with open(os.path.join(p, '.verify.json'), encoding='utf-8') as f:
            verify = json.load(f)
    except (FileNotFoundError, ValueError):
        pass
    m.pop('rowCounts', None)
    out['sets'].append({'name': n, 'manifest': m, 'verify': verify,
                        'pinned': os.path.exists(os.path.join(p, '.pinned')),
                        'preRestore': os.path.exists(os.path.join(p, '.pre-restore'))})
json.dump(out, sys.stdout, separators=(',', ':'))
PY
}

# Refuses set names that are not timestamps (no path tricks).
check_set_name() { [[ $1 =~ $SET_RE ]] || die "not a backup set name: $1"; }

# pin|unpin BACKUP_DIR SET
cmd_pin() { check_set_name "$2"; [ -f "$1/$2/manifest.json" ] || die "no set $2"; : > "$1/$2/.pinned"; echo "pinned=$2"; }
cmd_unpin() { check_set_name "$2"; [ -d "$1/$2" ] || die "no set $2"; rm -f "$1/$2/.pinned"; echo "unpinned=$2"; }

# prune BACKUP_DIR SET...  (a job: deletes the named sets, refusing pinned ones)
cmd_prune() {
  local bd=$1 n
  shift
  for n in "$@"; do
    check_set_name "$n"
    [ -d "$bd/$n" ] || { echo "set $n is already gone"; continue; }
    [ -e "$bd/$n/.pinned" ] && fail "set $n is pinned; not deleting it"
  done
  for n in "$@"; do
    [ -d "$bd/$n" ] || continue
    step "deleting set $n"
    # Renamed first, so a set is never listed half-deleted.
    mv "$bd/$n" "$bd/.deleting-$n"
    rm -rf -- "$bd/.deleting-$n"
  done
  echo "pruned=$#"
}

# clean-partials BACKUP_DIR NAME...: removes leftover partial sets whose job is not running.
cmd_clean_partials() {
  local bd=$1 n job pgid
  shift
  for n in "$@"; do
    [[ $n =~ ^\.partial-[A-Za-z0-9T:._-]+$ ]] || die "not a partial set: $n"
    job=${n#.partial-}
    pgid=$(cat "$(state_dir "$bd")/jobs/$job/pgid" 2>/dev/null || true)
    if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then die "job $job is still writing $n"; fi
    rm -rf -- "${bd:?}/$n"
    echo "removed=$n"
  done
}

# verify key=value...  (a job). Quick: every artifact's size and sha256, every tree file's size and
# sha256 against the set's file lists, and the dump's table of contents. Deep, in addition:
# restore the dump into a scratch database, compare row counts with those taken at backup time,
# and check the set's own files against the set's own `file` rows (size and Kadi's MD5).
# The result goes to <set>/.verify.json; the manifest is never edited.
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
  python3 - "$dir" "$toc_ok" "${toc_n:-0}" "$JOB_DIR/quick.json" <<'PY'
import concurrent.futures, datetime, hashlib, json, os, sys
d, toc_ok, toc_n, out = sys.argv[1], sys.argv[2] == 'yes', int(sys.argv[3] or 0), sys.argv[4]
m = json.load(open(os.path.join(d, 'manifest.json'), encoding='utf-8'))
problems = []
def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            h.update(b)
    return h.hexdigest()
checked_files = 0; checked_bytes = 0
for a in m.get('artifacts', []):
    p = os.path.join(d, a['name'])
    if not os.path.isfile(p):
        problems.append('missing artifact %s' % a['name']); continue
    size = os.path.getsize(p)
    if size != a['size']:
        problems.append('%s: size %d, manifest says %d' % (a['name'], size, a['size'])); continue
    if sha256(p) != a['sha256']:
        problems.append('%s: sha256 does not match the manifest' % a['name'])
    checked_files += 1; checked_bytes += size
    if a['name'] == 'db.dump':
        if not toc_ok: problems.append('db.dump: pg_restore -l cannot read it')
        elif a.get('tocEntries') is not None and toc_n != a['tocEntries']:
            problems.append('db.dump: %d TOC entries, manifest says %d' % (toc_n, a['tocEntries']))
for a in m.get('artifacts', []):
    tree = a.get('tree')
    if not tree: continue
    root = os.path.join(d, tree)
    entries = [json.loads(l) for l in open(os.path.join(d, a['name']), encoding='utf-8')]
    def check(e):
        rel, size, mtime, digest = e
        p = os.path.join(root, rel)
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return '%s/%s: missing' % (tree, rel)
        if st.st_size != size:
            return '%s/%s: size %d, list says %d' % (tree, rel, st.st_size, size)
        if sha256(p) != digest:
            return '%s/%s: sha256 does not match' % (tree, rel)
        return None
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        for r in ex.map(check, entries):
            if r: problems.append(r)
    listed = set(e[0] for e in entries)
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            rel = os.path.relpath(os.path.join(dirpath, fn), root)
            if rel not in listed: problems.append('%s/%s: not in the file list' % (tree, rel))
    checked_files += len(entries); checked_bytes += sum(e[1] for e in entries)
result = {'level': 'quick', 'ok': not problems, 'problems': problems[:1000], 'problemCount': len(problems),
          'files': checked_files, 'bytes': checked_bytes,
          'at': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}
for p in problems[:200]: print('PROBLEM: ' + p)
with open(out, 'w') as f: json.dump(result, f)
print('checked %d files, %d bytes: %d problem(s)' % (checked_files, checked_bytes, len(problems)))
PY
  if [ "$level" = deep ]; then
    verify_deep "$dir" || true
  fi
  python3 - "$dir" "$JOB_DIR" "$level" <<'PY'
import json, os, sys
d, job, level = sys.argv[1:4]
r = json.load(open(os.path.join(job, 'quick.json')))
r['level'] = level
try:
    deep = json.load(open(os.path.join(job, 'deep.json')))
    r['problems'] += deep['problems']; r['problemCount'] += len(deep['problems'])
    r['warnings'] = deep.get('warnings', []); r['deep'] = deep.get('summary', {})
except FileNotFoundError:
    if level == 'deep':
        r['problems'].append('deep verification did not complete'); r['problemCount'] += 1
r['ok'] = r['problemCount'] == 0
tmp = os.path.join(d, '.verify.json.tmp')
with open(tmp, 'w') as f: json.dump(r, f)
os.rename(tmp, os.path.join(d, '.verify.json'))
for p in r['problems'][:200]: print('PROBLEM: ' + p)
for w in r.get('warnings', [])[:200]: print('WARNING: ' + w)
print('verified=%s level=%s problems=%d' % ('ok' if r['ok'] else 'failed', level, r['problemCount']))
sys.exit(0 if r['ok'] else 1)
PY
}

verify_deep() {
  local dir=$1 psql pg_host pg_port pg_db pg_user scratch
  psql=$(opt psql); pg_host=$(opt pg_host); pg_port=$(opt pg_port); pg_db=$(opt pg_db); pg_user=$(opt pg_user)
  make_passfile "$JOB_DIR" "$pg_host" "$pg_port" "*" "$pg_user" < "$JOB_DIR/secret"
  local C=(-X -At -v ON_ERROR_STOP=1 -h "$pg_host" -p "$pg_port" -U "$pg_user" -w)
  scratch="kadi_ops_verify_$(printf '%s' "$JOB_ID" | tr -c 'A-Za-z0-9' '_' | tr 'A-Z' 'a-z')"
  echo "$scratch" > "$JOB_DIR/scratch_db"
  step "deep: restoring the dump into scratch database $scratch"
  "$psql" "${C[@]}" -d "$pg_db" -c "CREATE DATABASE \"$scratch\"" \
    || { echo "deep verification needs the CREATEDB privilege for role $pg_user" >&2; return 1; }
  local rc=0
  "$(opt pg_restore)" --no-owner --no-privileges --exit-on-error -h "$pg_host" -p "$pg_port" -U "$pg_user" -w -d "$scratch" "$dir/db.dump" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo '{"problems": ["pg_restore into the scratch database failed"], "warnings": []}' > "$JOB_DIR/deep.json"
    drop_scratch
    return 1
  fi
  step "deep: counting rows and reading file records"
  "$psql" "${C[@]}" -d "$scratch" > "$JOB_DIR/scratch.counts.tsv" <<'SQL'
SELECT format('SELECT %L || E''\t'' || count(*) FROM %I.%I;', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY 1 \gexec
SQL
  "$psql" "${C[@]}" -F $'\t' -d "$scratch" -c "SELECT id, size, coalesce(checksum, ''), state FROM file WHERE storage_type = 'local'" > "$JOB_DIR/scratch.files.tsv"
  drop_scratch
  step "deep: checking the set's files against the set's database"
  python3 - "$dir" "$JOB_DIR" "$(opt chunk_size)" <<'PY'
import concurrent.futures, hashlib, json, os, re, sys
d, job, chunk_size = sys.argv[1], sys.argv[2], int(sys.argv[3] or 10 * 1024 * 1024)
problems, warnings = [], []
m = json.load(open(os.path.join(d, 'manifest.json')))
expected = {}
try:
    for l in open(os.path.join(d, 'db.counts.tsv'), encoding='utf-8'):
        t, c = l.rstrip('\n').rsplit('\t', 1); expected[t] = int(c)
except FileNotFoundError:
    warnings.append('the set recorded no row counts')
restored = {}
for l in open(os.path.join(job, 'scratch.counts.tsv'), encoding='utf-8'):
    if '\t' in l:
        t, c = l.rstrip('\n').rsplit('\t', 1); restored[t] = int(c)
for t, c in sorted(expected.items()):
    if t not in restored: problems.append('table %s: missing after restore' % t)
    elif restored[t] != c: problems.append('table %s: %d rows restored, %d at backup time' % (t, restored[t], c))
root = os.path.join(d, 'storage')
if not os.path.isdir(root):
    warnings.append('storage is archived; file cross-check skipped')
    rows = []
else:
    rows = [l.rstrip('\n').split('\t') for l in open(os.path.join(job, 'scratch.files.tsv'), encoding='utf-8') if l.strip()]
def path_of(fid):
    return os.path.join(root, fid[0:2], fid[2:4], fid[4:6], fid[6:])
def md5_kadi(p, checksum):
    # Kadi: plain MD5 of the content, or for chunked uploads the MD5 of the chunks' MD5 digests
    # followed by "-<number of chunks>".
    m = re.match(r'^([0-9a-f]{32})-(\d+)$', checksum)
    with open(p, 'rb') as f:
        if not m:
            h = hashlib.md5()
            for b in iter(lambda: f.read(1 << 20), b''): h.update(b)
            return h.hexdigest()
        digests = b''; n = 0
        for b in iter(lambda: f.read(chunk_size), b''):
            digests += hashlib.md5(b).digest(); n += 1
        return '%s-%d' % (hashlib.md5(digests).hexdigest(), n)
def check(row):
    fid, size, checksum, state = row
    p = path_of(fid)
    exists = os.path.isfile(p)
    if state != 'active':
        return ('warn', 'file %s (%s) still has data in the set' % (fid, state)) if exists and state == 'deleted' else None
    if not exists: return ('problem', 'file %s: active in the database but missing from the set' % fid)
    if os.path.getsize(p) != int(size): return ('problem', 'file %s: size %d, database says %s' % (fid, os.path.getsize(p), size))
    if checksum and md5_kadi(p, checksum) != checksum: return ('problem', 'file %s: MD5 does not match the database checksum' % fid)
    return None
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
    for r in ex.map(check, rows):
        if r: (problems if r[0] == 'problem' else warnings).append(r[1])
known = set(path_of(r[0]) for r in rows)
extra = 0
if os.path.isdir(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            if p not in known and not re.search(r'-\d+$', fn):
                extra += 1
                if extra <= 100: warnings.append('extra file in storage with no file row: %s' % os.path.relpath(p, root))
summary = {'tablesCompared': len(expected), 'fileRows': len(rows), 'extraFiles': extra}
json.dump({'problems': problems, 'warnings': warnings, 'summary': summary}, open(os.path.join(job, 'deep.json'), 'w'))
print('deep: %d tables compared, %d file rows checked, %d extra files' % (len(expected), len(rows), extra))
PY
}

drop_scratch() {
  local scratch; scratch=$(cat "$JOB_DIR/scratch_db" 2>/dev/null || true)
  [ -n "$scratch" ] || return 0
  "$(opt psql)" -X -q -h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w -d "$(opt pg_db)" \
    -c "DROP DATABASE IF EXISTS \"$scratch\"" && rm -f "$JOB_DIR/scratch_db"
}

cleanup_verify() { parse_opts "$@"; drop_scratch || true; }

# overview BACKUP_DIR: sets, partial sets and jobs in one answer (the tree's one round trip).
cmd_overview() {
  cmd_list_sets "$1"
  echo
  echo "--- jobs"
  cmd_job_list "$1"
}

main() {
  [ $# -ge 1 ] || die "usage: VERB ARGS..."
  local verb=$1
  shift
  case $verb in
    facts) cmd_facts "$@" ;;
    job-start) cmd_job_start "$@" ;;
    job-run) cmd_job_run "$@" ;;
    job-status) cmd_job_status "$@" ;;
    job-list) cmd_job_list "$@" ;;
    job-tail) cmd_job_tail "$@" ;;
    job-cancel) cmd_job_cancel "$@" ;;
    job-forget) cmd_job_forget "$@" ;;
    lock-status) cmd_lock_status "$@" ;;
    list-sets) cmd_list_sets "$@" ;;
    overview) cmd_overview "$@" ;;
    pin) cmd_pin "$@" ;;
    unpin) cmd_unpin "$@" ;;
    clean-partials) cmd_clean_partials "$@" ;;
    *) die "unknown verb: $verb" ;;
  esac
}

main "$@"
