"""Cursor context: budgets, the cursor's line, line endings, and the syntax it carries."""

from __future__ import annotations

from mmlsp.context import build_context
from mmlsp.syntax import SyntaxDocument


def ctx_for(text: str, offset: int, **kwargs: object):
    options = {"prefix_tokens": 1000, "suffix_tokens": 1000, "count": len, **kwargs}
    return build_context(text, offset, **options)  # type: ignore[arg-type]


def test_cursor_line_and_budgets() -> None:
    text = "a = 1\nb = 2\nc = foo(x)\nd = 4\ne = 5\n"
    offset = text.index("(x)") + 1
    # count=len: the budgets are characters here; each side keeps whole lines only.
    ctx = ctx_for(
        text, offset, prefix_tokens=len("b = 2\nc = foo("), suffix_tokens=len("x)\nd = 4\n")
    )
    assert ctx.line_prefix == "c = foo(" and ctx.line_suffix == "x)"
    assert ctx.prefix == "b = 2\nc = foo("
    assert ctx.suffix == "x)\nd = 4\n"
    assert ctx.text == text and ctx.offset == offset


def test_cursor_line_over_budget_is_cut_on_the_far_side() -> None:
    ctx = ctx_for("x = 1\nlong_line = 2", 13, prefix_tokens=3, suffix_tokens=2)
    assert ctx.prefix == "_li" and ctx.suffix == "ne"
    assert ctx.line_prefix == "long_li" and ctx.line_suffix == "ne = 2"


def test_crlf() -> None:
    text = "def f():\r\n    \r\n    return 1\r\n"
    ctx = ctx_for(text, text.index("    \r\n") + 4, language="python")
    assert ctx.line_prefix == "    " and ctx.line_suffix == ""
    assert ctx.eol == "\r\n"
    assert ctx.mode == "multi"
    assert ctx_for("x\ny", 1).eol == "\n"


def test_language_gives_a_tree() -> None:
    ctx = ctx_for("print(", 6, language="python")
    assert ctx.language == "python" and ctx.tree is not None
    assert ctx.mode == "balance" and ctx.multiline


def test_unknown_language_falls_back_to_text() -> None:
    ctx = ctx_for("foo(", 4, language="cobol")
    assert ctx.language is None and ctx.tree is None
    assert ctx.mode == "balance"  # plain-text rules still see the open paren
    assert not ctx_for("x = os.", 7).multiline


def test_syntax_doc_tree_is_reused_when_current() -> None:
    doc = SyntaxDocument("def f():\n    ", "python")
    ctx = ctx_for(doc.text, len(doc.text), syntax_doc=doc)
    assert ctx.tree is doc.tree and ctx.language == "python" and ctx.mode == "multi"
    stale = ctx_for("print(", 6, syntax_doc=doc)  # text moved on: parsed afresh
    assert stale.tree is not doc.tree and stale.mode == "balance"


def test_offset_is_clamped() -> None:
    ctx = ctx_for("x = 1", 50)
    assert ctx.offset == 5 and ctx.line_prefix == "x = 1" and ctx.suffix == ""


def test_an_overlong_cursor_line_is_cut_to_the_budget():
    from mmlsp.context import build_context

    line = "x = '" + "a" * 200_000
    ctx = build_context(
        line + "'\ny = 1\n",
        len(line),
        prefix_tokens=100,
        suffix_tokens=50,
        count=lambda s: len(s) // 3 + 1,
    )
    assert len(ctx.prefix) <= 400 and ctx.prefix.endswith("aaa")
    assert ctx.line_prefix == line  # the real line is kept for the shape and filters
    assert ctx.suffix.startswith("'")
