"""Closing lines the document already has: a ``}`` or ``)`` below the cursor, written again."""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.lines import next_suffix_line
from mmlsp.syntax.shape import BracketEvent, ScanState, scan


def drop_duplicate_closing_line(text: str, ctx: CursorContext) -> str | None:
    """Remove last lines that close a block the document already closes below the cursor.

    Only bracket lines (``}``, ``)``, ``});``) count, and only when the suggestion does
    not balance them itself.
    """
    if not ctx.multiline:
        return text
    target = next_suffix_line(ctx)
    if target is None:
        return text
    closing = target.strip()
    if not closing or any(ch.isalnum() for ch in closing):
        return text  # only bracket/punctuation lines (`}`, `)`, `});`) count as closing
    lines = text.split("\n")
    while len(lines) > 1 and lines[-1].strip() == closing and _closes_outer("\n".join(lines), ctx):
        lines.pop()
    return "\n".join(lines)


def _closes_outer(text: str, ctx: CursorContext) -> bool:
    """Whether ``text`` closes a bracket it did not open (one open at the cursor, or none).

    A closing line that only ends a block the suggestion opened is its own, not a copy.
    """
    events: list[BracketEvent] = []
    start = ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote)
    scan(text, start, ctx.lexicon, events)
    return any(not event.matched or event.depth < len(start.stack) for event in events)
