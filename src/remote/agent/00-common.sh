#!/bin/bash
# kadi-ops host agent, assembled from src/remote/agent/*.sh in file-name order. Installed by
# Kadi Ops under <backupDir>/.kadi-ops/agent/ (named by the hash of its content) and run as the
# Kadi user: `bash kadi-ops-agent-<hash>.sh VERB ARGS...`.
# It is static text: every value reaches it as a quoted argument, secrets only on stdin.
# Output protocol: machine-readable lines are `key=value`; everything else is for humans.
set -o errexit -o nounset -o pipefail
umask 077

die() { echo "kadi-ops: $*" >&2; exit 2; }

# All of the agent's Python is its package (agent/ in the repository), a zipapp installed beside
# this script under the same content hash (remote/agent.ts) and run as `python3 -I -S`: isolated
# from the caller's PYTHON* variables and user site-packages (nothing outside the standard library
# is used), and quicker to start. agent_py COMMAND ARGS... runs one of its commands.
AGENT_PYZ="${BASH_SOURCE[0]%.sh}.pyz"
agent_py() { python3 -I -S "$AGENT_PYZ" "$@"; }

# Verbs that may run as detached jobs; each part adds its own.
JOB_VERBS=()

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

# --- progress -------------------------------------------------------------------------------
# `[progress] KEY PCT% DONE/TOTAL UNIT` lines, read by people in the log and by
# core/jobProgress.ts for the progress notification. An estimated total reads `~PCT% DONE/~TOTAL`
# and stays below 100% until the work is done. A line is printed only when the whole percentage
# changes and a new second has begun, so a job of any length logs at most ~100 lines per key.
declare -A _PROGRESS_PCT _PROGRESS_SEC
progress() {
  local key=$1 done=$2 total=$3 unit=$4 est=${5:-} pct t
  [ "$total" -gt 0 ] 2>/dev/null || return 0
  pct=$((done * 100 / total))
  if [ -n "$est" ]; then [ "$pct" -le 99 ] || pct=99; else [ "$pct" -le 100 ] || pct=100; fi
  t=$SECONDS
  [ "$pct" != "${_PROGRESS_PCT[$key]-}" ] || return 0
  [ "$pct" -eq 100 ] || [ "$t" != "${_PROGRESS_SEC[$key]-}" ] || return 0
  _PROGRESS_PCT[$key]=$pct; _PROGRESS_SEC[$key]=$t
  if [ -n "$est" ]; then echo "[progress] $key ~$pct% $done/~$total $unit"; else echo "[progress] $key $pct% $done/$total $unit"; fi
}

# watch_read KEY PID TOTAL: while PID runs, reports the bytes it has read so far (rchar in
# /proc/PID/io) against an estimated TOTAL. Silent where /proc is missing or not readable.
watch_read() {
  local key=$1 pid=$2 total=$3 r
  while kill -0 "$pid" 2>/dev/null; do
    r=$(sed -n 's/^rchar: //p' "/proc/$pid/io" 2>/dev/null) || return 0
    [ -z "$r" ] || progress "$key" "$r" "$total" bytes est
    sleep 1
  done
}

# rsync_progress KEY [KEEP]: filters `rsync --info=progress2 --no-inc-recursive` output into
# progress lines (files checked of the total, which - unlike rsync's byte percentage - reaches
# 100% also when --link-dest links most files). Other lines are printed, indented, when they
# match the regex KEEP; all of them without KEEP. awk, not bash: one update per file.
rsync_progress() {
  awk -v key="$1" -v keep="${2-}" '
    function now() { srand(); return srand() }
    BEGIN { RS = "[\r\n]+"; last = -1 }
    match($0, /to-chk=[0-9]+\/[0-9]+/) {
      split(substr($0, RSTART + 7, RLENGTH - 7), a, "/")
      if (a[2] == 0) next
      d = a[2] - a[1]; p = int(d * 100 / a[2]); t = now()
      if (p != last && (p == 100 || t != lastt)) { last = p; lastt = t; printf "[progress] %s %d%% %d/%d files\n", key, p, d, a[2]; fflush() }
      next
    }
    /^ *[0-9,]+ +[0-9]+% / { next }
    keep == "" && NF { print; fflush(); next }
    keep != "" && $0 ~ keep { print "  " $0; fflush() }'
}

# pg_restore_progress TOTAL ERRFILE [quiet]: pg_restore -v's stderr into ERRFILE and the log
# (with quiet, only what is not a -v progress message), with a progress line per TOC entry
# restored against the TOTAL entries enabled. Each entry prints one creating/processing
# data/executing message; with --jobs the workers' messages can interleave mid-line
# ("pg_restore: pg_restore:launching item ...\n creating ..."), so they are matched anywhere.
pg_restore_progress() {
  awk -v total="$1" -v err="$2" -v quiet="${3-}" '
    function now() { srand(); return srand() }
    BEGIN { last = -1 }
    { print > err }
    quiet == "" || $0 !~ /^pg_restore: (connecting|creating|processing|executing|dropping|launching|finished|entering|restoring|implied) / { print; fflush() }
    /(^ *|pg_restore: *)(creating [A-Z]|processing data for |processing BLOBS$|executing [A-Z])/ && total > 0 {
      d++; p = int(d * 100 / total); if (p > 100) p = 100; t = now()
      if (p != last && (p == 100 || t != lastt)) { last = p; lastt = t; printf "[progress] database %d%% %d/%d entries\n", p, d, total; fflush() }
    }'
}

# Wall-clock seconds with fractions, and the difference of two such readings.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
fail() { echo "ERROR: $*" >&2; exit 1; }

SET_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z$'

have() { command -v "$1" >/dev/null 2>&1; }

# remove_tree PATH: rm -rf, also of what sits in directories without write permission for their
# owner (a set keeps the live tree's modes; run as the Kadi user, rm alone cannot empty those).
remove_tree() {
  rm -rf -- "$1" 2>/dev/null && return 0
  [ -e "$1" ] || return 0
  find "$1" -type d ! -perm -u=rwx -exec chmod u+rwx {} \; 2>/dev/null || true
  rm -rf -- "$1"
}

# Refuses set names that are not timestamps (no path tricks).
check_set_name() { [[ $1 =~ $SET_RE ]] || die "not a backup set name: $1"; }

# Entries and bytes of the regular files in a tar archive (.tar.zst or .tar.gz): "FILES BYTES".
# Reading the whole archive is also the proof that it decompresses and parses.
archive_listing() {
  case $1 in
    *.zst) zstd -dcq -- "$1" ;;
    *.gz) gzip -dc -- "$1" ;;
    *) cat -- "$1" ;;
  esac | tar -tvf - | awk '$1 ~ /^-/ { n++; b += $3 } END { print n + 0, b + 0 }'
}
