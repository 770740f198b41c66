"""The single-line shapes (``single`` and ``line`` mode) end at the first line break."""

from __future__ import annotations

from mmlsp.context.window import CursorContext


def stop_at_line_end(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Single-line shapes (code to the right, comments, strings) end at the line break."""
    if ctx.mode not in ("single", "line"):
        return None
    newline = text.find("\n")
    return None if newline < 0 else newline
