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

# Kills processes that hold the lock file open (a stale lock after its job leader died), except
# this agent itself, which has just opened it to take the lock.
kill_lock_holders() {
  local lock=$1 p fd
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != "$$" ] && [ "${p#/proc/}" != "$BASHPID" ] || continue
    for fd in "$p"/fd/*; do
      [ "$(readlink "$fd" 2>/dev/null)" = "$lock" ] && { kill -KILL "${p#/proc/}" 2>/dev/null || true; break; }
    done
  done
  return 0
}

# Processes of this job's process group other than the job runner itself.
job_leftovers() {
  local p st
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != "$$" ] && [ "${p#/proc/}" != "$BASHPID" ] || continue
    { IFS= read -r st < "$p/stat"; } 2>/dev/null || continue
    st=${st##*) }   # after "pid (comm) ": state ppid pgrp ...
    set -- $st
    [ "${3-}" = "$$" ] && echo "${p#/proc/}"
  done
  return 0
}

# Terminates what is left of the job (TERM, then KILL after 5 s), the runner excepted.
stop_job_leftovers() {
  local pids i
  pids=$(job_leftovers)
  [ -n "$pids" ] || return 0
  echo "[kadi-ops] stopping what the job left running: $(echo $pids)"
  kill -TERM $pids 2>/dev/null || true
  for i in $(seq 50); do
    pids=$(job_leftovers)
    [ -n "$pids" ] || return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

# job-run BACKUP_DIR JOB_ID VERB ARGS...   (detached; runs the verb, records the exit status)
cmd_job_run() {
  local backup_dir=$1 id=$2 verb=$3
  shift 3
  local dir; dir="$(state_dir "$backup_dir")/jobs/$id"
  echo $$ > "$dir/pgid.tmp" && mv "$dir/pgid.tmp" "$dir/pgid"
  if [[ " ${JOB_VERBS[*]} " != *" $verb "* ]]; then echo "kadi-ops: $verb cannot run as a job" >&2; echo 2 > "$dir/status"; return 2; fi
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
  # A cancelled or failed job removes its partial output; a set is only ever complete or absent.
  # Cleanup may need the database (dropping a scratch database): the job's passfile goes after it.
  if [ "$cancelled" = yes ] || [ "$rc" -ne 0 ]; then
    # A step that failed early can leave background work behind (a copy into the set): it is
    # stopped first, or it would keep writing while its output is removed.
    stop_job_leftovers
    if declare -F "cleanup_$verb" >/dev/null; then
      ( if [ -f "$dir/pgpass" ]; then export PGPASSFILE=$dir/pgpass; fi; "cleanup_$verb" "$@" ) || true
    fi
  fi
  rm -f "$dir/secret" "$dir/pgpass"
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
  # A job killed outright never reached its own cleanup: its secret files go now. Only when its
  # group is known dead (or it never started within a minute), never for a job still starting.
  if [ "$state" = died ] && { [ -n "$pgid" ] || [ -n "$(find "$dir" -maxdepth 0 -mmin +1 2>/dev/null)" ]; }; then
    rm -f "$dir/secret" "$dir/pgpass"
  fi
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
    # Follow until the job writes its status (or its whole group is gone: a killed job). Not
    # `tail --pid`: the leader is an orphan, and a zombie until init reaps it, which takes a
    # second or more on some hosts. Whatever tail has not printed yet, the client reads next
    # from its byte offset.
    tail -c "+$((offset + 1))" -s 0.2 -f "$dir/log" &
    local t=$!
    while [ ! -s "$dir/status" ] && kill -0 -- "-$pgid" 2>/dev/null; do sleep 0.1; done
    sleep 0.1
    kill "$t" 2>/dev/null || true
    wait "$t" 2>/dev/null || true
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

# job-log BACKUP_DIR JOB_ID: the log as it is now (no following).
cmd_job_log() {
  local dir; dir="$(state_dir "$1")/jobs/$2"
  [[ $2 =~ ^[A-Za-z0-9T:._-]+$ ]] && [ -d "$dir" ] || die "no job $2"
  cat -- "$dir/log"
}

# job-forget BACKUP_DIR JOB_ID  (removes a finished job's directory)
cmd_job_forget() {
  local dir; dir="$(state_dir "$1")/jobs/$2"
  [ -s "$dir/status" ] || die "job $2 is not finished"
  remove_tree "$dir"
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
JOB_VERBS+=(sleep)
cmd_sleep() {
  local n=$1 i
  for i in $(seq 1 "$n"); do echo "tick $i"; sleep 1; done
}

