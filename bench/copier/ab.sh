#!/bin/bash
# The agent's copier alone, at two commits, on the same generated tree: a first set and a repeat
# set per side, the sides alternated ROUNDS times; /usr/bin/time's wall, user and sys per run.
# Not part of npm test. Usage: bench/copier/ab.sh BEFORE_COMMIT AFTER_COMMIT [FILES] [ROUNDS] [DIR]
# DIR (default /dev/shm/kadi-ops-copier-ab: tmpfs, where the copy is all CPU) holds the tree and sets.
set -euo pipefail
before=$1 after=$2 files=${3:-100000} rounds=${4:-3} dir=${5:-/dev/shm/kadi-ops-copier-ab}
repo=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3
rm -rf "$dir" && mkdir -p "$dir/sets"
trap 'rm -rf "$dir"' EXIT
for side in before after; do
  commit=${!side}
  git -C "$repo" worktree add -q --detach "$dir/src-$side" "$commit"
  "$py" "$dir/src-$side/agent/build.py" "$dir/$side.pyz"
  git -C "$repo" worktree remove --force "$dir/src-$side"
done
"$py" "$repo/bench/copier/tree.py" "$dir/live" "$files"
echo "tree: $files files, $(find "$dir/live" | wc -l) entries, $(du -sh "$dir/live" | cut -f1)"
for round in $(seq "$rounds"); do
  for side in before after; do
    rm -rf "$dir/sets/"*; mkdir -p "$dir/sets/1" "$dir/sets/2"
    /usr/bin/time -f "$side first  wall %e user %U sys %S" "$py" -I -S "$dir/$side.pyz" copier storage "$dir/live" "$dir/sets/1/storage" '' >/dev/null 2>"$dir/err" || { cat "$dir/err"; exit 1; }
    tail -1 "$dir/err"
    /usr/bin/time -f "$side repeat wall %e user %U sys %S" "$py" -I -S "$dir/$side.pyz" copier storage "$dir/live" "$dir/sets/2/storage" "$dir/sets/1" >/dev/null 2>"$dir/err" || { cat "$dir/err"; exit 1; }
    tail -1 "$dir/err"
  done
done
