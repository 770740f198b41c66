"""The Neovim plugin's next-edit suggestions (clients/nvim/lua/mmlsp/next_edit.lua).

The real server with the tiny random-weight model rarely proposes an edit, so the
drawing and the keys are tested against a scripted LSP server
(``tests/fake_next_edit_server.py``, real LSP over stdio) whose rules below answer
``mmlsp/nextEdit`` with fixed edits and which records what the client sends.

* Headless, in each installed Neovim (0.7.2 and 0.11.x, found as in test_nvim.py):
  ``clients/nvim/tests/next_edit_init.lua`` runs its scenarios once and each is a test
  here: the prediction is drawn (removed text highlighted, inserted text as virtual
  text, a hint when it is away from the cursor), <Tab> jumps then applies, the accept
  command and the shown notification reach the server, the next one is chained, an
  outdated or superseded answer is dropped (and the request cancelled), <Esc>
  dismisses, ghost text keeps <Tab>, inserted lines are virtual lines, one undo step.
* With the real server and the tiny model: the plugin sends mmlsp/nextEdit after an
  edit and the server answers without error.
* In tmux, as a person sees it: the prediction on screen, drawn unlike code, and
  <Tab> <Tab> making it real text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance_nvim import NvimInTmux, find_row, have_tmux, styled_runs
from tests.test_nvim import FINDERS, _find, _missing

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "clients" / "nvim" / "tests" / "next_edit_init.lua"
JOURNEY_INIT = ROOT / "clients" / "nvim" / "tests" / "next_edit_journey_init.lua"
FAKE_SERVER = Path(__file__).resolve().parent / "fake_next_edit_server.py"
RUN_TIMEOUT = 240
REAL_RUN_TIMEOUT = 480

# The scripted server's answers; the documents and keys are in next_edit_init.lua.
RULES = [
    # stale_dropped: typing " slow" is answered 700 ms late.
    {"if": "slow", "delay_ms": 700, "edits": [{"after": "slow", "insert": "ly"}]},
    # stale_dropped: an answer for the version before the current one.
    {"if": "OLD", "version_offset": -1, "edits": [{"after": "x = 1", "insert": " + 1"}]},
    # After ", tax" is typed into `def total(prices):`, the use of the new parameter...
    {
        "if": "prices, tax)",
        "unless": "1 + tax",
        "edits": [{"find": "sum(prices)", "replace": "sum(prices) * (1 + tax)"}],
    },
    # ... and then (chained) the call site, three lines further down.
    {
        "if": "1 + tax",
        "unless": "tax=0.2",
        "edits": [{"after": "total([1, 2]", "insert": ", tax=0.2"}],
    },
    # lines: a line inserted below the cursor line, and a whole line above another.
    {
        "if": "y = x * 2",
        "unless": "return y",
        "edits": [
            {"after": "y = x * 2", "insert": "\n    return y"},
            {"before": "print(f(1))", "insert": "# call it\n"},
        ],
    },
    # normal_mode_undo
    {
        "if": "total = 0",
        "unless": "# the total",
        "edits": [{"after": "total = 0", "insert": "  # the total"}],
    },
]

SCENARIOS = (
    "draw",
    "tab_jump_accept_chain",
    "esc_dismisses",
    "stale_dropped",
    "ghost_text_first",
    "lines",
    "normal_mode_undo",
    "option_off",
)


def _isolated_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    xdg = tmp / "xdg"
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MMLSP_CACHE_DIR=str(tmp / "mmlsp-cache"),
        XDG_CONFIG_HOME=str(xdg / "config"),
        XDG_DATA_HOME=str(xdg / "data"),
        XDG_STATE_HOME=str(xdg / "state"),
        XDG_CACHE_HOME=str(xdg / "cache"),
    )
    for name in ("VIMINIT", "NVIM", "NVIM_LISTEN_ADDRESS"):
        env.pop(name, None)
    return env


def _fake_command(tmp: Path) -> list[str]:
    rules = tmp / "rules.json"
    rules.write_text(json.dumps(RULES), encoding="utf-8")
    return [
        sys.executable,
        str(FAKE_SERVER),
        "--script",
        str(rules),
        "--log",
        str(tmp / "events.jsonl"),
    ]


def _run_harness(
    binary: str, version: str, tmp: Path, cmd: list[str], real: bool, timeout: int
) -> dict:
    results = tmp / "results.json"
    env = _isolated_env(tmp)
    env.update(
        MMLSP_NE_CMD=json.dumps(cmd),
        MMLSP_NE_RESULTS=str(results),
        MMLSP_NE_WORKDIR=str(tmp / "work"),
        MMLSP_NE_REAL="1" if real else "",
    )
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [binary, "--headless", "-i", "NONE", "-u", str(HARNESS)],
            env=env,
            cwd=str(tmp),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        returncode = None
    seconds = time.monotonic() - start
    report = f"nvim {version} ({binary}) exit {returncode} after {seconds:.1f}s\n{output[-6000:]}"
    print(report)
    data = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else {}
    return {
        "version": version,
        "returncode": returncode,
        "data": data,
        "by_name": {r["name"]: r for r in data.get("results", [])},
        "report": report,
    }


def _binary(version: str) -> str:
    binary = _find(version)
    if binary is None:
        _missing(version)
    return binary


@pytest.fixture(scope="module", params=list(FINDERS))
def fake_run(request, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The scripted-server scenarios, run once in one Neovim version."""
    version = request.param
    binary = _binary(version)
    tmp = tmp_path_factory.mktemp(f"nvim-next-edit-{version}")
    return _run_harness(binary, version, tmp, _fake_command(tmp), real=False, timeout=RUN_TIMEOUT)


