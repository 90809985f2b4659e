# --- maintenance jobs -------------------------------------------------------------------------
# The guide's maintenance steps, each a job under the instance lock, streamed like a backup.
# Options are key=value: kadi_cli, kadi_config and the verb's own. Job verbs use '_' because
# job-run calls cmd_<verb> as given.

maint_begin() { parse_opts "$@"; : > "$JOB_DIR/steps"; : > "$JOB_DIR/attention"; rm -f "$JOB_DIR/failed" "$JOB_DIR/failed-steps"; }
maint_end() {
  print_summary "$1"
  local why
  if [ -f "$JOB_DIR/failed" ]; then
    why=$(head -n1 "$JOB_DIR/failed")
    [[ $why == "$1"* ]] || why="$1: $why"
    fail "$why"
  fi
  return 0
}

# --- kadi commands: failures are failures ---------------------------------------------------
# Also used by the restore's post-restore steps (db_upgrade_step ... files_check_step in
# 60-restore.sh). `kadi` exits 0 after some errors and prints its tracebacks on stderr, so a
# command counts as having run only with exit status 0, no traceback and the line that ends its
# successful output.

# kadi_error NAME RC: why the kadi command of section NAME (rc RC) failed, or nothing: its exit
# status and the exception line (the first unindented line after a traceback's frames) or, with
# no traceback, its last line.
kadi_error() {
  local out="$JOB_DIR/$1.out" rc=$2 exc
  exc=$(awk '/^Traceback \(most recent call last\):$/ { tb = 1; next } tb && /^[^ \t]/ { print; exit }' "$out" | head -c 300)
  if [ "$rc" -ne 0 ]; then
    [ -n "$exc" ] || exc=$(grep -v '^[[:space:]]*$' "$out" | tail -n1 | head -c 300)
    echo "exit status $rc${exc:+: $exc}"
  elif [ -n "$exc" ]; then
    echo "a Python traceback: $exc"
  fi
  return 0
}

# kadi_try NAME CMD...: section NAME CMD; KADI_WHY is then why it failed (kadi_error), or empty.
kadi_try() {
  local name=$1 rc=0
  shift
  section "$name" "$@" || rc=$?
  KADI_WHY=$(kadi_error "$name" "$rc")
}

# kadi_run NAME WHAT LAST_LINE_RE CMD...: section NAME CMD, then ends the job (fail) unless the
# command succeeded and printed a line matching LAST_LINE_RE (extended regex, whole line).
kadi_run() {
  local name=$1 what=$2 re=$3
  shift 3
  kadi_try "$name" "$@"
  [ -z "$KADI_WHY" ] || fail "$what failed ($KADI_WHY)"
  grep -Eq "^($re)\$" "$JOB_DIR/$name.out" || fail "$what did not report success (no line matching $re)"
}

# step_failed STEP MESSAGE: a step whose kadi command failed or cannot vouch for its result, where
# the job carries on with its other checks: needs attention, the step shows FAILED in the
# summary, and the job fails at its end.
step_failed() {
  attention "$2"
  printf '%s\n' "$2" >> "$JOB_DIR/failed"
  printf '%s\n' "$1" >> "$JOB_DIR/failed-steps"
  echo "step_failed=$1"
}

JOB_VERBS+=(db_upgrade)
cmd_db_upgrade() {
  maint_begin "$@"
  step_run db-upgrade db_upgrade_step
  maint_end "kadi db upgrade"
}

KADI_MODELS=(record collection template group)

JOB_VERBS+=(reindex)
cmd_reindex() {
  maint_begin "$@"
  local model; model=$(opt model)
  if [ -n "$model" ] && [[ " ${KADI_MODELS[*]} " != *" $model "* ]]; then fail "unknown model $model (one of ${KADI_MODELS[*]})"; fi
  step_run reindex reindex_step "$model"
  step_run indices indices_step
  maint_end "kadi search reindex"
}

