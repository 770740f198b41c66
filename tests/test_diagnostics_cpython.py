"""Syntax diagnostics for Python as CPython reports them, on top of tree-sitter's."""

from __future__ import annotations

import sys
import warnings

import pytest
from lsprotocol import types as lsp

from mmlsp import syntax
from mmlsp.features.diagnostics import syntax_diagnostics
from mmlsp.syntax import SyntaxDocument, python_check
from tests.lsp_helpers import open_doc, wait_for_diagnostics


def diagnose(text: str) -> list[tuple[tuple[int, int, int, int], str]]:
    return [
        (
            (d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character),
            d.message,
        )
        for d in syntax_diagnostics(SyntaxDocument(text, "python"))
    ]


def test_empty_for_body_is_reported_at_its_colon():
    """Tree-sitter accepts an empty block; CPython says what is wrong, and where."""
    assert diagnose("for x in y:\n") == [
        ((0, 10, 0, 11), "expected an indented block after 'for' statement on line 1")
    ]
    # After blank lines, at the end of a later statement, with Windows line breaks.
    assert diagnose("x = 1\r\n\r\nfor a in b:\r\n\r\n") == [
        ((2, 10, 2, 11), "expected an indented block after 'for' statement on line 3")
    ]
    # A body that is not indented: CPython points at the line that should be.
    assert diagnose("def f():\n    pass\n\n\ndef g():\nreturn 1\n")[0][1] == (
        "expected an indented block after function definition on line 5"
    )


def test_cpython_words_the_error_tree_sitter_found_on_the_same_line():
    tree_sitter_only = syntax.syntax_problems(SyntaxDocument("x = ('😀', 1 2)\n", "python"))
    assert [p.message for p in tree_sitter_only] == ['Syntax error: unexpected "2"']
    # One diagnostic in CPython's words, at tree-sitter's narrower place inside
    # CPython's ("1 2"); columns in UTF-16 (the emoji takes two units).
    assert diagnose("x = ('😀', 1 2)\n") == [
        ((0, 13, 0, 14), "invalid syntax. Perhaps you forgot a comma?")
    ]
    assert diagnose("x = (1,\ny = 2\n") == [((0, 4, 0, 5), "'(' was never closed")]
    assert diagnose("if x\n    pass\n") == [((0, 3, 0, 4), "expected ':'")]


def test_every_statement_gets_its_first_error_at_its_place():
    text = "def f():\n    x = = 1\n\nclass A:\n    def g(self):\n        return [1,\n2)\n"
    assert diagnose(text) == [
        ((1, 8, 1, 9), "invalid syntax"),
        ((6, 1, 6, 2), "closing parenthesis ')' does not match opening parenthesis '[' on line 6"),
    ]


def test_errors_tree_sitter_accepts():
    assert diagnose("x=1\n  y=2\n") == [((1, 0, 1, 2), "unexpected indent")]
    assert diagnose("if x:\n\ty\n        z\n") == [
        ((2, 0, 2, 8), "inconsistent use of tabs and spaces in indentation")
    ]
    assert diagnose("print 'hi'\n")[0][1].startswith("Missing parentheses in call to 'print'")
    assert diagnose("x = 0777\n")[0][1].startswith("leading zeros in decimal integer literals")


def test_valid_code_has_no_diagnostics_and_its_warnings_stay_quiet():
    text = "import os\n\n\ndef f(a, /, b, *, c):\n    if a is 1:\n        return '\\d'\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a SyntaxWarning about `is 1` would raise here
        assert diagnose(text) == []
        # A byte order mark is not a character CPython counts, but LSP does.
        assert diagnose("\ufeffx = = 1\n") == [((0, 5, 0, 6), "invalid syntax")]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 compiles these")
def test_syntax_newer_than_this_python_is_not_an_error():
    assert diagnose("type Alias = list[int]\n") == []
    assert diagnose("def first[T](items: list[T]) -> T:\n    return items[0]\n") == []
    assert diagnose('d = {}\nx = f"{d["a"]}"\n') == []


def test_hostile_nesting_leaves_tree_sitter_to_answer():
    # CPython's compiler runs out of memory on this; tree-sitter's verdict stands.
    deep = "x = " + "-" * 200_000 + "1\n"
    assert diagnose(deep) == []
    assert diagnose("x = " + "(" * 300 + ")" * 300 + "\n")[0][1] == "too many nested parentheses"


def test_large_documents_get_tree_sitter_only(monkeypatch):
    monkeypatch.setattr(python_check, "PYTHON_CHECK_MAX_CHARS", 10)
    assert diagnose("for x in range(10):\n") == []
    assert diagnose("x = = 10000\n") == [((0, 4, 0, 5), 'Syntax error: unexpected "="')]


def test_an_edit_recompiles_only_the_statements_it_changed(monkeypatch):
    compiled: list[str] = []
    real = python_check._compile_error

    def counting(source: str):
        compiled.append(source)
        return real(source)

    monkeypatch.setattr(python_check, "_compile_error", counting)
    functions = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(50))
    doc = SyntaxDocument(functions, "python")
    assert syntax_diagnostics(doc) == []
    assert len(compiled) == 50
    compiled.clear()
    # Empty the body of f10: only that function is compiled again.
    start = lsp.Position(line=41, character=0)
    end = lsp.Position(line=42, character=0)
    doc.apply_change(lsp.TextDocumentContentChangePartial(range=lsp.Range(start, end), text=""))
    (diagnostic,) = syntax_diagnostics(doc)
    assert diagnostic.message == "expected an indented block after function definition on line 41"
    assert compiled == ["def f10(x):\n"]


def test_other_languages_are_not_compiled(monkeypatch):
    monkeypatch.setattr(python_check, "_compile_error", lambda _s: pytest.fail("compiled"))
    doc = SyntaxDocument("for x in y:\n", "python")
    doc.language = "other"
    assert syntax_diagnostics(doc) == []


async def test_the_server_publishes_cpythons_error(client):
    uri = "file:///tmp/empty_for.py"
    open_doc(client, uri, "items = [1, 2]\nfor item in items:\n")
    diagnostics = await wait_for_diagnostics(client, uri)
    assert [(d.message, d.range.start.line, d.source, d.code) for d in diagnostics] == [
        ("expected an indented block after 'for' statement on line 2", 1, "mmlsp", "syntax")
    ]
