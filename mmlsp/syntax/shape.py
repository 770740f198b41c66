"""The shape of a completion: one line, a block, until brackets balance, or a comment line.

This module owns the decision of how much text a suggestion at a cursor may span,
and the small lexical scanner (brackets, strings, comments) that the decision and the
post-processing filters share. Everything here is pure: text and offset in, a
``Shape`` out. When the language has a tree-sitter grammar the tree decides whether
the cursor is in a string or comment and which brackets are open; otherwise a
language-agnostic scanner over the text before the cursor does.

Modes:

* ``single``: at most the rest of the cursor's line (code to the right, or the end of
  a non-empty line, or inside a one-line string);
* ``multi``: a block (an empty line, or the end of a line that opens a block);
* ``balance``: brackets are open at the cursor and nothing in the document closes
  them, so complete until they are closed (then finish that line);
* ``line``: inside a comment or a docstring / multi-line string: that line only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import tree_sitter

from mmlsp.text.positions import encode_utf8, offset_to_byte

Mode = Literal["single", "multi", "balance", "line"]

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}
# Characters that may sit right of the cursor without counting as "code to the right":
# editors auto-close these, and statement punctuation often follows them.
_AUTO_CLOSED = set(")]}\"'`;,:")
# Without a tree, only this much text before the cursor is scanned for open brackets.
_FALLBACK_WINDOW = 20_000
# Only the innermost open brackets are kept: deeper nesting is pathological, and every
# stop check copies the stack.
MAX_STACK = 64


@dataclass(frozen=True)
class Lexicon:
    """The lexical rules the scanner needs for one language family."""

    line_comments: tuple[str, ...]
    block_comment: tuple[str, str] | None
    quotes: tuple[str, ...]  # longest first, so '\"\"\"' wins over '\"'
    multiline_quotes: frozenset[str]
    # '#' starts a comment only at a line start or after whitespace (C's #include,
    # JS's #private stay code-ish enough either way, but `a#b` is not a comment).
    hash_needs_space: bool = False
    block_keywords: frozenset[str] = frozenset()

    @property
    def pattern(self) -> re.Pattern[str]:
        return _pattern(self)


PYTHON = Lexicon(
    line_comments=("#",),
    block_comment=None,
    quotes=('"""', "'''", '"', "'"),
    multiline_quotes=frozenset({'"""', "'''"}),
    block_keywords=frozenset({"else", "elif", "except", "finally", "case"}),
)
GENERIC = Lexicon(
    line_comments=("//", "#"),
    block_comment=("/*", "*/"),
    quotes=('"""', "'''", '"', "'", "`"),
    multiline_quotes=frozenset({'"""', "'''", "`"}),
    hash_needs_space=True,
    block_keywords=frozenset({"else", "elif", "except", "finally", "catch", "case"}),
)


def lexicon_for(language: str | None) -> Lexicon:
    return PYTHON if language == "python" else GENERIC


@cache
def _pattern(lex: Lexicon) -> re.Pattern[str]:
    tokens = [*lex.quotes, *lex.line_comments, *OPENERS, *CLOSERS, "\n"]
    if lex.block_comment:
        tokens += list(lex.block_comment)
    tokens.sort(key=len, reverse=True)
    # An escape is matched as one token so an escaped quote never ends a string.
    return re.compile(r"\\.|" + "|".join(re.escape(t) for t in tokens), re.DOTALL)


@dataclass(frozen=True)
class ScanState:
    """Where a left-to-right scan stands: open brackets, open string, open comment."""

    stack: tuple[str, ...] = ()
    quote: str | None = None
    comment: Literal["line", "block"] | None = None
    # Index (in the scanned text) of each open bracket; only for locating them.
    opened_at: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class BracketEvent:
    """A closing bracket seen by ``scan``: ``depth`` is the stack size after it."""

    index: int
    depth: int
    matched: bool


