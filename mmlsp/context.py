"""What goes into a completion prompt: the text around the cursor, fitted to a budget.

Pure functions over the document text; token counts come from a callable so this
module does not depend on any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Mode = Literal["single", "multi"]
TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class CursorContext:
    prefix: str  # text before the cursor, fitted to the budget
    suffix: str  # text after the cursor, fitted to the budget
    line_prefix: str  # the cursor's line, left of the cursor
    line_suffix: str  # the cursor's line, right of the cursor
    mode: Mode


def completion_mode(line_prefix: str, line_suffix: str) -> Mode:
    """Single line when there is code on the cursor's line, a block on an empty line."""
    if line_suffix.strip() or line_prefix.strip():
        return "single"
    return "multi"


def _take_lines(lines: list[str], budget: int, count: TokenCounter) -> int:
    """How many of ``lines`` (nearest first) fit in ``budget`` tokens."""
    used = 0
    for taken, line in enumerate(lines):
        used += count(line)
        if used > budget:
            return taken
    return len(lines)


def build_context(
    text: str,
    offset: int,
    *,
    prefix_tokens: int,
    suffix_tokens: int,
    count: TokenCounter,
) -> CursorContext:
    """Cut ``text`` at code point ``offset`` and fit both sides to their token budgets.

    Whole lines are kept, nearest to the cursor first, so the model never sees half a
    line at the edge of its window. The cursor's own line is always kept.
    """
    before, after = text[:offset], text[offset:]
    line_start = before.rfind("\n") + 1
    line_end = after.find("\n")
    line_end = len(after) if line_end < 0 else line_end
    if line_end > 0 and after[line_end - 1] == "\r":
        line_end -= 1  # keep a CRLF's CR out of the line's own text
    line_prefix, line_suffix = before[line_start:], after[:line_end]

    above = before[:line_start].splitlines(keepends=True)
    below = after[line_end:].splitlines(keepends=True)
    budget_above = max(0, prefix_tokens - count(line_prefix))
    budget_below = max(0, suffix_tokens - count(line_suffix))
    keep_above = _take_lines(above[::-1], budget_above, count)
    keep_below = _take_lines(below, budget_below, count)
    prefix = "".join(above[len(above) - keep_above :]) + line_prefix
    suffix = line_suffix + "".join(below[:keep_below])
    return CursorContext(
        prefix=prefix,
        suffix=suffix,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        mode=completion_mode(line_prefix, line_suffix),
    )
