"""Suggestions too small to be worth the distraction."""

from __future__ import annotations

from mmlsp.context.window import CursorContext

# Shorter suggestions (after stripping) are not worth the distraction.
MIN_LENGTH = 2


def drop_trivial(text: str, ctx: CursorContext) -> str | None:
    """Nothing shorter than MIN_LENGTH, and nothing that is only punctuation or space."""
    stripped = text.strip()
    if len(stripped) < MIN_LENGTH or not any(ch.isalnum() for ch in stripped):
        return None
    return text
