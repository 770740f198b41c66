"""Syntax problems read off a tree: tree-sitter's ERROR and MISSING nodes, each with a
readable message and its LSP range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import tree_sitter
from lsprotocol import types as lsp

from mmlsp.syntax.document import SyntaxDocument
from mmlsp.syntax.languages import parse

_SNIPPET_MAX = 30


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
