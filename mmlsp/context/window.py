"""What goes into a completion prompt: the text around the cursor, fitted to a budget.

This module owns ``CursorContext``: the prompt's prefix and suffix (whole lines,
nearest first, fitted to token budgets), the cursor's line, and what the filters in
``mmlsp.postprocess`` need to judge a suggestion (the whole text, the cursor offset,
the language and its syntax tree, the line ending, and the completion ``Shape`` from
``mmlsp.syntax.shape``). Pure functions over the document text; token counts come from a
callable so this module does not depend on any model.

Two things here exist for the KV prefix cache (reuse is by longest common token
prefix): the prefix window's first line is snapped to a coarse, syntactic boundary so
it stays put while the user types, and the out-of-view ``preamble`` (the file's
imports and the headers of the enclosing class and function, when the window no
longer shows them) depends only on text far above the cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import tree_sitter

from mmlsp.syntax import SyntaxDocument, parse, supported_languages
from mmlsp.syntax.shape import Lexicon, Mode, Shape, decide_shape, indent_width, lexicon_for
from mmlsp.syntax.store import INLINE_MAX_CHARS
from mmlsp.text.positions import encode_utf8, offset_to_byte

TokenCounter = Callable[[str], int]

log = logging.getLogger(__name__)

__all__ = ["CursorContext", "Mode", "TokenCounter", "build_context", "out_of_view"]

# The prefix window starts on a multiple of a step of at most this many lines (then at
# the next statement start), so consecutive keystrokes give prompts with the same first
# line.
WINDOW_SNAP_LINES = 32
# Out-of-view imports kept at most (the rest are usually noise for one completion).
MAX_PREAMBLE_IMPORTS = 40
_IMPORT_NODES = frozenset({"import_statement", "import_from_statement", "future_import_statement"})
_DEFINITION_NODES = frozenset({"function_definition", "class_definition"})
_BLOCK_PARENTS = frozenset({"module", "block"})


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
    # Out-of-view lines of this file (imports, enclosing headers) that go before
    # ``prefix`` in the prompt; "" when the window shows the file from its start.
    preamble: str = ""
    window_start_line: int = 0  # the document line ``prefix`` starts on

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
            # A copy: the document edits its own tree in place on the next change,
            # while this context is still used after the model answers.
            return language, syntax_doc.tree.copy()
    if language is None or language not in supported_languages():
        return None, None
    if len(text) > INLINE_MAX_CHARS:
        # Parsed on the syntax worker, and still parsing: parsing it here, on the
        # event loop, froze the server for seconds on a 200k-line file. Plain-text
        # rules until the worker's tree is current.
        return language, None
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
    preamble_tokens: int = 0,
) -> CursorContext:
    """Cut ``text`` at code point ``offset`` and fit both sides to their token budgets.

    Whole lines are kept, nearest to the cursor first, so the model never sees half a
    line at the edge of its window. The cursor's own line is always kept, and cut
    (on the side away from the cursor) only when it alone is over the budget. When the
    budget does not reach the start of the file, the window's first line is snapped
    (see ``stable_window_start``) so it does not move while the user types.

    ``language`` (a mmlsp.syntax registry key) or ``syntax_doc`` (whose tree is reused
    when its text is ``text``) lets the shape decision and the parse check use
    tree-sitter; without either, plain-text rules apply. ``preamble_tokens`` > 0 fills
    ``preamble`` with the out-of-view imports and enclosing headers, within that budget.
    """
    offset = max(0, min(offset, len(text)))
    before, after = text[:offset], text[offset:]
    line_start = before.rfind("\n") + 1
    line_end = after.find("\n")
    line_end = len(after) if line_end < 0 else line_end
    if line_end > 0 and after[line_end - 1] == "\r":
        line_end -= 1  # keep a CRLF's CR out of the line's own text
    line_prefix, line_suffix = before[line_start:], after[:line_end]
    language, tree = _syntax(text, language, syntax_doc)

    above = before[:line_start].splitlines(keepends=True)
    below = after[line_end:].splitlines(keepends=True)
    # The cursor's line alone may be over budget (minified code, data blobs).
    prompt_line_prefix = _fit(line_prefix, prefix_tokens, count, keep_end=True)
    prompt_line_suffix = _fit(line_suffix, suffix_tokens, count, keep_end=False)
    budget_above = max(0, prefix_tokens - count(prompt_line_prefix))
    budget_below = max(0, suffix_tokens - count(prompt_line_suffix))
    first = len(above) - _take_lines(above[::-1], budget_above, count)
    if first > 0:
        first = stable_window_start(above, first, tree)
    keep_below = _take_lines(below, budget_below, count)
    prefix = "".join(above[first:]) + prompt_line_prefix
    suffix = prompt_line_suffix + "".join(below[:keep_below])

    shape = decide_shape(text, offset, language, tree)
    # splitlines also breaks at \r, \f, \u2028...: count the tree's rows (\n) instead.
    window_line = "".join(above[:first]).count("\n")
    preamble = ""
    if first > 0 and preamble_tokens > 0 and tree is not None:
        preamble = out_of_view(text, tree, window_line, offset, preamble_tokens, count)
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
        preamble=preamble,
        window_start_line=window_line,
    )


def stable_window_start(lines: list[str], first: int, tree: tree_sitter.Tree | None) -> int:
    """The window's first line: at or after ``first`` (the budget), and stable.

    ``first`` moves by a line now and then as the cursor's line grows. Rounding it up
    to a multiple of a coarse step keeps the start fixed for many keystrokes; the start
    then moves on to the next line that begins a statement (never half a statement at
    the top of the prompt). The step is a power of two near a quarter of the window (at
    most WINDOW_SNAP_LINES), so at most that share of the budget goes unused, and it
    only changes when the window's size crosses a power of two. Only ``lines`` (the
    text above the cursor's line) near the snapped line are read.
    """
    window = len(lines) - first
    step = min(WINDOW_SNAP_LINES, 1 << max(0, (window // 4).bit_length() - 1))
    snapped = -(-first // step) * step
    limit = min(len(lines), snapped + step)
    if snapped >= len(lines):
        return len(lines)
    if tree is None:
        return next((i for i in range(snapped, limit) if lines[i].strip()), snapped)
    byte = _utf8("".join(lines[:snapped]))
    for index in range(snapped, limit):
        line = lines[index]
        stripped = line.lstrip(" \t")
        if stripped.strip() and _starts_statement(tree, byte + _utf8(line) - _utf8(stripped)):
            return index
        byte += _utf8(line)
    return snapped


def _utf8(piece: str) -> int:
    return len(piece.encode("utf-8", "surrogatepass"))


def _starts_statement(tree: tree_sitter.Tree, byte: int) -> bool:
    """Whether a statement of a block or of the module starts at ``byte``."""
    node: tree_sitter.Node | None = tree.root_node.descendant_for_byte_range(byte, byte)
    while node is not None and node.start_byte == byte:
        parent = node.parent
        if parent is not None and parent.type in _BLOCK_PARENTS and not node.is_error:
            return True
        node = parent
    return False


def out_of_view(
    text: str,
    tree: tree_sitter.Tree,
    window_line: int,
    offset: int,
    budget: int,
    count: TokenCounter,
) -> str:
    """The file's imports and the enclosing class/def headers above ``window_line``.

    These are the lines a human scrolls up to read. Headers are kept verbatim (with
    their indentation, decorators left out), outermost first, so the window's lines
    read as the body that continues them. Imports are dropped first when over budget.
    """
    source = encode_utf8(text)
    root = tree.root_node
    imports = [
        child
        for child in root.children
        if child.type in _IMPORT_NODES and child.start_point[0] < window_line
    ][:MAX_PREAMBLE_IMPORTS]
    headers: list[str] = []
    # Trailing whitespace (an indented empty line, "return |") lies outside the
    # enclosing block's node: look up from the last code before the cursor, and let
    # the cursor line's indentation say which definitions still enclose it.
    start = text.rfind("\n", 0, offset) + 1
    line = text[start : text.find("\n", offset) if "\n" in text[offset:] else len(text)]
    code = len(text[:offset].rstrip())
    if line.strip():
        cursor_indent = indent_width(line)
    else:
        # A blank line has no scope of its own yet: keep the code above's until the
        # user types something. Else a new line (column 0) and its first indenting
        # spaces would drop and restore the headers, and each change at the prompt's
        # start costs a full prefill.
        above = text[text.rfind("\n", 0, code) + 1 : code]
        cursor_indent = max(indent_width(text[start:offset]), indent_width(above))
    byte = offset_to_byte(text, max(0, code - 1))
    node: tree_sitter.Node | None = root.descendant_for_byte_range(byte, byte)
    while node is not None:
        if (
            node.type in _DEFINITION_NODES
            and node.start_point[0] < window_line
            and node.start_point[1] < cursor_indent
        ):
            body = node.child_by_field_name("body")
            end = body.start_byte if body is not None else node.end_byte
            line_start = source.rfind(b"\n", 0, node.start_byte) + 1
            header = source[line_start:end].decode("utf-8", "replace").rstrip()
            headers.append(header + "\n")
        node = node.parent
    headers.reverse()
    import_text = [
        source[n.start_byte : n.end_byte].decode("utf-8", "replace") + "\n" for n in imports
    ]
    # Headers matter most (they say where the cursor is); imports fill what is left.
    used = sum(count(h) for h in headers)
    if used > budget:
        return ""
    kept: list[str] = []
    for line in import_text:
        used += count(line)
        if used > budget:
            break
        kept.append(line)
    if not kept and not headers:
        return ""
    return "".join(kept) + ("\n" if kept and headers else "") + "".join(headers)


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
