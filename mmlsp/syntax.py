"""Tree-sitter syntax trees for open documents, kept up to date incrementally.

This module owns the grammar registry (which languages have syntax support and
how an LSP document maps onto one), the per-document tree that follows every
``didChange`` through ``Tree.edit`` plus an incremental reparse, and the
extraction of syntax problems (ERROR and MISSING nodes) as LSP ranges.
Features ask this module for trees; they never parse text themselves.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote, urlparse

import tree_sitter
import tree_sitter_python
from lsprotocol import types as lsp

from mmlsp.positions import (
    LineIndex,
    encode_utf8,
    offset_at,
    offset_to_byte,
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

    def apply_change(self, change: lsp.TextDocumentContentChangeEvent) -> None:
        """Apply one ``didChange`` content change and reparse incrementally.

        The previous tree is edited in place and reused by the new parse.
        """
        if not isinstance(change, lsp.TextDocumentContentChangePartial):
            self.replace_text(change.text)
            return
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
        self.tree = get_parser(self.language).parse(self._data, old_tree)
        self._index = None

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
