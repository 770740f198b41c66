"""Turning raw model output into a suggestion worth showing.

Two entry points, both pure: ``stop_at`` is applied while tokens stream in, so
generation ends as soon as the suggestion is complete; ``finish`` cleans the final
text (suffix overlap, whitespace-only results).
"""

from __future__ import annotations

from collections.abc import Callable

from mmlsp.context import CursorContext

MAX_BLOCK_LINES = 16


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def stop_at(ctx: CursorContext) -> Callable[[str], int | None]:
    """Return a streaming stop check for this cursor: text so far -> cut index or None."""
    if ctx.mode == "single":

        def single(text: str) -> int | None:
            newline = text.find("\n")
            return None if newline < 0 else newline

        return single

    base_indent = _indent(ctx.line_prefix)

    def block(text: str) -> int | None:
        # Only complete lines are judged; the last one may still be growing.
        lines = text.split("\n")
        offset = 0
        blank_run = 0
        for number, line in enumerate(lines[:-1]):
            if number >= MAX_BLOCK_LINES:
                return offset
            if not line.strip():
                blank_run += 1
                if blank_run >= 2 and number > 0:
                    return offset - 1
            else:
                blank_run = 0
                # A line that dedents out of the cursor's block ends the suggestion.
                first = number == 0
                if not first and _indent(line) < base_indent:
                    return max(0, offset - 1)
            offset += len(line) + 1
        return None

    return block


def trim_suffix_overlap(text: str, line_suffix: str) -> str:
    """Drop the end of ``text`` that the text right of the cursor already has.

    Editors often auto-close brackets and quotes, and models then emit them again.
    """
    rest = line_suffix.rstrip()
    if not rest:
        return text
    for size in range(min(len(rest), len(text)), 0, -1):
        if text.endswith(rest[:size]):
            return text[:-size]
    return text


def drop_duplicate_closing_line(text: str, suffix: str) -> str:
    """Remove a last line that repeats the first non-empty line of the suffix."""
    lines = text.split("\n")
    after_cursor = suffix.split("\n", 1)[1] if "\n" in suffix else ""
    next_line = next((line for line in after_cursor.split("\n") if line.strip()), None)
    while len(lines) > 1 and next_line is not None and lines[-1].strip() == next_line.strip():
        lines.pop()
    return "\n".join(lines)


def finish(raw: str, ctx: CursorContext) -> str | None:
    """Clean the generated text; None when nothing worth showing is left."""
    cut = stop_at(ctx)(raw + "\n")
    text = raw if cut is None else raw[:cut]
    text = text.rstrip()
    if ctx.mode == "single":
        text = trim_suffix_overlap(text, ctx.line_suffix)
    else:
        text = drop_duplicate_closing_line(text, ctx.suffix)
    if not text.strip():
        return None
    return text
