"""Syntax diagnostics: tree-sitter ERROR and MISSING nodes as LSP errors."""

from __future__ import annotations

from lsprotocol import types

from mmlsp.syntax import SyntaxDocument, syntax_problems

SOURCE = "mmlsp"


def syntax_diagnostics(doc: SyntaxDocument | None, limit: int = 100) -> list[types.Diagnostic]:
    if doc is None:
        return []
    return [
        types.Diagnostic(
            range=problem.range,
            message=problem.message,
            severity=types.DiagnosticSeverity.Error,
            source=SOURCE,
            code="syntax",
        )
        for problem in syntax_problems(doc, limit)
    ]
