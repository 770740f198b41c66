"""Syntax diagnostics: tree-sitter's ERROR and MISSING nodes, worded and checked by CPython.

Tree-sitter keeps up with every keystroke; for Python, CPython then confirms the
result statement by statement: in each top-level statement, CPython's first error,
in its words, replaces tree-sitter's problems (at tree-sitter's place where that is
a narrower one inside CPython's), catching what tree-sitter accepts (an empty
block), and a statement CPython parses has none.
"""

from __future__ import annotations

from lsprotocol import types

from mmlsp.syntax import SyntaxDocument, SyntaxProblem, python_syntax_check, syntax_problems

SOURCE = "mmlsp"


def _within(inner: types.Range, outer: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return p.line, p.character

    return (
        key(inner.start) < key(inner.end)
        and inner != outer
        and key(outer.start) <= key(inner.start)
        and key(inner.end) <= key(outer.end)
        and inner.start.line == inner.end.line
    )


def python_problems(doc: SyntaxDocument, limit: int) -> list[SyntaxProblem] | None:
    """Tree-sitter's problems corrected by CPython; None when CPython was not asked.

    In each top-level statement CPython checked, its error (in its words) replaces
    tree-sitter's problems, and a statement it parses has none.
    """
    chunks = python_syntax_check(doc)
    if chunks is None:
        return None
    found = syntax_problems(doc, 10 * limit)
    checked = [(chunk.first, chunk.last) for chunk in chunks]
    problems = [
        p for p in found if not any(first <= p.range.start.line <= last for first, last in checked)
    ]
    for chunk in chunks:
        if chunk.error is not None:
            # Tree-sitter's narrower place inside CPython's wider one, in CPython's words.
            inner = next((p.range for p in found if _within(p.range, chunk.error.range)), None)
            problems.append(SyntaxProblem(inner or chunk.error.range, chunk.error.message))
    problems.sort(key=lambda p: (p.range.start.line, p.range.start.character))
    return problems[:limit]


def syntax_diagnostics(doc: SyntaxDocument | None, limit: int = 100) -> list[types.Diagnostic]:
    if doc is None:
        return []
    problems = python_problems(doc, limit) if doc.language == "python" else None
    if problems is None:
        problems = syntax_problems(doc, limit)
    return [
        types.Diagnostic(
            range=problem.range,
            message=problem.message,
            severity=types.DiagnosticSeverity.Error,
            source=SOURCE,
            code="syntax",
        )
        for problem in problems
    ]
