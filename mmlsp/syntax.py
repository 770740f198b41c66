"""Tree-sitter syntax trees for open documents, kept up to date incrementally.

This module owns the grammar registry (which languages have syntax support and
how an LSP document maps onto one), the per-document tree that follows every
``didChange`` through ``Tree.edit`` plus an incremental reparse, and the
extraction of syntax problems (ERROR and MISSING nodes) as LSP ranges.
Features ask this module for trees; they never parse text themselves.
"""

from __future__ import annotations

import ast
import copy
import posixpath
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote, urlparse

import tree_sitter
import tree_sitter_python
from lsprotocol import types as lsp

from mmlsp.positions import (
    LineIndex,
    encode_utf8,
    index_to_utf16,
    line_count,
    offset_at,
    offset_to_byte,
    scrub_surrogates,
    ts_point_after,
    ts_point_at,
    utf8_len,
)

# Registry key -> factory of the grammar's language capsule.
_GRAMMARS: dict[str, Callable[[], object]] = {"python": tree_sitter_python.language}
# LSP languageId -> registry key.
_LANGUAGE_IDS: dict[str, str] = {"python": "python"}
# Lower-case file extension -> registry key, for clients that send odd languageIds.
_EXTENSIONS: dict[str, str] = {".py": "python", ".pyi": "python"}

_SNIPPET_MAX = 30

# Python's statements that own an indented block, and the one-line ones; together,
# every node that is one statement of a block.
PYTHON_COMPOUND_STATEMENTS = frozenset(
    {
        "if_statement",
        "for_statement",
        "while_statement",
        "try_statement",
        "with_statement",
        "match_statement",
        "function_definition",
        "class_definition",
        "decorated_definition",
    }
)
PYTHON_SIMPLE_STATEMENTS = frozenset(
    {
        "expression_statement",
        "return_statement",
        "raise_statement",
        "assert_statement",
        "pass_statement",
        "break_statement",
        "continue_statement",
        "delete_statement",
        "global_statement",
        "nonlocal_statement",
        "import_statement",
        "import_from_statement",
        "future_import_statement",
        "print_statement",
        "exec_statement",
        "type_alias_statement",
    }
)


def register_language(
    name: str,
    factory: Callable[[], object],
    language_ids: tuple[str, ...] = (),
    extensions: tuple[str, ...] = (),
) -> None:
    """Add a grammar under ``name`` and map LSP languageIds and extensions onto it."""
    _GRAMMARS[name] = factory
    for language_id in language_ids:
        _LANGUAGE_IDS[language_id] = name
    for ext in extensions:
        _EXTENSIONS[ext.lower()] = name
    get_language.cache_clear()


def supported_languages() -> list[str]:
    """Registry keys that have a grammar."""
    return sorted(_GRAMMARS)


def language_for(language_id: str | None, uri: str) -> str | None:
    """Registry key for a document, from its languageId or else its file extension."""
    if language_id and language_id in _LANGUAGE_IDS:
        return _LANGUAGE_IDS[language_id]
    ext = posixpath.splitext(unquote(urlparse(uri).path))[1].lower()
    return _EXTENSIONS.get(ext) if ext else None


@cache
def get_language(name: str) -> tree_sitter.Language:
    """The tree-sitter ``Language`` for a registry key (``KeyError`` if unknown)."""
    return tree_sitter.Language(_GRAMMARS[name]())


# A Parser holds mutable state, so each thread (pygls may run handlers in a pool)
# gets its own.
_local = threading.local()


def get_parser(name: str) -> tree_sitter.Parser:
    """A parser for a registry key, cached per thread."""
    parsers: dict[str, tuple[tree_sitter.Language, tree_sitter.Parser]] | None = getattr(
        _local, "parsers", None
    )
    if parsers is None:
        parsers = _local.parsers = {}
    language = get_language(name)
    entry = parsers.get(name)
    # Compare by identity so a grammar re-registered later gets a fresh parser.
    if entry is None or entry[0] is not language:
        entry = parsers[name] = (language, tree_sitter.Parser(language))
    return entry[1]


