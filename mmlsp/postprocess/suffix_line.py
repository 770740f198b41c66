"""Echoes of the document: a block suggestion stops where it writes the next line below."""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.lines import cut_before, next_suffix_line, split_lines


def stop_at_suffix_line(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Stop at a line that is the next line of the document below the cursor.

    The model has then reached text that is already there.
    """
    if not ctx.multiline:
        return None
    target = next_suffix_line(ctx)
    if target is None:
        return None
    for line in split_lines(text, ctx, final):
        if not line.complete:
            break
        if line.index == 0 and ctx.line_prefix.strip():
            continue  # the cursor's own line, finished by the suggestion
        if not line.blank and line.full.rstrip() == target.rstrip():
            return cut_before(line)
    return None
