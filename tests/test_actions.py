"""Code actions without a server: listing, fix targets, the parse check and its retry.

The model is a ``ScriptedEngine`` test double, so each test knows the exact reply.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from lsprotocol import types

from mmlsp import chat
from mmlsp.features.actions import (
    ActionError,
    Doc,
    ExplainFiles,
    explain_markdown,
    fix_edit,
    list_actions,
    parse_location,
    parse_range,
)
from mmlsp.syntax import SyntaxDocument
from tests.scripted_engine import ScriptedEngine, scripted_host

TEXT = (
    "import os\n"  # 0
    "\n"  # 1
    "\n"  # 2
    "def mean(values):\n"  # 3
    "    total = sum(values)\n"  # 4
    "    return total / len(values)\n"  # 5
    "\n"  # 6
    "\n"  # 7
    "LIMIT = 10\n"  # 8
)
MEAN_RANGE = types.Range(types.Position(3, 0), types.Position(5, 30))
FIXED = (
    "def mean(values):\n    if not values:\n        return 0.0\n"
    "    return sum(values) / len(values)"
)


def make_doc(text: str = TEXT, language: str | None = "python") -> Doc:
    syntax = SyntaxDocument(text, language) if language else None
    return Doc("file:///t/stats.py", 3, text, language or "text", syntax)


def asker(engine: ScriptedEngine, tmp_path: Path):
    host = scripted_host(engine, tmp_path)

    async def ask(messages: chat.Messages) -> str:
        return await chat.ask(host, messages, 200, 10)

    return ask


def apply(doc: Doc, edit: types.TextEdit) -> str:
    start, end = doc.offset(edit.range.start), doc.offset(edit.range.end)
    return doc.text[:start] + edit.new_text + doc.text[end:]


def point(line: int, character: int) -> types.Range:
    return types.Range(types.Position(line, character), types.Position(line, character))


def diagnostic(line: int, message: str, source: str = "ruff") -> types.Diagnostic:
    rng = types.Range(types.Position(line, 11), types.Position(line, 30))
    return types.Diagnostic(range=rng, message=message, source=source)


def test_listing_calls_no_model_and_carries_data() -> None:
    doc = make_doc()
    diag = diagnostic(5, "ZeroDivisionError when values is empty")
    actions = list_actions(
        doc, point(3, 5), [diag], None, docstring_style="google", resolvable=True
    )
    titles = [a.title for a in actions]
    assert titles == [
        "Fix with AI: ZeroDivisionError when values is empty",
        "Add docstring (google) with AI",
        "Explain with AI",
    ]
    fix, docstring, explain = actions
    assert fix.kind == types.CodeActionKind.QuickFix and fix.diagnostics == [diag]
    assert fix.edit is None and fix.command is None
    assert fix.data["action"] == "fix" and fix.data["version"] == 3
    assert docstring.kind == types.CodeActionKind.RefactorRewrite
    assert explain.command.command == "mmlsp.explain"
    # Without resolve support each edit action carries the applyAction command instead.
    unresolved = list_actions(
        doc, point(3, 5), [diag], None, docstring_style="numpy", resolvable=False
    )
    assert unresolved[0].command.command == "mmlsp.applyAction"
    assert unresolved[0].command.arguments == [unresolved[0].data]
    # `only` filters by kind; a stale range lists nothing.
    only = list_actions(
        doc, point(3, 5), [diag], ["quickfix"], docstring_style="google", resolvable=True
    )
    assert [a.kind for a in only] == ["quickfix"]
    assert (
        list_actions(doc, point(99, 0), [], None, docstring_style="google", resolvable=True) == []
    )
    # In a function body (not its header) there is no docstring action, and no Explain:
    # it is offered on a definition's name or a selection, not on every line.
    body = list_actions(doc, point(4, 6), [], None, docstring_style="google", resolvable=True)
    assert [a.title for a in body] == []
    for line, character in ((0, 3), (8, 2), (3, 0)):  # an import, a constant, the `def`
        listed = list_actions(
            doc, point(line, character), [], None, docstring_style="google", resolvable=True
        )
        assert "Explain with AI" not in [a.title for a in listed]
    for character in (4, 6, 8):  # on the name `mean`, and right after it
        listed = list_actions(
            doc, point(3, character), [], None, docstring_style="google", resolvable=True
        )
        assert [a.title for a in listed][-1] == "Explain with AI"
    # A selection offers a fix for it.
    selection = types.Range(types.Position(4, 4), types.Position(5, 10))
    titles = [
        a.title
        for a in list_actions(doc, selection, [], None, docstring_style="google", resolvable=True)
    ]
    assert titles == ["Fix selection with AI", "Explain selection with AI"]


async def test_fix_replaces_exactly_the_enclosing_function(tmp_path: Path) -> None:
    engine = ScriptedEngine([f"Here is the fix:\n```python\n{FIXED}\n```\nIt avoids the crash."])
    doc = make_doc()
    edit = await fix_edit(
        doc, diagnostic(5, "division by zero").range, "division by zero", asker(engine, tmp_path)
    )
    assert edit.range == MEAN_RANGE
    assert edit.new_text == FIXED
    assert apply(doc, edit) == TEXT.replace(
        "    total = sum(values)\n    return total / len(values)\n",
        "    if not values:\n        return 0.0\n    return sum(values) / len(values)\n",
    )
    prompt = engine.prompts[0]
    assert "division by zero" in prompt and "import os" in prompt and "LIMIT = 10" in prompt


async def test_fix_of_a_method_keeps_its_indentation(tmp_path: Path) -> None:
    text = "class C:\n    def f(self, x):\n        return x / 0\n"
    engine = ScriptedEngine(["def f(self, x):\n    return x / 1"])
    doc = make_doc(text)
    edit = await fix_edit(doc, point(2, 15), "division by zero", asker(engine, tmp_path))
    assert edit.range == types.Range(types.Position(1, 4), types.Position(2, 20))
    assert apply(doc, edit) == "class C:\n    def f(self, x):\n        return x / 1\n"


async def test_module_level_statement_is_the_target(tmp_path: Path) -> None:
    engine = ScriptedEngine(["LIMIT = 100"])
    doc = make_doc()
    edit = await fix_edit(doc, point(8, 3), "too small", asker(engine, tmp_path))
    assert edit.range == types.Range(types.Position(8, 0), types.Position(8, 10))
    assert apply(doc, edit) == TEXT.replace("LIMIT = 10\n", "LIMIT = 100\n")


async def test_fix_reply_that_echoes_the_whole_file_keeps_only_the_function(
    tmp_path: Path,
) -> None:
    """Small models answer with the file around the function; only the function counts."""
    echoed = f"import os\n\n\n@cache\ndef other():\n    pass\n\n\n{FIXED}\n\n\nLIMIT = 10\n"
    engine = ScriptedEngine([f"```python\n{echoed}```"])
    doc = make_doc()
    edit = await fix_edit(doc, MEAN_RANGE, "division by zero", asker(engine, tmp_path))
    assert edit.new_text == FIXED
    # Without a definition of that name in the reply, the reply stands as it is.
    engine = ScriptedEngine(["import os\nLIMIT = 3", "import os\nLIMIT = 3"])
    edit = await fix_edit(doc, MEAN_RANGE, "division by zero", asker(engine, tmp_path))
    assert edit.new_text == "import os\nLIMIT = 3"


async def test_parse_check_rejects_a_broken_reply_and_retries_once(tmp_path: Path) -> None:
    engine = ScriptedEngine(["def mean(values:\n    return (", f"```\n{FIXED}\n```"])
    doc = make_doc()
    edit = await fix_edit(doc, MEAN_RANGE, "crash", asker(engine, tmp_path))
    assert edit.new_text == FIXED
    assert len(engine.prompts) == 2
    # The second prompt carries the rejected reply and the parse error.
    assert "def mean(values:" in engine.prompts[1] and "is not usable" in engine.prompts[1]


async def test_two_broken_replies_give_up_with_a_clear_message(tmp_path: Path) -> None:
    engine = ScriptedEngine(["def mean(values:", "return )"])
    with pytest.raises(
        ActionError, match="does not parse .* even after a retry; nothing was changed"
    ):
        await fix_edit(make_doc(), MEAN_RANGE, "crash", asker(engine, tmp_path))
    assert len(engine.prompts) == 2


async def test_a_document_with_errors_may_keep_them_but_not_add_more(tmp_path: Path) -> None:
    text = "def f(:\n    pass\n\ndef g():\n    return 1\n"
    engine = ScriptedEngine(["def g():\n    return 2"])
    doc = make_doc(text)
    edit = await fix_edit(doc, point(4, 5), "wrong value", asker(engine, tmp_path))
    assert apply(doc, edit).endswith("def g():\n    return 2\n")


async def test_unchanged_and_empty_replies_are_retried_then_errors(tmp_path: Path) -> None:
    original = "def mean(values):\n    total = sum(values)\n    return total / len(values)"
    engine = ScriptedEngine([original, FIXED])
    edit = await fix_edit(make_doc(), MEAN_RANGE, "x", asker(engine, tmp_path))
    assert edit.new_text == FIXED
    assert "the code is unchanged" in engine.prompts[1]
    with pytest.raises(ActionError, match="proposed no change, even after a retry"):
        engine = ScriptedEngine([original, original])
        await fix_edit(make_doc(), MEAN_RANGE, "x", asker(engine, tmp_path))
    with pytest.raises(ActionError, match="returned no code, even after a retry"):
        engine = ScriptedEngine(["```\n```", "```python\n\n```"])
        await fix_edit(make_doc(), MEAN_RANGE, "x", asker(engine, tmp_path))


async def test_language_without_grammar_fixes_whole_lines(tmp_path: Path) -> None:
    text = "let a = 1;\nlet b = a / 0;\nlet c = 3;\n"
    doc = make_doc(text, language=None)
    engine = ScriptedEngine(["```js\nlet b = a / 1;\n```"])
    edit = await fix_edit(doc, point(1, 9), "division by zero", asker(engine, tmp_path))
    assert edit.range == types.Range(types.Position(1, 0), types.Position(1, 14))
    assert apply(doc, edit) == "let a = 1;\nlet b = a / 1;\nlet c = 3;\n"


async def test_explain_targets_the_enclosing_function(tmp_path: Path) -> None:
    engine = ScriptedEngine(["```markdown\nComputes the **mean**.\n```"])
    title, markdown = await explain_markdown(make_doc(), point(4, 8), asker(engine, tmp_path))
    assert title == "`mean`"
    assert markdown.startswith("# Explanation of `mean`\n\nComputes the **mean**.\n")
    assert "def mean(values):" in engine.prompts[0] and "LIMIT" not in engine.prompts[0]


def test_explain_files_are_private(tmp_path: Path) -> None:
    files = ExplainFiles()
    try:
        path = files.write("`mean` / odd:name", "# hi\n")
        assert path.read_text() == "# hi\n"
        assert path.name == "mean_odd_name.md"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        files.cleanup()
    assert not path.exists()


def test_command_arguments() -> None:
    assert parse_location(["file:///a.py", {"line": 2, "character": 4}]) == (
        "file:///a.py",
        point(2, 4),
    )
    rng = {"start": {"line": 1, "character": 0}, "end": {"line": 3, "character": 2}}
    assert parse_location(["file:///a.py", rng])[1] == types.Range(
        types.Position(1, 0), types.Position(3, 2)
    )
    reversed_range = {"start": {"line": 3, "character": 2}, "end": {"line": 1, "character": 0}}
    assert parse_range(reversed_range) == types.Range(types.Position(1, 0), types.Position(3, 2))
    # The LSP-shaped object some clients build from their request parameters.
    lsp_shaped = {"textDocument": {"uri": "file:///a.py"}, "position": {"line": 2, "character": 4}}
    assert parse_location([lsp_shaped]) == ("file:///a.py", point(2, 4))
    lsp_shaped["range"] = rng
    assert parse_location([lsp_shaped, "why"])[1] == types.Range(
        types.Position(1, 0), types.Position(3, 2)
    )
    for bad in (
        [],
        ["file:///a.py"],
        [{"textDocument": {"uri": 5}}],
        [1, {"line": 0}],
        ["file:///a.py", {"line": "x"}],
        ["u", 5],
    ):
        with pytest.raises(ActionError):
            parse_location(bad)


BROKEN = (
    "def low_stock(items):\n"  # 0
    "    for item in items\n"  # 1
    "        print(item)\n"  # 2
)


async def test_a_fix_that_keeps_the_diagnosed_error_is_not_offered(tmp_path: Path) -> None:
    """Fewer errors than before is not enough: the diagnosed problem must go away."""
    doc = make_doc(BROKEN)
    kept = "def low_stock(items):\n    for item in items\n        print(item)\n    return items"
    engine = ScriptedEngine([kept, kept])
    diag = types.Diagnostic(range=point(1, 21), message="expected ':'")
    with pytest.raises(ActionError, match="does not parse .* even after a retry"):
        await fix_edit(doc, diag.range, diag.message, asker(engine, tmp_path))
    # The retry that repairs it is taken.
    fixed = "    for item in items:"
    engine = ScriptedEngine([kept, fixed])
    edit = await fix_edit(doc, diag.range, diag.message, asker(engine, tmp_path))
    assert "for item in items:" in apply(doc, edit)
    assert SyntaxDocument(apply(doc, edit), "python").tree.root_node.has_error is False


async def test_a_fix_never_defines_a_function_twice(tmp_path: Path) -> None:
    """Asked to fix one line, a small model answers with the whole function: that
    replaces the function (not the line, which would nest a second ``def``); a reply
    that defines another existing function again is refused."""
    text = (
        "def helper():\n    return 1\n\n\n"
        "def low_stock(items):\n    total = 0\n    return [i for i in items if i < total]\n"
    )
    doc = make_doc(text)
    selection = types.Range(types.Position(5, 4), types.Position(5, 13))
    whole = "def low_stock(items):\n    total = 5\n    return [i for i in items if i < total]"
    engine = ScriptedEngine([f"```python\n{whole}\n```"])
    edit = await fix_edit(doc, selection, "total should start at 5", asker(engine, tmp_path))
    fixed = apply(doc, edit)
    assert fixed == text.replace("total = 0", "total = 5")
    assert fixed.count("def low_stock") == 1
    again = "def helper():\n    return 5\ntotal = helper()"
    engine = ScriptedEngine([again, again])
    with pytest.raises(ActionError, match="defines `helper` a second time"):
        await fix_edit(doc, selection, "use the helper", asker(engine, tmp_path))
    # The broken function of the issue: the whole function back, with its error fixed.
    broken = make_doc(BROKEN)
    fixed_whole = "def low_stock(items):\n    for item in items:\n        print(item)"
    engine = ScriptedEngine([fixed_whole])
    edit = await fix_edit(broken, point(1, 21), "expected ':'", asker(engine, tmp_path))
    assert apply(broken, edit) == fixed_whole + "\n"


async def test_a_fix_must_satisfy_cpython_where_tree_sitter_is_lenient(tmp_path: Path) -> None:
    """An empty block body: tree-sitter accepts it, CPython says "expected an indented block"."""
    doc = make_doc("def f(items):\n    return 1\n")
    empty_body = "def f(items):\n    for item in items:\n    return 1"
    engine = ScriptedEngine([empty_body, empty_body])
    with pytest.raises(ActionError, match="expected an indented block"):
        await fix_edit(doc, point(1, 4), "loop over items", asker(engine, tmp_path))


async def test_explain_that_echoes_the_prompt_or_says_nothing_is_an_error(
    tmp_path: Path,
) -> None:
    doc = make_doc()
    echo = "Explain `mean` to a colleague who is reading it for the first time.\n"
    for reply, problem in ((echo, "repeated the question"), ("```python\n```", "no explanation")):
        engine = ScriptedEngine([reply])
        with pytest.raises(ActionError, match=problem):
            await explain_markdown(doc, point(3, 5), asker(engine, tmp_path))


async def test_docstring_from_a_reply_without_prose_is_not_offered(tmp_path: Path) -> None:
    from mmlsp.features.actions import docstring_edit

    doc = make_doc()
    engine = ScriptedEngine(['"""\n"""', "def mean(values):"])
    with pytest.raises(ActionError, match="wrote no docstring text"):
        await docstring_edit(doc, point(3, 5), "google", asker(engine, tmp_path))


async def test_explaining_a_selected_function_is_titled_with_its_name(tmp_path: Path) -> None:
    engine = ScriptedEngine(["It computes the mean.", "It computes the mean."])
    whole = types.Range(types.Position(3, 0), types.Position(6, 0))  # the def and its body
    title, _ = await explain_markdown(make_doc(), whole, asker(engine, tmp_path))
    assert title == "`mean`"
    part = types.Range(types.Position(4, 4), types.Position(5, 10))
    title, _ = await explain_markdown(make_doc(), part, asker(engine, tmp_path))
    assert title == "line 5"
