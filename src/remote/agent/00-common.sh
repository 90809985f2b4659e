#!/bin/bash
# kadi-ops host agent, assembled from src/remote/agent/*.sh in file-name order. Installed by
# Kadi Ops under <backupDir>/.kadi-ops/agent/ (named by the hash of its content) and run as the
# Kadi user: `bash kadi-ops-agent-<hash>.sh VERB ARGS...`.
# It is static text: every value reaches it as a quoted argument, secrets only on stdin.
# Output protocol: machine-readable lines are `key=value`; everything else is for humans.
set -o errexit -o nounset -o pipefail
umask 077

die() { echo "kadi-ops: $*" >&2; exit 2; }

# Python helpers run as `python3 -I -S`: isolated from the caller's PYTHON* variables and user
# site-packages (nothing outside the standard library is used), and quicker to start.

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
# Wall-clock seconds with fractions, and the difference of two such readings.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
fail() { echo "ERROR: $*" >&2; exit 1; }

SET_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z$'

have() { command -v "$1" >/dev/null 2>&1; }

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