def parse(text: str, language: str) -> tree_sitter.Tree:
    """Parse ``text`` from scratch."""
    return get_parser(language).parse(encode_utf8(text))


class SyntaxDocument:
    """The text of one document and its syntax tree, edited in step."""

    def __init__(self, text: str, language: str) -> None:
        self.language = language
        self.text = text
        self._data = encode_utf8(text)
        self.tree: tree_sitter.Tree = get_parser(language).parse(self._data)
        self._index: LineIndex | None = None
        # CPython's verdicts by top-level statement text (see python_syntax_check).
        self.compiled: dict[str, SyntaxError | str | None] = {}

    @property
    def source(self) -> bytes:
        """The UTF-8 bytes the tree was parsed from (node byte offsets index this)."""
        return self._data

    @property
    def line_index(self) -> LineIndex:
        """Line table of the current text, built on first use after each change."""
        if self._index is None:
            self._index = LineIndex(self.text)
        return self._index

    def replace_text(self, text: str) -> None:
        """Full resync: parse ``text`` from scratch."""
        self.text = text
        self._data = encode_utf8(text)
        self.tree = get_parser(self.language).parse(self._data)
        self._index = None

    def edited(self, changes: Sequence[lsp.TextDocumentContentChangeEvent]) -> SyntaxDocument:
        """A new document with ``changes`` applied; this one (which readers may hold)
        is left as it is."""
        new = copy.copy(self)
        new.tree = self.tree.copy()
        new.apply_changes(changes)
        return new

    def apply_change(self, change: lsp.TextDocumentContentChangeEvent) -> None:
        """Apply one ``didChange`` content change and reparse incrementally."""
        self.apply_changes([change])

    def apply_changes(self, changes: Sequence[lsp.TextDocumentContentChangeEvent]) -> None:
        """Apply a ``didChange``'s content changes, then reparse once, incrementally.

        Each change edits the previous tree in place; the one parse at the end reuses
        it (tree-sitter takes any number of edits before a parse).
        """
        if not changes:
            return
        for change in changes:
            if not isinstance(change, lsp.TextDocumentContentChangePartial):
                self.text = change.text
                self._data = encode_utf8(change.text)
                self.tree = get_parser(self.language).parse(self._data)
                continue
            self._edit(change)
        self.tree = get_parser(self.language).parse(self._data, self.tree)
        self._index = None

    def _edit(self, change: lsp.TextDocumentContentChangePartial) -> None:
        """One ranged change to the text, the bytes and the tree, without a parse."""
        text = self.text
        rng = change.range
        start = offset_at(text, rng.start.line, rng.start.character)
        end = offset_at(text, rng.end.line, rng.end.character)
        if end < start:
            start, end = end, start
        new_text = text[:start] + change.text + text[end:]

        start_byte = offset_to_byte(text, start)
        old_end_byte = start_byte + utf8_len(text[start:end])
        new_end_byte = start_byte + utf8_len(change.text)
        start_point = ts_point_at(text, start)
        old_end_point = ts_point_after(start_point, text[start:end])
        new_end_point = ts_point_after(start_point, change.text)

        old_tree = self.tree
        old_tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=start_point,
            old_end_point=old_end_point,
            new_end_point=new_end_point,
        )
        self._data = self._data[:start_byte] + encode_utf8(change.text) + self._data[old_end_byte:]
        self.text = new_text

    def node_range(self, node: tree_sitter.Node) -> lsp.Range:
        """LSP range of a node of this document's tree."""
        return byte_range_to_lsp(self.line_index, node.start_byte, node.end_byte)


def byte_range_to_lsp(index: LineIndex, start_byte: int, end_byte: int) -> lsp.Range:
    """LSP range of a UTF-8 byte range of the text behind ``index``."""
    start = index.position_at_byte(start_byte)
    end = index.position_at_byte(end_byte)
    return lsp.Range(
        start=lsp.Position(line=start[0], character=start[1]),
        end=lsp.Position(line=end[0], character=end[1]),
    )


