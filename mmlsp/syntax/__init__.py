"""Tree-sitter syntax trees for open documents, kept up to date incrementally.

Features ask this package for trees; they never parse text themselves. One job per
module:

* ``languages``: the grammar registry (languages, languageIds, extensions), the
  per-thread parsers, and the Python grammar's statement node types;
* ``document``: ``SyntaxDocument``, a document's text and tree edited in step;
* ``problems``: ERROR and MISSING nodes as ``SyntaxProblem``s with LSP ranges;
* ``python_check``: CPython's own verdict on each top-level Python statement.

This module is the public surface: importers use ``from mmlsp.syntax import X``.
The names are re-exported, so to patch one (a test) patch it in its own module.
"""

from mmlsp.syntax.document import SyntaxDocument, byte_range_to_lsp
from mmlsp.syntax.languages import (
    PYTHON_COMPOUND_STATEMENTS,
    PYTHON_SIMPLE_STATEMENTS,
    get_language,
    get_parser,
    language_for,
    parse,
    register_language,
    supported_languages,
)
from mmlsp.syntax.problems import (
    SyntaxProblem,
    error_count,
    iter_problem_nodes,
    problem_message,
    syntax_problems,
)
from mmlsp.syntax.python_check import PYTHON_CHECK_MAX_CHARS, CheckedChunk, python_syntax_check

__all__ = [
    "PYTHON_CHECK_MAX_CHARS",
    "PYTHON_COMPOUND_STATEMENTS",
    "PYTHON_SIMPLE_STATEMENTS",
    "CheckedChunk",
    "SyntaxDocument",
    "SyntaxProblem",
    "byte_range_to_lsp",
    "error_count",
    "get_language",
    "get_parser",
    "iter_problem_nodes",
    "language_for",
    "parse",
    "problem_message",
    "python_syntax_check",
    "register_language",
    "supported_languages",
    "syntax_problems",
]
