"""What goes into a completion prompt: the text around the cursor, fitted to a budget.

This module owns ``CursorContext``: the prompt's prefix and suffix (whole lines,
nearest first, fitted to token budgets), the cursor's line, and what the filters in
``mmlsp.postprocess`` need to judge a suggestion (the whole text, the cursor offset,
the language and its syntax tree, the line ending, and the completion ``Shape`` from
``mmlsp.shape``). Pure functions over the document text; token counts come from a
callable so this module does not depend on any model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import tree_sitter

from mmlsp.shape import Lexicon, Mode, Shape, decide_shape, lexicon_for
from mmlsp.syntax import SyntaxDocument, parse, supported_languages

TokenCounter = Callable[[str], int]

log = logging.getLogger(__name__)

__all__ = ["CursorContext", "Mode", "TokenCounter", "build_context"]


@dataclass(frozen=True)
class CursorContext:
    prefix: str  # text before the cursor, fitted to the budget
    suffix: str  # text after the cursor, fitted to the budget
    line_prefix: str  # the cursor's line, left of the cursor
    line_suffix: str  # the cursor's line, right of the cursor (no line break)
    mode: Mode
    shape: Shape = field(default_factory=lambda: Shape("single"))
    text: str = ""  # the whole document
    offset: int = 0  # the cursor, as a code point offset into ``text``
    language: str | None = None  # a mmlsp.syntax registry key, when it has a grammar
    eol: str = "\n"  # the document's line ending at the cursor
    # The parse of exactly ``text`` (None without a grammar); for the parse check.
    tree: tree_sitter.Tree | None = field(default=None, compare=False, repr=False)

    @property
    def multiline(self) -> bool:
        """Whether the suggestion may span lines (picks the larger token budget)."""
        return self.mode in ("multi", "balance")

    @property
    def lexicon(self) -> Lexicon:
        return lexicon_for(self.language)


def _take_lines(lines: list[str], budget: int, count: TokenCounter) -> int:
    """How many of ``lines`` (nearest first) fit in ``budget`` tokens."""
    used = 0
    for taken, line in enumerate(lines):
        used += count(line)
        if used > budget:
            return taken
    return len(lines)


def _syntax(
    text: str, language: str | None, syntax_doc: SyntaxDocument | None
) -> tuple[str | None, tree_sitter.Tree | None]:
    """The language and a tree of exactly ``text``, reusing the document's when current."""
    if syntax_doc is not None:
        language = syntax_doc.language
        if syntax_doc.text is text or syntax_doc.text == text:
            return language, syntax_doc.tree
    if language is None or language not in supported_languages():
        return None, None
    try:
        return language, parse(text, language)
    except (KeyError, ValueError, RuntimeError):  # a broken grammar must not stop completion
        log.exception("parsing for completion failed; using plain-text rules")
        return None, None


def build_context(
    text: str,
    offset: int,
    *,
    prefix_tokens: int,
    suffix_tokens: int,
    count: TokenCounter,
    language: str | None = None,
    syntax_doc: SyntaxDocument | None = None,
) -> CursorContext:
    """Cut ``text`` at code point ``offset`` and fit both sides to their token budgets.

    Whole lines are kept, nearest to the cursor first, so the model never sees half a
    line at the edge of its window. The cursor's own line is always kept, and cut
    (on the side away from the cursor) only when it alone is over the budget.

    ``language`` (a mmlsp.syntax registry key) or ``syntax_doc`` (whose tree is reused
    when its text is ``text``) lets the shape decision and the parse check use
    tree-sitter; without either, plain-text rules apply.
    """
    offset = max(0, min(offset, len(text)))
    before, after = text[:offset], text[offset:]
    line_start = before.rfind("\n") + 1
    line_end = after.find("\n")
    line_end = len(after) if line_end < 0 else line_end
    if line_end > 0 and after[line_end - 1] == "\r":
        line_end -= 1  # keep a CRLF's CR out of the line's own text
    line_prefix, line_suffix = before[line_start:], after[:line_end]

    above = before[:line_start].splitlines(keepends=True)
    below = after[line_end:].splitlines(keepends=True)
    # The cursor's line alone may be over budget (minified code, data blobs).
    prompt_line_prefix = _fit(line_prefix, prefix_tokens, count, keep_end=True)
    prompt_line_suffix = _fit(line_suffix, suffix_tokens, count, keep_end=False)
    budget_above = max(0, prefix_tokens - count(prompt_line_prefix))
    budget_below = max(0, suffix_tokens - count(prompt_line_suffix))
    keep_above = _take_lines(above[::-1], budget_above, count)
    keep_below = _take_lines(below, budget_below, count)
    prefix = "".join(above[len(above) - keep_above :]) + prompt_line_prefix
    suffix = prompt_line_suffix + "".join(below[:keep_below])

    language, tree = _syntax(text, language, syntax_doc)
    shape = decide_shape(text, offset, language, tree)
    return CursorContext(
        prefix=prefix,
        suffix=suffix,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        mode=shape.mode,
        shape=shape,
        text=text,
        offset=offset,
        language=language,
        eol=_eol(text, offset),
        tree=tree,
    )


def _fit(piece: str, budget: int, count: TokenCounter, *, keep_end: bool) -> str:
    """``piece`` cut (from the far side of the cursor) to at most ``budget`` tokens."""
    if len(piece) <= budget or count(piece) <= budget:  # a token is at least one char
        return piece
    size = budget * 4
    while size > 0:
        cut = piece[-size:] if keep_end else piece[:size]
        if count(cut) <= budget:
            return cut
        size = size * 3 // 4
    return ""


def _eol(text: str, offset: int) -> str:
    """The line ending nearest the cursor (the one suggestions should use)."""
    after = text.find("\n", offset)
    at = after if after >= 0 else text.rfind("\n", 0, offset)
    return "\r\n" if at > 0 and text[at - 1] == "\r" else "\n"
