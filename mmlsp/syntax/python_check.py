"""CPython's own verdict on a Python document: each top-level statement parsed with
``ast.parse`` (nothing is compiled or run), its error worded and placed as CPython
reports it, and verdicts kept by statement text so an edit re-checks only what it
changed.
"""

from __future__ import annotations

import ast
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lsprotocol import types as lsp

from mmlsp.syntax.document import SyntaxDocument
from mmlsp.syntax.problems import SyntaxProblem
from mmlsp.text.positions import LineIndex, index_to_utf16, line_count, scrub_surrogates

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
