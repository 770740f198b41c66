"""The completion feature wired to the syntax tree, the replace range and the index.

``Completions`` is driven as the server drives it, with the server's own
``SyntaxStore`` and ``WorkspaceIndex``; the model is a ``ScriptedEngine`` because these
tests need exact model output (the tiny random model covers the real plumbing).
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.features.completion import Completions, completion_items, inline_items
from mmlsp.syntax.store import SyntaxStore
from tests.scripted_engine import ScriptedEngine, scripted_host

SETTINGS = Settings(debounce_max_ms=0)


def completions_for(
    engine: ScriptedEngine, tmp_path: Path, docs: dict[str, str]
) -> tuple[Completions, SyntaxStore, WorkspaceIndex]:
    store = SyntaxStore(SETTINGS.max_file_bytes)
    index = WorkspaceIndex()
    for uri, text in docs.items():
        store.open(uri, "python", text)
        index.opened(uri, text)
    return Completions(scripted_host(engine, tmp_path), store.get, index), store, index


async def test_the_document_tree_decides_shape_and_parse_check(tmp_path: Path) -> None:
    """The parse check (tree-sitter) cuts a block that would add a syntax error.

    Without the document's tree (the state before the wiring) the broken second line
    would be shown as is.
    """
    uri = "file:///w/f.py"
    text = "def f(a):\n    \n\nprint(f(1))\n"
    engine = ScriptedEngine(["x = a + 1\n    return x +"])
    completions, _, _ = completions_for(engine, tmp_path, {uri: text})
    got = await completions.suggestion_at(uri, text, types.Position(1, 4), SETTINGS)
    assert got is not None and got.text == "x = a + 1"


async def test_auto_closed_bracket_becomes_a_replace_range(tmp_path: Path) -> None:
    uri = "file:///w/g.py"
    text = "y = max()\n"
    position = types.Position(0, 8)  # between the auto-closed brackets
    engine = ScriptedEngine(["a, b) + 1"])
    completions, _, _ = completions_for(engine, tmp_path, {uri: text})
    got = await completions.suggestion_at(uri, text, position, SETTINGS)
    assert got is not None and (got.text, got.replace_chars) == ("a, b) + 1", 1)
    replaced = types.Range(position, types.Position(0, 9))
    item = inline_items(got, position).items[0]
    assert (item.insert_text, item.range) == ("a, b) + 1", replaced)
    assert completion_items(got, position).items[0].text_edit.range == replaced

    # Typed ahead: the rest of the suggestion still replaces the auto-closed ")".
    typed = "y = max(a)\n"
    ahead = await completions.suggestion_at(uri, typed, types.Position(0, 9), SETTINGS)
    assert ahead is not None and ahead.source == "typeahead"
    assert (ahead.text, ahead.replace_chars) == (", b) + 1", 1)
    assert len(engine.prompts) == 1


async def test_nothing_auto_closed_means_an_empty_range(tmp_path: Path) -> None:
    uri = "file:///w/h.py"
    text = "y = max(\n"
    engine = ScriptedEngine(["a, b)"])
    completions, _, _ = completions_for(engine, tmp_path, {uri: text})
    position = types.Position(0, 8)
    got = await completions.suggestion_at(uri, text, position, SETTINGS)
    assert got is not None and got.replace_chars == 0
    assert inline_items(got, position).items[0].range == types.Range(position, position)


async def test_definitions_from_other_open_documents_lead_the_prompt(tmp_path: Path) -> None:
    helpers = "def scale(values, factor=2):\n    '''Multiply each value.'''\n    return []\n"
    main = "from helpers import scale\n\nresult = scale(data)\nprint(res"
    engine = ScriptedEngine(["ult)"])
    completions, _, _ = completions_for(
        engine, tmp_path, {"file:///w/helpers.py": helpers, "file:///w/main.py": main}
    )
    position = types.Position(3, len("print(res"))
    await completions.suggestion_at("file:///w/main.py", main, position, SETTINGS)
    # No FIM template in the scripted vocabulary: pieces are labelled with comments.
    assert engine.prompts[0] == (
        "# path: helpers.py\n"
        "def scale(values, factor=2):\n"
        '    """Multiply each value."""\n'
        "\n"
        "# path: main.py\n" + main
    )
    off = Settings(debounce_max_ms=0, cross_file_tokens=0)
    other = main.removesuffix("res") + "x"
    await completions.suggestion_at("file:///w/main.py", other, types.Position(3, 7), off)
    assert engine.prompts[1] == other


async def test_an_empty_answer_still_records_the_model_work(tmp_path: Path) -> None:
    """The ``recent`` records (mmlsp/status, the latency bench) count every model call:
    a reply that post-processing empties still prefilled and decoded tokens."""
    uri = "file:///w/e.py"
    text = "def f(a):\n    return a\n"
    engine = ScriptedEngine(["   "])  # whitespace only: nothing to show
    completions, _, _ = completions_for(engine, tmp_path, {uri: text})
    got = await completions.suggestion_at(uri, text, types.Position(1, 12), SETTINGS)
    assert got is None and len(engine.prompts) == 1
    record = completions.stats()["recent"][-1]
    assert record["outcome"] == "empty"
    assert record["prompt_tokens"] == len(engine.prompts[0].split())
    assert record["generated"] == 0