def test_next_edit_run_exits_cleanly(fake_run):
    assert fake_run["returncode"] is not None, "Neovim timed out\n" + fake_run["report"]
    assert fake_run["data"] and not fake_run["data"].get("aborted"), fake_run["report"]
    failed = [r for r in fake_run["data"]["results"] if r["status"] == "fail"]
    assert (fake_run["returncode"] == 0) == (not failed), fake_run["report"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_next_edit_scenario(fake_run, scenario):
    result = fake_run["by_name"].get(scenario)
    assert result is not None, f"scenario {scenario} did not run\n" + fake_run["report"]
    assert result["status"] == "pass", (
        f"nvim {fake_run['version']} {scenario}: {result['detail']}\n" + fake_run["report"]
    )


@pytest.mark.parametrize("version", list(FINDERS))
def test_next_edit_with_the_real_server(version, tiny_model_dir: Path, tmp_path: Path):
    """The plugin asks the real server (tiny model) after an edit; it answers, no error."""
    binary = _binary(version)
    cmd = [sys.executable, "-m", "mmlsp", "--model", str(tiny_model_dir)]
    run = _run_harness(binary, version, tmp_path, cmd, real=True, timeout=REAL_RUN_TIMEOUT)
    result = run["by_name"].get("real_server")
    assert result is not None, run["report"]
    assert result["status"] == "pass", f"nvim {version}: {result['detail']}\n" + run["report"]
    assert run["returncode"] == 0, run["report"]


# -- in tmux, as a person sees it ---------------------------------------------------------

TOTAL = "def total(prices):\n    return sum(prices)\n\n\nprint(total([1, 2]))\n"


def _wait_attached(nvim: NvimInTmux, timeout: float = 60) -> None:
    """Asks Neovim (with :lua print) until next edits are set up in the buffer."""
    probe = (
        "lua print(require('mmlsp.next_edit')._buffers[vim.api.nvim_get_current_buf()]"
        " and 'NE-' .. 'READY' or 'NE-' .. 'WAIT')"
    )

    def ready() -> bool:
        nvim.command(probe)
        time.sleep(0.3)
        return "NE-READY" in nvim.text()

    nvim.wait_for("next edits attached", ready, timeout, interval=0.5)
    nvim.command("echo ''")


@pytest.mark.parametrize("version", list(FINDERS))
def test_next_edit_on_screen(version, tmp_path: Path):
    if not have_tmux():
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed")
        pytest.skip("tmux is not installed")
    binary = _binary(version)
    work = tmp_path / "work"
    work.mkdir()
    (work / "total.py").write_text(TOTAL, encoding="utf-8")
    env = _isolated_env(tmp_path)
    env["MMLSP_NE_CMD"] = json.dumps(_fake_command(tmp_path))
    nvim = NvimInTmux(binary, work, env, init=JOURNEY_INIT)
    nvim.start("total.py")
    try:
        nvim.wait_text(r"def total\(prices\):", 30, "the file")
        _wait_attached(nvim)
        nvim.type("1G17|")  # on the ")" of `def total(prices):`
        nvim.type("i")
        nvim.type(", tax")
        nvim.wait_text(r"next edit: line 2, <Tab> to jump", 20, "the next edit's hint")
        text = nvim.text()
        print(f"--- nvim {version}: the prediction ---\n{nvim.capture()}")
        row = find_row(nvim.rows(), "return sum(prices)")
        assert row is not None, text
        line = nvim.rows()[row].text
        # The removed text stays, highlighted; the inserted text follows it.
        assert "sum(prices)sum(prices) * (1 + tax)" in line, line
        runs = styled_runs(nvim.rows()[row])
        inserted = [style for chunk, style in runs if "* (1 + tax)" in chunk]
        plain = [style for chunk, style in runs if "return" in chunk]
        assert inserted and plain and inserted[0] != plain[0], runs  # drawn unlike code
        nvim.keys("Tab")  # jump to line 2
        nvim.keys("Tab")  # apply
        nvim.wait_text(r"return sum\(prices\) \* \(1 \+ tax\)\s", 10, "the applied edit")
        nvim.wait_text(r"next edit: line 5", 10, "the chained next edit")
        print(f"--- nvim {version}: applied, the chained one ---\n{nvim.text()}")
        nvim.keys("Escape")
        nvim.wait_for(
            "the chained next edit dismissed",
            lambda: "next edit" not in nvim.text() and "tax=0.2" not in nvim.text(),
            10,
        )
        final = nvim.text()
        assert "print(total([1, 2]))" in final, final
        assert re.search(r"def total\(prices, tax\):", final), final
    finally:
        nvim.close()