def scan(
    text: str,
    state: ScanState = ScanState(),  # noqa: B008 - immutable
    lex: Lexicon = GENERIC,
    events: list[BracketEvent] | None = None,
) -> ScanState:
    """Scan ``text`` from ``state``; closing brackets are reported to ``events``."""
    stack = list(state.stack)
    opened = list(state.opened_at) if len(state.opened_at) == len(stack) else [0] * len(stack)
    quote, comment = state.quote, state.comment
    block_end = lex.block_comment[1] if lex.block_comment else None
    for match in lex.pattern.finditer(text):
        tok, at = match.group(), match.start()
        if comment == "line":
            if tok == "\n":
                comment = None
            continue
        if comment == "block":
            if tok == block_end:
                comment = None
            continue
        if quote is not None:
            if tok == quote:
                quote = None
            elif tok == "\n" and quote not in lex.multiline_quotes:
                quote = None  # an unterminated one-line string ends with its line
            continue
        if tok == "\n" or tok[0] == "\\":
            continue
        if tok in lex.quotes:
            quote = tok
        elif tok in lex.line_comments:
            if tok == "#" and lex.hash_needs_space and at > 0 and not text[at - 1].isspace():
                continue
            comment = "line"
        elif lex.block_comment and tok == lex.block_comment[0]:
            comment = "block"
        elif tok in OPENERS:
            stack.append(tok)
            opened.append(at)
        elif tok in CLOSERS:
            matched = bool(stack) and stack[-1] == CLOSERS[tok]
            if matched:
                stack.pop()
                opened.pop()
            if events is not None:
                events.append(BracketEvent(at, len(stack), matched))
    return ScanState(tuple(stack), quote, comment, tuple(opened))


@dataclass(frozen=True)
class Shape:
    """How much a suggestion at the cursor may span, and the lexical state there."""

    mode: Mode
    stack: tuple[str, ...] = ()  # brackets open at the cursor, outermost first
    quote: str | None = None  # the string delimiter, when the cursor is inside a string
    in_comment: bool = False
    # Indentation that bounds the suggestion's scope: the line of the outermost open
    # bracket in balance mode, else the cursor's line.
    scope_indent: int = 0


