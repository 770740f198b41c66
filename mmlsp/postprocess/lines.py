"""The lines of a suggestion, as they will read in the document.

This module owns what the stop rules share: splitting a suggestion into ``Line``s that
know the whole document line (line 0 includes the text left of the cursor), whether
they start inside a string or inside a bracket the suggestion opened, and whether the
model has finished them; the cut indices that drop a line or keep it; and the first
line of the document below the cursor. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmlsp.context.window import CursorContext
from mmlsp.syntax.shape import ScanState, indent_width, scan


@dataclass(frozen=True)
class Line:
    index: int
    start: int  # offset of the completion's part of this line in the completion
    full: str  # the whole document line (line 0 includes the text left of the cursor)
    in_string: bool  # starts inside a string: its indentation means nothing
    in_brackets: bool  # starts inside a bracket the suggestion opened: a continuation
    complete: bool  # the model has finished this line

    @property
    def exempt(self) -> bool:
        """Not the start of a statement."""
        return self.in_string or self.in_brackets

    @property
    def blank(self) -> bool:
        return not self.full.strip()

    @property
    def indent(self) -> int:
        return indent_width(self.full)


def split_lines(text: str, ctx: CursorContext, final: bool) -> list[Line]:
    """``text`` as ``Line``s; with ``final`` False the last one is not complete yet."""
    parts = text.split("\n")
    lex = ctx.lexicon
    state = ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote)
    base = len(ctx.shape.stack)
    out: list[Line] = []
    start = 0
    for index, part in enumerate(parts):
        in_string = index > 0 and state.quote is not None
        in_brackets = index > 0 and len(state.stack) > base
        full = (ctx.line_prefix + part if index == 0 else part).rstrip("\r")
        complete = final or index < len(parts) - 1
        out.append(Line(index, start, full, in_string, in_brackets, complete))
        state = scan(part + "\n", state, lex)
        start += len(part) + 1
    return out


def cut_before(line: Line) -> int:
    """Cut index that drops ``line`` and everything after it."""
    return max(0, line.start - 1)


def cut_after(text: str, line: Line) -> int | None:
    """Cut index that keeps ``line`` and drops the rest (None: nothing follows)."""
    end = text.find("\n", line.start)
    return None if end < 0 else end


def next_suffix_line(ctx: CursorContext) -> str | None:
    """The first non-blank line below the cursor's line, without its line break."""
    below = ctx.suffix.split("\n")[1:]
    return next((line.rstrip("\r") for line in below if line.strip()), None)
