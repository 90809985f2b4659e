#!/bin/bash
# Installs (once per machine) the pinned Node 24 and code-server used to run the extension in a real
# VS Code (web workbench + Node extension host) on machines that cannot download VS Code.
# Both live in a per-user cache folder keyed by version, outside the clone, so repeated runs reuse them:
#   ${KADI_OPS_TEST_CACHE:-~/.cache/kadi-ops-test}/node-<v>/node_modules/.bin/node
#   ${KADI_OPS_TEST_CACHE:-~/.cache/kadi-ops-test}/code-server-<v>-node-<v>/node_modules/code-server
# Prints the two paths (node, code-server entry.js) on stdout, one per line. Progress goes to stderr.
set -euo pipefail

NODE_VERSION=${KADI_OPS_NODE_VERSION:-24.21.0}
CODE_SERVER_VERSION=${KADI_OPS_CODE_SERVER_VERSION:-4.139.1}
CACHE=${KADI_OPS_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kadi-ops-test}

# Called from inside an npm script, npm's environment would leak into the nested installs: code-server's
# postinstall reads the outer npm's Node version from npm_config_user_agent and refuses.
unset npm_config_user_agent npm_config_prefix npm_config_global npm_config_local_prefix npm_package_json
unset npm_lifecycle_event npm_lifecycle_script npm_execpath npm_node_execpath

node_dir="$CACHE/node-$NODE_VERSION"
cs_dir="$CACHE/code-server-$CODE_SERVER_VERSION-node-$NODE_VERSION"
node_bin="$node_dir/node_modules/.bin/node"
cs_entry="$cs_dir/node_modules/code-server/out/node/entry.js"

lock() { # one installer at a time per cache folder
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.install.lock"
  flock 9
}

install_node() {
  [ -x "$node_bin" ] && [ -f "$node_dir/.complete" ] && return 0
  echo "kadi-ops: first run: downloading Node $NODE_VERSION from the npm registry into $node_dir (once, ~120 MB)" >&2
  # Installed in place; .complete marks a finished install, a broken one is started over.
  rm -rf "$node_dir" && mkdir -p "$node_dir"
  (cd "$node_dir" && echo '{"private":true}' >package.json &&
    npm install --no-audit --no-fund --no-save --loglevel=error "node@$NODE_VERSION" >&2)
  "$node_bin" --version >/dev/null
  touch "$node_dir/.complete"
}

install_code_server() {
  [ -f "$cs_entry" ] && [ -f "$cs_dir/.complete" ] && return 0
  echo "kadi-ops: first run: downloading code-server $CODE_SERVER_VERSION from the npm registry into $cs_dir (once, ~700 MB, ~3 min; KADI_OPS_TEST_CACHE moves it)" >&2
  rm -rf "$cs_dir" && mkdir -p "$cs_dir"
  # node-gyp would download Node headers; the system headers do (VS Code's native modules use N-API).
  (cd "$cs_dir" && echo '{"private":true}' >package.json &&
    PATH="$node_dir/node_modules/.bin:$PATH" npm_config_nodedir=/usr \
      npm install --no-audit --no-fund --no-save --loglevel=error "code-server@$CODE_SERVER_VERSION" >&2)
  touch "$cs_dir/.complete"
}

lock
install_node
install_code_server
echo "$node_bin"
echo "$cs_entry"