@dataclass(frozen=True)
class SyntaxProblem:
    """One syntax error, ready to become a diagnostic."""

    range: lsp.Range
    message: str


def iter_problem_nodes(tree: tree_sitter.Tree) -> Iterator[tree_sitter.Node]:
    """ERROR and MISSING nodes in document order, never those inside a yielded ERROR.

    Only subtrees with ``has_error`` are entered, so a clean tree costs one check.
    """
    cursor = tree.walk()
    while True:
        node = cursor.node
        assert node is not None
        descend = False
        if node.is_error or node.is_missing:
            yield node
        else:
            descend = node.has_error
        if descend and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def _snippet(source: bytes, node: tree_sitter.Node) -> str:
    raw = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
    first, _, rest = raw.strip().partition("\n")
    first = " ".join(first.split())
    if len(first) > _SNIPPET_MAX:
        return first[: _SNIPPET_MAX - 1] + "…"
    return first + "…" if rest.strip() else first


def problem_message(source: bytes, node: tree_sitter.Node) -> str:
    """Readable message for an ERROR or MISSING node."""
    if node.is_missing:
        return f"Missing {node.type}" if node.is_named else f'Missing "{node.type}"'
    snippet = _snippet(source, node)
    return f'Syntax error: unexpected "{snippet}"' if snippet else "Syntax error"


def syntax_problems(doc: SyntaxDocument, limit: int = 100) -> list[SyntaxProblem]:
    """Up to ``limit`` syntax problems of ``doc``, in document order."""
    if limit <= 0 or not doc.tree.root_node.has_error:
        return []
    problems: list[SyntaxProblem] = []
    for node in iter_problem_nodes(doc.tree):
        problems.append(SyntaxProblem(doc.node_range(node), problem_message(doc.source, node)))
        if len(problems) >= limit:
            break
    return problems


def error_count(text: str, language: str) -> int:
    """Number of ERROR/MISSING problems in ``text`` parsed from scratch (0: parses cleanly)."""
    tree = parse(text, language)
    if not tree.root_node.has_error:
        return 0
    return sum(1 for _ in iter_problem_nodes(tree))


# CPython checks Python documents up to this many characters; larger ones get
# tree-sitter's problems only. On a busy 2-core machine (load 7) the first check of a
# 0.9 MB, 21,000-line file took 400 ms (one ast.parse of the whole file: 760 ms); after
# an edit only the statements it changed are parsed again: 17 ms a check (3 ms for a
# 5,400-line file).
PYTHON_CHECK_MAX_CHARS = 1_000_000
# The file name CPython's messages and warnings carry; its warnings are ignored.
_CHECK_FILENAME = "<mmlsp-syntax-check>"
_TOO_DEEP = "too deep"  # a chunk CPython could not check (MemoryError, RecursionError)
_UNCHECKED: Any = object()

# Tree-sitter node types of syntax newer than the running interpreter, by the version
# that added it: CPython would call it an error though the project may target that
# version, so an error CPython alone reports on such a line is not reported.
_NEWER_SYNTAX: dict[tuple[int, int], frozenset[str]] = {
    # PEP 695: type aliases and type parameters.
    (3, 12): frozenset({"type_alias_statement", "type_parameter"}),
}
# PEP 701 (3.12): f-strings nest quotes, backslashes and comments; older parsers say
# "f-string: ..." about them.
_FSTRING_ERROR = "f-string"
_UNPARENTHESIZED_EXCEPT = "multiple exception types must be parenthesized"


@dataclass(frozen=True)
class CheckedChunk:
    """CPython's verdict on the top-level statements on lines ``first`` to ``last``."""

    first: int
    last: int
    error: SyntaxProblem | None


def _newer_syntax_nodes() -> frozenset[str]:
    return frozenset().union(
        *(types for version, types in _NEWER_SYNTAX.items() if sys.version_info < version)
    )


