# --- dispatch -------------------------------------------------------------------------------
# VERB maps to the function cmd_<verb with - as _>; only names made of [a-z-] are looked up.
main() {
  [ $# -ge 1 ] || die "usage: VERB ARGS..."
  local verb=$1
  shift
  [[ $verb =~ ^[a-z][a-z-]*$ ]] || die "bad verb"
  local fn="cmd_${verb//-/_}"
  declare -F "$fn" >/dev/null || die "unknown verb: $verb"
  "$fn" "$@"
}

main "$@"