# remove_orphans key=value... names=<space separated>: removes each named index only if, right
# now, `kadi search ls` lists it without the alias marker. Alias and model names, and anything
# that is not a plain <model>_<20 digits> name (remove takes wildcards), are refused outright.
JOB_VERBS+=(remove_orphans)
cmd_remove_orphans() {
  maint_begin "$@"
  local name m
  for name in $(opt names); do
    for m in "${KADI_MODELS[@]}"; do [ "$name" = "$m" ] && fail "refusing to remove $name: it is an alias of a live index"; done
    [[ $name =~ ^[a-z]+_[0-9]{20}$ ]] || fail "refusing to remove $name: not a plain index name"
  done
  step_run check-indices kadi_run search-ls "kadi search ls" "Indices for '.*':" kadi_cli search ls
  for name in $(opt names); do
    if grep -qxF "* $name" "$JOB_DIR/search-ls.out"; then
      step_run "remove-$name" kadi_run "remove-$name" "kadi search remove $name" 'Search indices removed successfully\.' kadi_cli search remove "$name" --i-am-sure
    elif grep -q "^\* $name (pointed to by alias" "$JOB_DIR/search-ls.out"; then
      fail "refusing to remove $name: it is the live index behind an alias now"
    else
      attention "$name is no longer listed; skipped"
    fi
  done
  maint_end "remove-orphans"
}

# files_check key=value... [resolve=yes expected=N]: without resolve it answers "n". With it, the
# answer is "y" only if the run about to resolve reports exactly N inconsistencies - the count the
# operator confirmed - decided while the prompt waits, so nothing else can slip in between.
JOB_VERBS+=(files_check)
cmd_files_check() {
  maint_begin "$@"
  if [ "$(opt resolve)" != yes ]; then
    step_run files-check files_check_step
    maint_end "kadi files check"
    return 0
  fi
  [[ $(opt expected) =~ ^[0-9]+$ ]] || fail "resolve needs the confirmed count"
  # Ends with "Inconsistencies resolved successfully." or, with nothing to resolve, the clean trailer.
  # The prompt is answered by agent/kadi_ops_agent/files_check_answer.py.
  step_run files-check-resolve kadi_run files-check "kadi files check --resolve" 'Inconsistencies resolved successfully\.|Files checked successfully\.' \
    agent_py files-check-answer "$(opt expected)" env KADI_CONFIG_FILE="$(opt kadi_config)" "$(opt kadi_cli)" files check
  maint_end "kadi files check --resolve"
}

JOB_VERBS+=(redis_snapshot)
cmd_redis_snapshot() {
  maint_begin "$@"
  step_run redis-bgsave redis_bgsave
  maint_end "redis snapshot"
}
# BGSAVE, then waits (up to 120 s) until that save has ended and checks that it succeeded: the
# snapshot on disk is new. Also the backup's Redis step. LASTSAVE alone cannot tell: it counts
# whole seconds, so a save that ends in the second the previous one ended leaves it unchanged.
# Redis marks the save in progress before it answers BGSAVE, so "none in progress" afterwards
# means this one has ended, and rdb_last_bgsave_status says how: a failed save (e.g. Redis cannot
# write its directory) fails at once, with Redis' own reason from its log when that can be read.
# A save that is already running (another client's BGSAVE, an AOF rewrite) is waited for and
# BGSAVE asked again, so the snapshot begins after this request; any other refusal (MISCONF,
# NOAUTH, a renamed command, no server) fails at once with Redis' reply.
redis_bgsave() {
  local reply info status where size=0 waited='' deadline=$((SECONDS + 120)) last
  where=$(redis_log_where)
  if [ "${where%%:*}" = file ]; then size=$(stat -c %s -- "${where#file:}" 2>/dev/null || echo 0); fi
  while :; do
    reply=$(redis_cmd BGSAVE) || true
    case $reply in
      'Background saving started') break ;;
      *'already in progress'* | *'Another child process is active'*)
        [ -n "$waited" ] || echo "redis: another save is running ($reply); waiting for it to end, then saving again"
        waited=yes
        [ "$SECONDS" -lt "$deadline" ] || fail "redis was busy with another save for 120 s ($reply)"
        sleep 0.2 ;;
      *) fail "redis did not accept BGSAVE: ${reply:-no reply from redis-cli}" ;;
    esac
  done
  while :; do
    info=$(redis_cmd INFO persistence) || true
    grep -q '^rdb_bgsave_in_progress:' <<<"$info" || fail "redis-cli INFO persistence failed: $info"
    if grep -qx 'rdb_bgsave_in_progress:0' <<<"$info"; then
      status=$(sed -n 's/^rdb_last_bgsave_status://p' <<<"$info")
      [ "$status" = ok ] || fail "redis BGSAVE failed (rdb_last_bgsave_status:$status): $(redis_failure_reason "$where" "$size")"
      last=$(redis_cmd LASTSAVE) || true
      echo "redis_lastsave=$last"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "redis did not finish BGSAVE within 120 s (rdb_bgsave_in_progress:1)"
    sleep 0.1
  done
}