def _uses_newer_syntax(doc: SyntaxDocument, problem: SyntaxProblem, message: str) -> bool:
    """Whether the line CPython complains about holds syntax newer than this Python."""
    if sys.version_info < (3, 12) and message.startswith(_FSTRING_ERROR):
        return True
    if sys.version_info < (3, 14) and message == _UNPARENTHESIZED_EXCEPT:
        return True  # PEP 758: `except A, B:` is 3.14 syntax
    newer = _newer_syntax_nodes()
    if not newer:
        return False
    line = problem.range.start.line
    start = doc.line_index.offset_to_byte(doc.line_index.offset_at(line, 0))
    end = doc.line_index.offset_to_byte(doc.line_index.offset_at(line + 1, 0))
    # The nodes that overlap the line: its enclosing statements and what it holds.
    stack = [doc.tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in newer:
            return True
        stack.extend(c for c in node.children if c.end_byte > start and c.start_byte < end)
    return False


def _top_level_chunks(doc: SyntaxDocument) -> Iterator[tuple[int, str]]:
    """(first LSP line, whole lines of text) of each top-level statement, in order.

    Statements that share a line share a chunk. Read from the tree's rows and bytes:
    no line table, so a keystroke in a large file costs little.
    """
    data = doc.source
    # Tree-sitter counts rows by \n only; LSP (and CPython) also break lines at a lone \r.
    lone_cr = doc.text.count("\r") != doc.text.count("\r\n")
    span: list[int] = []  # first row, last row, start byte, end byte
    for node in doc.tree.root_node.children:
        first = node.start_point.row
        start = node.start_byte - node.start_point.column
        row, column = node.end_point
        last = row - 1 if column == 0 and row > first else row
        newline = data.find(b"\n", max(node.end_byte - 1, start))
        end = len(data) if newline < 0 else newline + 1
        if span and first <= span[1]:
            span[1], span[3] = max(span[1], last), max(span[3], end)
            continue
        if span:
            yield _chunk(doc, span, lone_cr)
        span = [first, last, start, end]
    if span:
        yield _chunk(doc, span, lone_cr)


def _chunk(doc: SyntaxDocument, span: list[int], lone_cr: bool) -> tuple[int, str]:
    first = doc.line_index.position_at_byte(span[2])[0] if lone_cr else span[0]
    return first, doc.source[span[2] : span[3]].decode("utf-8")


def _compile_error(source: str) -> SyntaxError | str | None:
    """CPython's syntax error for ``source``, from its parser (``ast.parse``): nothing
    is compiled or run."""
    if not any(getattr(f[3], "pattern", f[3]) == _CHECK_FILENAME for f in warnings.filters):
        # SyntaxWarnings about the user's code are not ours to print (pytest and
        # catch_warnings blocks reset the filters, so this is checked every time).
        warnings.filterwarnings("ignore", module=_CHECK_FILENAME)
    # CPython reads a file's byte order mark but rejects one in a str: drop it, and
    # count it back into the columns of an error on the first line.
    bom = source.startswith("\ufeff")
    text = scrub_surrogates(source[bom:])
    try:
        try:
            ast.parse(text, _CHECK_FILENAME)
        except SystemError:
            # CPython 3.11 can raise a spurious "AST constructor recursion depth
            # mismatch" after an earlier parse failed deep down (gh-106905): once more.
            ast.parse(text, _CHECK_FILENAME)
        return None
    except SyntaxError as exc:  # IndentationError and TabError too
        if bom and exc.lineno == 1:
            exc.offset = (exc.offset or 1) + 1
            if exc.end_lineno == 1 and exc.end_offset and exc.end_offset > 0:
                exc.end_offset += 1
        return exc
    except ValueError as exc:  # older Pythons: "source code string cannot contain null bytes"
        return SyntaxError(str(exc))
    except (MemoryError, RecursionError, SystemError):  # hostile nesting: tree-sitter answers
        return _TOO_DEEP


def python_syntax_check(doc: SyntaxDocument) -> list[CheckedChunk] | None:
    """CPython's verdict on each top-level statement of ``doc``, worded and placed as
    CPython reports it; None when the document is too large to check.

    Each statement is parsed (``ast.parse``: nothing is compiled or run) on its own, so
    every statement gets its first error, and an edit parses again only the statements
    it changed: verdicts are kept by statement text. A statement CPython cannot check
    (too deeply nested) or whose error is about syntax newer than the running
    interpreter gets no verdict, so tree-sitter's problems stand there.
    """
    if len(doc.text) > PYTHON_CHECK_MAX_CHARS:
        return None
    known = doc.compiled
    kept: dict[str, SyntaxError | str | None] = {}
    chunks: list[CheckedChunk] = []
    for first, source in _top_level_chunks(doc):
        error = kept.get(source, known.get(source, _UNCHECKED))
        if error is _UNCHECKED:
            error = _compile_error(source)
        kept[source] = error
        last = first + line_count(source.rstrip("\r\n")) - 1
        if error is None:
            chunks.append(CheckedChunk(first, last, None))
        elif isinstance(error, SyntaxError):
            problem = _shifted(_chunk_problem(source, error), first)
            if not _uses_newer_syntax(doc, problem, problem.message):
                chunks.append(CheckedChunk(first, last, problem))
    doc.compiled = kept
    return chunks


def _chunk_problem(source: str, error: SyntaxError) -> SyntaxProblem:
    index = LineIndex(source)
    message = error.msg or "invalid syntax"
    if error.lineno is None:  # the null byte message carries no position
        line, col = index.position_at(max(source.find("\0"), 0))
        return SyntaxProblem(_lsp_range(line, col, line, col + 1), message)
    return SyntaxProblem(_error_range(index, error), message)


# Line numbers CPython writes into messages ("... on line 3", "(detected at line 7)").
_MESSAGE_LINE = re.compile(r"(?<=\bline )(\d+)")


def _shifted(problem: SyntaxProblem, lines: int) -> SyntaxProblem:
    """A statement's problem moved down to the statement's place in the document."""
    r = problem.range
    message = _MESSAGE_LINE.sub(lambda m: str(int(m.group(1)) + lines), problem.message)
    return SyntaxProblem(
        _lsp_range(r.start.line + lines, r.start.character, r.end.line + lines, r.end.character),
        message,
    )


def _lsp_range(sl: int, sc: int, el: int, ec: int) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=sl, character=sc), end=lsp.Position(line=el, character=ec)
    )


