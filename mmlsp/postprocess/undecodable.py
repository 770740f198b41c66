"""Half a character at the end: generation that stopped inside a multi-byte character."""

from __future__ import annotations

from mmlsp.context.window import CursorContext


def cut_undecodable(text: str, ctx: CursorContext) -> str | None:
    """Drop U+FFFD at the end: the bytes of a character that generation stopped in the
    middle of (an emoji or CJK text cut by the token limit), which would show as junk."""
    return text.rstrip("\ufffd")