# redis-cli with the configured port; Redis' error replies are text on stdout (exit status 0).
redis_cmd() { "$(opt redis_cli)" -p "$(opt redis_port)" "$@" 2>&1 | tr -d '\r'; }

# Where Redis logs: "file:PATH", "stdout" (no logfile: the service manager's journal) or
# "unknown:REPLY" (CONFIG refused, e.g. renamed away).
redis_log_where() {
  local r dir
  r=$(redis_cmd CONFIG GET logfile) || true
  if [ "$(sed -n 1p <<<"$r")" != logfile ]; then echo "unknown:$(head -c 200 <<<"$r" | grep -v '^$' | paste -sd ' ')"; return 0; fi
  r=$(sed -n 2p <<<"$r")
  if [ -z "$r" ]; then echo stdout; return 0; fi
  # A relative logfile is opened in Redis' working directory, its dir.
  if [ "${r#/}" = "$r" ]; then dir=$(redis_cmd CONFIG GET dir | sed -n 2p) || true; r=$dir/$r; fi
  echo "file:$r"
}

# redis_failure_reason WHERE SIZE: Redis' warnings logged since the log had SIZE bytes (the
# child's "Failed opening the temp RDB file ... Permission denied", then "Background saving
# error"), or where to look when they cannot be read.
redis_failure_reason() {
  local where=$1 size=$2 log lines
  case $where in
    file:*)
      log=${where#file:}
      if [ ! -r "$log" ]; then echo "Redis' reason is in its log $log, which $(id -un) cannot read"; return 0; fi
      # Rotated meanwhile: read it from the start.
      [ "$(stat -c %s -- "$log" 2>/dev/null || echo 0)" -ge "$size" ] || size=0
      lines=$(tail -c +$((size + 1)) -- "$log" | sed -n 's/^[0-9]*:[A-Z] [^#]* # //p' | tail -n 5 | paste -sd '|' | sed 's/|/; /g')
      if [ -n "$lines" ]; then echo "Redis says: $lines (from its log $log)"; else echo "Redis logged no reason; see its log $log"; fi
      ;;
    stdout) echo "Redis logs to its standard output, not a file: see the service's journal (e.g. journalctl -u redis-server)" ;;
    *) echo "the Redis log could not be located (CONFIG GET logfile: ${where#unknown:}); see the Redis server's log" ;;
  esac
}

JOB_VERBS+=(fix_permissions)
cmd_fix_permissions() {
  maint_begin "$@"
  local name live
  for name in storage uploads; do
    live=$(opt "${name}_path")
    [ -d "$live" ] || fail "$name directory $live does not exist"
    step_run "permissions-$name" fix_tree_perms "$live" "$(stat -c %U "$live")" "$(stat -c %G "$live")"
  done
  maint_end "fix-permissions"
}
