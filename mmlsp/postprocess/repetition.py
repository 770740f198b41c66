"""Loops: a model that repeats a line, or a block of a few lines, is cut at the repeat."""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.lines import cut_before, split_lines

# Identical consecutive lines needed before the run counts as a loop; a repeated
# block of 2..MAX_PERIOD lines counts at its second copy.
REPEATED_LINE_RUN = 3
MAX_PERIOD = 4


def remove_repeated_lines(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Cut a loop: a line repeated REPEATED_LINE_RUN times, or a block repeated twice.

    The first copy stays; the cut falls right before the second.
    """
    if not ctx.multiline:
        return None
    code = [line for line in split_lines(text, ctx, final) if line.complete and not line.blank]
    keys = [line.full.rstrip() for line in code]
    for end in range(1, len(keys)):
        for period in range(1, MAX_PERIOD + 1):
            copies = REPEATED_LINE_RUN if period == 1 else 2
            span = period * copies
            if end + 1 < span:
                continue
            block = keys[end + 1 - period : end + 1]
            if sum(len(key.strip()) for key in block) < 2:
                continue  # lines of a bracket or two repeat legitimately
            window = keys[end + 1 - span : end + 1]
            if all(window[i] == block[i % period] for i in range(span)):
                return cut_before(code[end + 1 - span + period])
    return None
