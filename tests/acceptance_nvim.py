"""Helpers for the Neovim acceptance journeys: real Neovim in a real terminal (tmux).

:class:`NvimInTmux` starts Neovim inside a detached tmux session of a private tmux
server (its own socket, no user tmux configuration), types into it with
``send-keys`` and reads the screen with ``capture-pane -p -e``, colours included.
:func:`parse_screen` turns such a capture into rows of :class:`Cell` (a character
and its :class:`Style`), so a test can tell ghost text from code by how it is drawn,
as a person does.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
# MMLSP_JOURNEY_INIT: another copy's journey_init.lua (it loads the plugin next to it).
JOURNEY_INIT = Path(
    os.environ.get("MMLSP_JOURNEY_INIT") or ROOT / "clients" / "nvim" / "tests" / "journey_init.lua"
)

# tmux's TERM inside the session. tmux-256color is 256 colours with italics; the
# journeys keep 'termguicolors' off, so colours are the 256-colour (cterm) ones.
TERM = "tmux-256color"


# -- the screen as styled cells ---------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How a cell is drawn: foreground and background colour, and attributes."""

    fg: str | None = None  # "5;244" (256 colours), "2;r;g;b" (true colour), "31", ...
    bg: str | None = None
    attrs: frozenset[str] = frozenset()

    def describe(self) -> str:
        parts = [f"fg {self.fg}" if self.fg else "default fg"]
        if self.bg:
            parts.append(f"bg {self.bg}")
        parts.extend(sorted(self.attrs))
        return ", ".join(parts)


@dataclass(frozen=True)
class Cell:
    char: str
    style: Style


@dataclass
class Row:
    cells: list[Cell] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c.char for c in self.cells)


_ATTR_ON = {1: "bold", 2: "dim", 3: "italic", 4: "underline", 5: "blink", 7: "reverse", 9: "strike"}
_ATTR_OFF = {
    22: ("bold", "dim"),
    23: ("italic",),
    24: ("underline",),
    25: ("blink",),
    27: ("reverse",),
    29: ("strike",),
}
_ESCAPE = re.compile(
    r"\x1b\[([0-9;:]*)m"  # SGR
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (hyperlinks), dropped
    r"|\x1b\[[0-9;?]*[A-Za-z]"  # any other CSI, dropped
)


def _apply_sgr(style: Style, params: str) -> Style:
    codes = [int(p) if p.isdigit() else 0 for p in re.split(r"[;:]", params)] if params else [0]
    fg, bg, attrs = style.fg, style.bg, set(style.attrs)
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            fg, bg, attrs = None, None, set()
        elif code in _ATTR_ON:
            attrs.add(_ATTR_ON[code])
        elif code in _ATTR_OFF:
            attrs.difference_update(_ATTR_OFF[code])
        elif code in (38, 48, 58):  # 58: the underline colour, not kept
            if i + 1 < len(codes) and codes[i + 1] == 5 and i + 2 < len(codes):
                value, i = f"5;{codes[i + 2]}", i + 2
            elif i + 1 < len(codes) and codes[i + 1] == 2 and i + 4 < len(codes):
                value, i = "2;" + ";".join(map(str, codes[i + 2 : i + 5])), i + 4
            else:
                value = None
            if code == 38:
                fg = value
            elif code == 48:
                bg = value
        elif code == 39:
            fg = None
        elif code == 49:
            bg = None
        elif 30 <= code <= 37 or 90 <= code <= 97:
            fg = str(code)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            bg = str(code)
        i += 1
    return Style(fg, bg, frozenset(attrs))


def parse_screen(capture: str) -> list[Row]:
    """Rows of styled cells from ``tmux capture-pane -p -e`` output."""
    rows = []
    style = Style()
    for line in capture.split("\n"):
        row = Row()
        pos = 0
        for match in _ESCAPE.finditer(line):
            row.cells.extend(Cell(ch, style) for ch in line[pos : match.start()])
            if match.group(0).endswith("m") and match.group(0).startswith("\x1b["):
                style = _apply_sgr(style, match.group(1))
            pos = match.end()
        row.cells.extend(Cell(ch, style) for ch in line[pos:])
        rows.append(row)
        # tmux ends each line with the attributes reset only where they changed;
        # a line starts fresh in the capture only after an explicit reset.
    return rows


def styled_runs(row: Row, start: int = 0) -> list[tuple[str, Style]]:
    """The row from column ``start`` as (text, style) runs, trailing blanks dropped."""
    runs: list[tuple[str, Style]] = []
    for cell in row.cells[start:]:
        if runs and runs[-1][1] == cell.style:
            runs[-1] = (runs[-1][0] + cell.char, cell.style)
        else:
            runs.append((cell.char, cell.style))
    while runs and not runs[-1][0].strip():
        runs.pop()
    return runs


# -- Neovim in tmux ----------------------------------------------------------------------------