def _error_range(index: LineIndex, error: SyntaxError) -> lsp.Range:
    """LSP range (UTF-16) of a SyntaxError's 1-based line and 1-based code point offsets.

    An end CPython leaves out (``end_offset`` 0 or -1) or puts before the start gives a
    one-character range, widened backwards at the end of a line so editors show it.
    """
    last = index.line_count - 1
    line = min(max((error.lineno or 1) - 1, 0), last)
    text = index.line_text(line)
    start = min(max((error.offset or 1) - 1, 0), len(text))
    end_line, end = line, start
    if error.end_lineno is not None and error.end_offset is not None and error.end_offset > 0:
        candidate_line = min(max(error.end_lineno - 1, 0), last)
        candidate = min(error.end_offset - 1, len(index.line_text(candidate_line)))
        if (candidate_line, candidate) > (line, start):
            end_line, end = candidate_line, candidate
    if isinstance(error, IndentationError) and not (error.msg or "").startswith("expected"):
        # "unexpected indent", "unindent does not match ...", TabError: the indent itself.
        indent = len(text) - len(text.lstrip())
        if indent:
            start, end_line, end = 0, line, indent
    if (end_line, end) == (line, start):
        if start < len(text):
            end = start + 1
        elif start > 0:
            start -= 1
        else:
            # At the start of an empty line (the end of the file, after blank lines):
            # the last character of the code before it, where the problem was typed.
            previous = next(
                (n for n in range(line - 1, -1, -1) if index.line_text(n).strip()), None
            )
            if previous is not None:
                text = index.line_text(previous).rstrip()
                line = end_line = previous
                start, end = len(text) - 1, len(text)
    end_text = text if end_line == line else index.line_text(end_line)
    return _lsp_range(line, index_to_utf16(text, start), end_line, index_to_utf16(end_text, end))
