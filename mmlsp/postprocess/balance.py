"""Balance mode: the suggestion ends with the line that closes the cursor's brackets."""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.syntax.shape import BracketEvent, ScanState, scan


def stop_at_balance(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Balance mode: stop at the end of the line that closes the cursor's brackets.

    A closing bracket that matches nothing ends the suggestion right before it.
    """
    if ctx.mode != "balance":
        return None
    events: list[BracketEvent] = []
    scan(text, ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote), ctx.lexicon, events)
    for event in events:
        if not event.matched:
            return event.index
        if event.depth == 0:
            newline = text.find("\n", event.index)
            return None if newline < 0 else newline
    return None