def indent_width(line: str) -> int:
    """Columns of leading whitespace (tabs to multiples of 8, as Python reads them)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(8))


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    if end > offset and text[end - 1] == "\r":
        end -= 1
    return start, end


def _leading_closers(rest: str) -> str:
    """The run of closing brackets right of the cursor (auto-closed ones, usually)."""
    out = []
    for ch in rest:
        if ch in CLOSERS:
            out.append(ch)
        elif ch.isspace() or ch in _AUTO_CLOSED:
            continue
        else:
            break
    return "".join(out)


def _pending(stack: tuple[str, ...], rest: str) -> int:
    """How many of ``stack`` (outermost first) the closers right of the cursor leave open."""
    open_ = len(stack)
    for ch in _leading_closers(rest):
        if open_ and OPENERS[stack[open_ - 1]] == ch:
            open_ -= 1
        else:
            break
    return open_


@dataclass
class _TreeScan:
    stack: list[tuple[str, tree_sitter.Node]] = field(default_factory=list)
    quote: str | None = None
    in_comment: bool = False


def _tree_scan(tree: tree_sitter.Tree, source: bytes, cursor: int) -> _TreeScan:
    """Open brackets, string and comment at byte ``cursor``, read from the syntax tree.

    Only the path to the cursor and broken (error) subtrees are entered: a complete,
    error-free node that ends before the cursor has its brackets balanced already.
    """
    out = _TreeScan()

    def leaf(node: tree_sitter.Node) -> None:
        kind = node.type
        if kind == "comment":
            out.in_comment = node.end_byte >= cursor
        elif out.quote is not None:
            if kind == "string_end" and node.end_byte <= cursor:
                out.quote = None
        elif kind == "string_start":
            # Drop prefixes (f, r, b, u): the delimiter is what ends the string.
            out.quote = source[node.start_byte : node.end_byte].decode().lstrip("fFrRbBuU")
        elif kind in OPENERS and node.end_byte <= cursor:
            out.stack.append((kind, node))
        elif (
            kind in CLOSERS
            and node.end_byte <= cursor
            and out.stack
            and out.stack[-1][0] == CLOSERS[kind]
        ):
            out.stack.pop()

    # Depth-first in document order, iteratively: nesting can be deeper than Python's
    # recursion limit.
    pending: list[Iterator[tree_sitter.Node]] = [iter(tree.root_node.children)]
    while pending:
        child = next(pending[-1], None)
        if child is None or child.start_byte >= cursor:
            pending.pop()
        elif child.is_missing:
            continue
        elif child.child_count == 0:
            leaf(child)
        elif child.end_byte > cursor or child.has_error:
            pending.append(iter(child.children))
    return out


def _closed_in_tree(opener: tree_sitter.Node, cursor: int) -> bool:
    """Whether the node an opening bracket starts ends with its real closer after the cursor."""
    parent = opener.parent
    if parent is None or parent.is_error or parent.child_count < 2:
        return False
    last = parent.children[-1]
    return last.type == OPENERS[opener.type] and not last.is_missing and last.start_byte >= cursor


def _closed_in_text(stack: tuple[str, ...], after: str, lex: Lexicon) -> bool:
    """Whether the text after the cursor closes the innermost bracket of ``stack``."""
    events: list[BracketEvent] = []
    scan(after[:_FALLBACK_WINDOW], ScanState(stack=stack), lex, events)
    for event in events:
        if not event.matched:
            return False
        if event.depth < len(stack):
            return True
    return False


def decide_shape(
    text: str,
    offset: int,
    language: str | None = None,
    tree: tree_sitter.Tree | None = None,
) -> Shape:
    """The completion shape at code point ``offset`` of ``text``.

    ``tree`` must be the parse of exactly ``text``; without it, the text before the
    cursor is scanned with ``language``'s lexical rules (generic ones if unknown).
    """
    offset = max(0, min(offset, len(text)))
    start, end = _line_bounds(text, offset)
    line_prefix, rest = text[start:offset], text[offset:end]
    lex = lexicon_for(language)

    if tree is not None:
        source = encode_utf8(text)
        found = _tree_scan(tree, source, offset_to_byte(text, offset))
        kept = found.stack[-MAX_STACK:]
        stack = tuple(ch for ch, _ in kept)
        quote, in_comment = found.quote, found.in_comment
        opener_bytes = [node.start_byte for _, node in kept]

        def closed_below(pending: int) -> bool:
            return _closed_in_tree(kept[pending - 1][1], offset_to_byte(text, offset))

        def line_indent_at(index: int) -> int:
            line_start = source.rfind(b"\n", 0, index) + 1
            line_end = source.find(b"\n", line_start)
            line = source[line_start : len(source) if line_end < 0 else line_end]
            return indent_width(line.decode("utf-8", "replace"))
    else:
        window = max(0, offset - _FALLBACK_WINDOW)
        if window:
            window = text.find("\n", window) + 1 or offset  # start at a line start
        state = scan(text[window:offset], ScanState(), lex)
        stack, quote = state.stack[-MAX_STACK:], state.quote
        in_comment = state.comment is not None
        opener_bytes = [window + at for at in state.opened_at[-MAX_STACK:]]

        def closed_below(pending: int) -> bool:
            return _closed_in_text(stack[:pending], text[end:], lex)

        def line_indent_at(index: int) -> int:
            line_start = text.rfind("\n", 0, index) + 1
            return indent_width(text[line_start:index])

    cursor_indent = indent_width(line_prefix)
    shape = Shape(mode="single", stack=stack, quote=quote, in_comment=in_comment)
    if in_comment:
        return _with(shape, "line", cursor_indent)
    if quote is not None:
        # A docstring or other multi-line string is prose: finish its line only.
        mode: Mode = "line" if quote in lex.multiline_quotes else "single"
        return _with(shape, mode, cursor_indent)
    if rest.strip() and not set(rest.strip()) <= _AUTO_CLOSED:
        return _with(shape, "single", cursor_indent)
    pending = _pending(stack, rest)
    # A bracket the document closes further down is a body being filled (a brace
    # block, a list being extended), not an expression to finish: no balance mode.
    if pending and not closed_below(pending):
        return _with(shape, "balance", line_indent_at(opener_bytes[0]))
    # A block only where nothing follows on the line: `foo(a,\n    |)` stays one line.
    if not rest.strip() and (not line_prefix.strip() or line_prefix.rstrip().endswith(":")):
        return _with(shape, "multi", cursor_indent)
    return _with(shape, "single", cursor_indent)


def _with(shape: Shape, mode: Mode, scope_indent: int) -> Shape:
    return Shape(mode, shape.stack, shape.quote, shape.in_comment, scope_indent)
