# list-sets BACKUP_DIR: one JSON document describing every set, partial set and the lock, so a
# host's listing is a single round trip even with a thousand sets.
cmd_list_sets() {
  agent_py list-sets "$1"  # agent/kadi_ops_agent/sets.py
}


# pin|unpin BACKUP_DIR SET
cmd_pin() { check_set_name "$2"; [ -f "$1/$2/manifest.json" ] || die "no set $2"; : > "$1/$2/.pinned"; echo "pinned=$2"; }
cmd_unpin() { check_set_name "$2"; [ -d "$1/$2" ] || die "no set $2"; rm -f "$1/$2/.pinned"; echo "unpinned=$2"; }

JOB_VERBS+=(prune)

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
    remove_tree "$bd/.deleting-$n" || fail "could not delete all of set $n (left as $bd/.deleting-$n)"
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
    remove_tree "${bd:?}/$n" || fail "could not remove all of $n"
    echo "removed=$n"
  done
}

# overview BACKUP_DIR: sets, partial sets and jobs in one answer (the tree's one round trip).
cmd_overview() {
  cmd_list_sets "$1"
  echo
  echo "--- jobs"
  cmd_job_list "$1"
}