class ScreenTimeout(AssertionError):
    pass


def have_tmux() -> bool:
    return shutil.which("tmux") is not None


class NvimInTmux:
    """One Neovim in one detached tmux session on a private tmux server."""

    def __init__(
        self,
        nvim: str,
        workdir: Path,
        env: dict[str, str],
        *,
        width: int = 120,
        height: int = 40,
        init: Path = JOURNEY_INIT,
    ) -> None:
        self.nvim = nvim
        self.workdir = workdir
        self.env = env
        self.width, self.height = width, height
        self.init = init
        self.socket = f"mmlsp-journey-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.session = "journey"
        self.conf = workdir / "tmux.conf"

    # tmux ---------------------------------------------------------------------------------
    def tmux(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.conf), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, *files: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f'set -g default-terminal "{TERM}"\n'
            "set -g escape-time 10\n"  # an <Esc> is not read as Alt with what follows
            "set -g remain-on-exit on\n"  # keep the pane (and what it printed) if nvim dies
            "set -g status off\n"
            "set -g history-limit 0\n",
            encoding="utf-8",
        )
        argv = [self.nvim, "-i", "NONE", "-u", str(self.init), *files]
        self.tmux(
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            "-c",
            str(self.workdir),
            " ".join(shlex.quote(a) for a in argv),
        )
        # If this test process dies without close() (killed by a CI timeout), the
        # tmux server, Neovim and the model server must not run on: a watchdog
        # ends them once this process is gone.
        tmux = shlex.join(["tmux", "-L", self.socket, "-f", str(self.conf), "kill-server"])
        self._watchdog = subprocess.Popen(
            ["sh", "-c", f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 5; done; {tmux}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def close(self) -> None:
        self.tmux("kill-server", check=False)
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None and watchdog.poll() is None:
            watchdog.terminate()
            watchdog.wait(timeout=10)

    # input ---------------------------------------------------------------------------------
    def keys(self, *names: str) -> None:
        """tmux key names, one keystroke each: "Escape", "Enter", "Tab", "C-w", "K"."""
        for name in names:
            self.tmux("send-keys", "-t", self.session, name)

    def type(self, text: str, delay: float = 0.0) -> None:
        """Types ``text`` literally, all at once or one character every ``delay`` s."""
        if delay <= 0:
            self.tmux("send-keys", "-t", self.session, "-l", text)
            return
        for ch in text:
            self.tmux("send-keys", "-t", self.session, "-l", ch)
            time.sleep(delay)

    def command(self, line: str) -> None:
        """An Ex command, typed as a person would: ``:line`` and Enter."""
        self.type(":" + line)
        self.keys("Enter")

    # output --------------------------------------------------------------------------------
    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-e", "-t", self.session)

    def rows(self) -> list[Row]:
        return parse_screen(self.capture())[: self.height]

    def text(self) -> str:
        return "\n".join(row.text.rstrip() for row in self.rows())

    def cursor(self) -> tuple[int, int]:
        """(row, column) of the terminal cursor, 0-based."""
        out = self.tmux("display-message", "-p", "-t", self.session, "#{cursor_y} #{cursor_x}")
        y, x = out.split()
        return int(y), int(x)

    def dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}").strip() == "1"

    def wait_for(
        self,
        what: str,
        predicate: Callable[[], T | None | bool],
        timeout: float,
        interval: float = 0.25,
    ) -> T:
        """Polls ``predicate`` until it returns something truthy; raises ScreenTimeout
        (with the screen) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.dead():
                raise ScreenTimeout(f"Neovim exited while waiting for {what}\n{self.text()}")
            if time.monotonic() > deadline:
                raise ScreenTimeout(f"no {what} after {timeout:.0f} s; the screen:\n{self.text()}")
            time.sleep(interval)

    def wait_text(self, pattern: str, timeout: float, what: str | None = None) -> re.Match:
        regex = re.compile(pattern)
        return self.wait_for(what or repr(pattern), lambda: regex.search(self.text()), timeout)

    def dismiss_prompt(self) -> None:
        """Answers a hit-enter prompt, if one is shown."""
        if "Press ENTER" in self.text():
            self.keys("Enter")


def find_row(rows: Iterable[Row], needle: str) -> int | None:
    for i, row in enumerate(rows):
        if needle in row.text:
            return i
    return None


class Timings:
    """How long each journey step took, for the report."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str, float, str]] = []

    def add(self, version: str, step: str, seconds: float, note: str = "") -> None:
        self.steps.append((version, step, seconds, note))
        print(f"[nvim {version}] {step}: {seconds:.1f} s {note}".rstrip())

    def table(self) -> str:
        lines = ["Neovim journey step timings (seconds):"]
        for version, step, seconds, note in self.steps:
            lines.append(f"  nvim {version:5} {step:22} {seconds:7.1f}  {note}".rstrip())
        return "\n".join(lines)
