"""Cursor context: budgets, the cursor's line, line endings, and the syntax it carries."""

from __future__ import annotations

from lsprotocol import types

from mmlsp.context.window import WINDOW_SNAP_LINES, build_context
from mmlsp.prompt.fim import build_prompt, template_by_name
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
    assert ctx.language == "python" and ctx.mode == "multi"
    assert ctx.tree is not None and str(ctx.tree.root_node) == str(doc.tree.root_node)
    # A copy: the document edits its own tree in place on the next change, while the
    # context is still used (parse check) after the model answers.
    doc.apply_change(
        types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(0, 0), types.Position(0, 0)), text="x = 1\n"
        )
    )
    assert ctx.tree.root_node.end_byte == len("def f():\n    ")
    stale = ctx_for("print(", 6, syntax_doc=doc)  # text moved on: parsed afresh
    assert stale.tree is not doc.tree and stale.mode == "balance"


def test_offset_is_clamped() -> None:
    ctx = ctx_for("x = 1", 50)
    assert ctx.offset == 5 and ctx.line_prefix == "x = 1" and ctx.suffix == ""


def test_an_overlong_cursor_line_is_cut_to_the_budget():
    from mmlsp.context.window import build_context

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


def _long_module(functions: int = 40) -> str:
    parts = ["import os\nimport sys\nfrom pathlib import Path\n\n"]
    for n in range(functions):
        parts.append(
            f"def func_{n}(a, b):\n"
            f"    total = call_something(\n"
            f"        a, b, {n},\n"
            f"    )\n"
            f"    return total + {n}\n\n"
        )
    return "".join(parts)


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_window_start_is_stable_while_typing_in_a_long_file() -> None:
    """Consecutive keystrokes give prompts that share all but the typed tail.

    The budget is exactly used up at every keystroke (count=len), so without snapping
    each typed character would push a line out of the window and change the prompt's
    first line, defeating KV prefix reuse.
    """
    qwen = template_by_name("qwen")
    base = _long_module()
    cursor = base.index("def func_30")
    typed = "result = compute(alpha, beta)"
    prompts, starts = [], set()
    for n in range(1, len(typed) + 1):
        text = base[:cursor] + typed[:n] + "\n" + base[cursor:]
        offset = cursor + n
        ctx = build_context(
            text, offset, prefix_tokens=700, suffix_tokens=100, count=len, language="python"
        )
        starts.add(ctx.window_start_line)
        prompts.append(build_prompt(qwen, ctx.prefix, ctx.suffix, first_line=ctx.window_start_line))
    assert len(starts) == 1
    for before, after in zip(prompts, prompts[1:], strict=False):
        # The cursor line opens the middle: a keystroke only extends the prompt.
        assert after.startswith(before)


def test_window_starts_on_a_statement_at_a_snapped_line() -> None:
    text = _long_module()
    offset = text.index("def func_35")
    ctx = build_context(
        text, offset, prefix_tokens=900, suffix_tokens=50, count=len, language="python"
    )
    lines = text.splitlines(keepends=True)
    first = ctx.window_start_line
    assert first >= WINDOW_SNAP_LINES  # the budget does not reach the file's start
    assert ctx.prefix.startswith(lines[first])
    # Never half a statement: the multi-line call's continuation lines are skipped.
    assert not lines[first].startswith(("        a, b", "    )"))
    assert lines[first].strip()
    # Within budget.
    assert len(ctx.prefix) <= 900


def test_preamble_has_out_of_view_imports_and_enclosing_headers() -> None:
    body = "".join(f"        value_{n} = helper({n})\n" for n in range(80))
    text = (
        "import os\nfrom typing import Any\n\n\n"
        "class Store:\n"
        '    """Keeps things."""\n\n'
        "    @property\n"
        "    def load(self, key: str,\n"
        "             default: Any = None) -> Any:\n"
        f"{body}"
        "        return \n"
    )
    offset = text.index("return ") + len("return ")
    window = {"prefix_tokens": 300, "suffix_tokens": 50, "language": "python"}
    ctx = ctx_for(text, offset, **window, preamble_tokens=500)
    assert ctx.window_start_line > 10
    assert ctx.preamble == (
        "import os\nfrom typing import Any\n\n"
        "class Store:\n"
        "    def load(self, key: str,\n"
        "             default: Any = None) -> Any:\n"
    )
    # No budget: no preamble; a window that shows the file's start: no preamble.
    assert ctx_for(text, offset, **window).preamble == ""
    near = ctx_for(text, text.index("value_3"), language="python", preamble_tokens=500)
    assert near.window_start_line == 0 and near.preamble == ""
    # A tight budget drops imports first and keeps the headers.
    tight = ctx_for(text, offset, **window, preamble_tokens=90)
    assert tight.preamble.startswith("class Store:") and "import" not in tight.preamble


def test_preamble_holds_while_a_new_line_is_indented() -> None:
    """Enter, then the indenting spaces: the enclosing headers stay, so the prompt's
    start (and the kept KV cache) holds until the line's code says otherwise."""
    body = "".join(f"        value_{n} = helper({n})\n" for n in range(80))
    head = "import os\n\n\nclass Store:\n    def load(self, key):\n" + body
    tail = "\n    def save(self):\n        pass\n"
    window = {"prefix_tokens": 300, "suffix_tokens": 50, "language": "python"}
    preambles = set()
    for typed in ("", " ", "    ", "        ", "        r"):
        text = head + typed + tail
        ctx = ctx_for(text, len(head) + len(typed), **window, preamble_tokens=500)
        preambles.add(ctx.preamble)
    assert preambles == {"import os\n\nclass Store:\n    def load(self, key):\n"}
    # Code typed at a shallower level leaves the method (and at column 0, the class).
    text = head + "x = 1" + tail
    ctx = ctx_for(text, len(head) + len("x = 1"), **window, preamble_tokens=500)
    assert ctx.preamble == "import os\n"
