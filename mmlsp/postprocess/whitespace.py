"""Trailing whitespace: never part of a suggestion."""

from __future__ import annotations

from mmlsp.context.window import CursorContext


def strip_trailing_whitespace(text: str, ctx: CursorContext) -> str | None:
    """Drop whitespace (blank lines included) at the end."""
    return text.rstrip()
