"""How long a block suggestion may be: a line limit, and two blank lines end it."""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.lines import cut_before, split_lines

MAX_BLOCK_LINES = 16


def limit_block_length(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """At most MAX_BLOCK_LINES lines, and a run of two blank lines ends a block."""
    if not ctx.multiline:
        return None
    blank_run = 0
    for line in split_lines(text, ctx, final):
        if not line.complete:
            break
        if line.index >= MAX_BLOCK_LINES:
            return cut_before(line)
        blank_run = blank_run + 1 if line.blank else 0
        if blank_run >= 2 and line.index > 1:
            return cut_before(line)
    return None
