"""Text right of the cursor written again: the end of a suggestion the line already has."""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.syntax.shape import ScanState, scan


def trim_suffix_overlap(text: str, ctx: CursorContext) -> str | None:
    """Drop the end of ``text`` that the text right of the cursor already has.

    Editors auto-close brackets and quotes, and models then emit them again. A bracket
    is only trimmed when the suggestion would otherwise close it twice: ``bar(1)`` at
    ``foo(|)`` keeps its own ``)``.
    """
    rest = ctx.line_suffix.rstrip()
    if not rest:
        return text
    if ctx.shape.in_comment:  # prose: no brackets to keep balanced
        return next(
            (text[:-n] for n in range(min(len(rest), len(text)), 0, -1) if text.endswith(rest[:n])),
            text,
        )
    start = ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote)
    for size in range(min(len(rest), len(text)), 0, -1):
        if not text.endswith(rest[:size]):
            continue
        kept = text[:-size]
        after = scan(kept, start, ctx.lexicon)
        if after.stack == start.stack and after.quote == start.quote:
            return kept
    return text
