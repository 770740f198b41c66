"""The completion shape decision: one table, run with the tree and without it."""

from __future__ import annotations

import pytest

from mmlsp.syntax import parse
from mmlsp.syntax.shape import GENERIC, PYTHON, BracketEvent, ScanState, decide_shape, scan

# (description, document with "§" at the cursor, language, mode, open brackets, quote)
SHAPES = [
    ("end of a non-empty line", "import os\nx = os.path.§", "python", "single", "", None),
    ("mid-line, code to the right", "a = b§.c(1)\n", "python", "single", "", None),
    ("mid-line in a call, args to the right", "foo(a, §b)\n", "python", "single", "(", None),
    ("empty indented line after def", "def f():\n    §\n", "python", "multi", "", None),
    ("empty line, no indentation yet", "def f():\n§\n", "python", "multi", "", None),
    ("end of a line that opens a block", "def f(x):§\n", "python", "multi", "", None),
    ("end of an if line", "if x > 1:§\n    pass\n", "python", "multi", "", None),
    ("empty line between statements", "x = 1\n§\ny = 2\n", "python", "multi", "", None),
    ("after an open paren", "print(§", "python", "balance", "(", None),
    ("after an open bracket, next line", "x = [\n    1,\n    §", "python", "balance", "[", None),
    ("after an open brace", "d = {§", "python", "balance", "{", None),
    ("nested open brackets", "f(g(§", "python", "balance", "((", None),
    ("auto-closed paren to the right", "print(§)\n", "python", "single", "(", None),
    ("blank line before an auto-closed paren", "foo(a,\n    §)\n", "python", "single", "(", None),
    ("list closed further down", "x = [\n    1,\n    §\n]\n", "python", "multi", "[", None),
    ("inside a comment", "x = 1  # the value§\n", "python", "line", "", None),
    ("inside a whole-line comment", "# compute §\nx = 1\n", "python", "line", "", None),
    ("inside a docstring", 'def f():\n    """Return the §\n    """\n', "python", "line", "", '"""'),
    ("inside an unterminated docstring", 'def f():\n    """Return§', "python", "line", "", '"""'),
    ("inside a one-line string", 'print("hel§")\n', "python", "single", "(", '"'),
    ("inside an unterminated string", 'print("hel§', "python", "single", "(", '"'),
    ("bracket inside a string is no bracket", 'x = "(" + §\n', "python", "single", "", None),
    ("bracket inside a comment is no bracket", "x = 1  # (\n§\n", "python", "multi", "", None),
    ("f-string with braces", 'x = f"{a}"\ny = §\n', "python", "single", "", None),
    ("CRLF: empty line after def", "def f():\r\n    §\r\n", "python", "multi", "", None),
    ("CRLF: end of a non-empty line", "x = 1\r\ny = os.§\r\n", "python", "single", "", None),
    ("CRLF: after an open paren", "x = 1\r\nfoo(§\r\n", "python", "balance", "(", None),
    ("plain text: end of a line", "let x = foo.§\n", None, "single", "", None),
    ("plain text: brace body", "function f() {\n  §\n}\n", None, "multi", "{", None),
    ("plain text: unclosed call", "foo(a,\n    §", None, "balance", "(", None),
    ("plain text: // comment", "let x = 1; // the §\n", None, "line", "", None),
    ("plain text: block comment", "/* Compute §\n */\n", None, "line", "", None),
    ("plain text: template string", "const s = `line\n§", None, "line", "", "`"),
    ("plain text: # is no comment mid-word", "a#b(§", None, "balance", "(", None),
    ("empty document", "§", None, "multi", "", None),
]


def _split(doc: str) -> tuple[str, int]:
    offset = doc.index("§")
    return doc.replace("§", ""), offset


@pytest.mark.parametrize(
    ("text_doc", "language", "mode", "stack", "quote"),
    [pytest.param(*row[1:], id=row[0]) for row in SHAPES],
)
@pytest.mark.parametrize("use_tree", [True, False], ids=["tree", "text"])
def test_shape_table(
    text_doc: str, language: str | None, mode: str, stack: str, quote: str | None, use_tree: bool
) -> None:
    text, offset = _split(text_doc)
    tree = parse(text, language) if use_tree and language else None
    shape = decide_shape(text, offset, language, tree)
    assert shape.mode == mode
    assert "".join(shape.stack) == stack
    assert shape.quote == quote


def test_balance_scope_is_the_bracket_line_indent() -> None:
    text, offset = _split("def f():\n    x = foo(\n        §")
    assert decide_shape(text, offset, "python", parse(text, "python")).scope_indent == 4
    assert decide_shape(text, offset).scope_indent == 4


def test_non_ascii_before_the_cursor() -> None:
    text, offset = _split('s = "é😀"\nprint(§')
    assert decide_shape(text, offset, "python", parse(text, "python")).mode == "balance"


def test_offset_is_clamped() -> None:
    assert decide_shape("x = 1", 99).mode == "single"
    assert decide_shape("x = 1", -5).mode == "single"


@pytest.mark.parametrize(
    ("text", "start", "lex", "stack", "quote", "comment"),
    [
        ("f(a, [b", ScanState(), PYTHON, ("(", "["), None, None),
        ("f(')'", ScanState(), PYTHON, ("(",), None, None),
        ('"""doc (', ScanState(), PYTHON, (), '"""', None),
        ("x # (\n", ScanState(), PYTHON, (), None, None),
        ("x # (", ScanState(), PYTHON, (), None, "line"),
        ("/* ( */ (", ScanState(), GENERIC, ("(",), None, None),
        ('"a\\"(" (', ScanState(), GENERIC, ("(",), None, None),
        ("'unterminated (\n(", ScanState(), GENERIC, ("(",), None, None),
        # Starting inside a string: the quote ends it, then `)` closes the cursor's `(`.
        ('lo") + (', ScanState(stack=("(",), quote='"'), GENERIC, ("(",), None, None),
    ],
)
def test_scan(
    text: str,
    start: ScanState,
    lex: object,
    stack: tuple[str, ...],
    quote: str | None,
    comment: str | None,
) -> None:
    state = scan(text, start, lex)  # type: ignore[arg-type]
    assert (state.stack, state.quote, state.comment) == (stack, quote, comment)


def test_scan_reports_closers() -> None:
    events: list[BracketEvent] = []
    scan("a) + b]", ScanState(stack=("(",)), GENERIC, events)
    assert events == [BracketEvent(1, 0, True), BracketEvent(6, 0, False)]
