"""Trailing whitespace: never part of a suggestion."""

from __future__ import annotations

from mmlsp.context.window import CursorContext


def strip_trailing_whitespace(text: str, ctx: CursorContext) -> str | None:
    """Drop whitespace (blank lines included) at the end."""
    return text.rstrip()


def drop_doubled_space(text: str, ctx: CursorContext) -> str | None:
    """After a line that ends in a space, the suggestion's own leading spaces go.

    Most tokenizers carry a word's space in front of it (" median"), so a model whose
    prompt ends in "return " tends to write " median(...)", and "return  median(...)"
    is what the user would get. Indentation (a line of only spaces) is left alone.
    """
    line = ctx.line_prefix
    if line.strip() and line[-1] in " \t" and text[:1] in (" ", "\t"):
        return text.lstrip(" \t")
    return text
