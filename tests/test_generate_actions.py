"""Generate code from a comment, Implement a stub, and edit by instruction, without a
server: targets, indentation, the parse check refusing a broken reply, confinement.

The model is a ``ScriptedEngine`` test double, so each test knows the exact reply.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.features.actions import (
    ActionError,
    ActionService,
    comment_run_at,
    generate_edit,
    implement_edit,
    instruction_edit,
    list_actions,
    stub_at,
)
from mmlsp.features.client import ClientCapabilities
from mmlsp.session import Session
from tests.scripted_engine import ScriptedEngine, scripted_host
from tests.test_action_service import FakeClient
from tests.test_actions import apply, asker, make_doc, point

TEXT = (
    "import csv\n"  # 0
    "\n"  # 1
    "\n"  # 2
    "def load(path, threshold):\n"  # 3
    "    rows = []\n"  # 4
    "    # parse the CSV and keep the rows\n"  # 5
    "    # whose total is above the threshold\n"  # 6
    "    return rows\n"  # 7
    "\n"  # 8
    "\n"  # 9
    "class Stats:\n"  # 10
    "    def mean(self, values):\n"  # 11
    '        """The mean of ``values``, 0.0 when there are none."""\n'  # 12
    "        pass\n"  # 13
    "\n"  # 14
    "    def total(self, values): ...\n"  # 15
    "\n"  # 16
    "    def size(self):\n"  # 17
    "        return 1\n"  # 18
    "\n"  # 19
    "\n"  # 20
    "#!not a description\n"  # 21
    "# fmt: off\n"  # 22
    "x = '''\n"  # 23
    "# a string, not a comment\n"  # 24
    "'''\n"  # 25
)
LOOP = (
    "for row in csv.DictReader(open(path)):\n"
    "    if float(row['total']) > threshold:\n"
    "        rows.append(row)"
)


def titles(doc, rng) -> list[str]:
    actions = list_actions(doc, rng, [], None, docstring_style="google", resolvable=True)
    return [a.title for a in actions]


def test_targets_are_found_without_the_model() -> None:
    doc = make_doc(TEXT)
    run = comment_run_at(doc, point(6, 8))
    assert run is not None and (run.first_line, run.last_line, run.indent) == (5, 6, "    ")
    assert run.description == (
        "parse the CSV and keep the rows\nwhose total is above the threshold"
    )
    for line in (21, 22, 24, 4):  # a shebang, a pragma, a string, code
        assert comment_run_at(doc, point(line, 1)) is None
    assert "Generate code with AI" in titles(doc, point(5, 10))
    assert "Generate code with AI" not in titles(doc, point(24, 3))
    # Stubs: a docstring and pass, a one-line `...`; not a function with a body.
    assert stub_at(doc, point(11, 9)).name == "mean"
    assert stub_at(doc, point(13, 9)).name == "mean"  # in its body too
    assert stub_at(doc, point(15, 9)).name == "total"
    assert stub_at(doc, point(17, 9)) is None and stub_at(doc, point(3, 5)) is None
    assert titles(doc, point(11, 9))[0] == "Implement with AI"
    assert "Implement with AI" not in titles(doc, point(17, 9))
    listed = list_actions(doc, point(11, 9), [], None, docstring_style="google", resolvable=False)
    assert listed[0].data["action"] == "implement" and listed[0].edit is None
    assert listed[0].command.command == "mmlsp.applyAction"


async def test_generate_inserts_below_the_comment_indented(tmp_path: Path) -> None:
    doc = make_doc(TEXT)
    reply = f"Here you go:\n```python\n# parse the CSV and keep the rows\n{LOOP}\n```\n"
    engine = ScriptedEngine([reply])
    edit = await generate_edit(doc, point(5, 6), asker(engine, tmp_path))
    # Inserted at the end of the comment's last line: nothing else is touched.
    assert edit.range == point(6, 40)
    new = apply(doc, edit)
    assert new.split("\n")[7:10] == [
        "    for row in csv.DictReader(open(path)):",
        "        if float(row['total']) > threshold:",
        "            rows.append(row)",
    ]
    ast.parse(new)
    assert "whose total is above the threshold" in engine.prompts[0]
    assert "rows = []" in engine.prompts[0]  # the code around it is shown


async def test_generate_at_module_level_and_in_a_file_without_a_newline(tmp_path: Path) -> None:
    text = "import csv\n\n# read the rows of data.csv into a list named rows"
    doc = make_doc(text)
    engine = ScriptedEngine(["```python\nwith open('data.csv') as f:\n    rows = list(f)\n```"])
    new = apply(doc, await generate_edit(doc, point(2, 0), asker(engine, tmp_path)))
    assert new == text + "\nwith open('data.csv') as f:\n    rows = list(f)"


async def test_generate_where_the_comment_is_the_whole_body(tmp_path: Path) -> None:
    """A function whose body is only the comment does not parse; a reply with the whole
    function gives its body (HumanEval's prompts in bench/generate.py are such)."""
    text = "def double(x: int) -> int:\n    # Return x doubled.\n    # >>> double(2)\n\n\nY = 1\n"
    doc = make_doc(text)
    reply = 'def double(x):\n    """Double it."""\n    return x * 2\n\nprint(double(2))'
    engine = ScriptedEngine([f"```python\n{reply}\n```"])
    edit = await generate_edit(doc, point(1, 6), asker(engine, tmp_path))
    assert edit.range == point(2, 19) and edit.new_text == "\n    return x * 2"
    ast.parse(apply(doc, edit))


async def test_generate_refuses_broken_code_after_one_retry(tmp_path: Path) -> None:
    engine = ScriptedEngine(["for row in rows\n    print(row", "while (:\n"])
    with pytest.raises(ActionError, match="does not parse .* nothing was changed"):
        await generate_edit(make_doc(TEXT), point(5, 6), asker(engine, tmp_path))
    assert len(engine.prompts) == 2 and "is not usable" in engine.prompts[1]
    with pytest.raises(ActionError, match="no comment describing code"):
        await generate_edit(make_doc(TEXT), point(4, 6), asker(ScriptedEngine(), tmp_path))


async def test_generate_that_redefines_a_function_is_refused(tmp_path: Path) -> None:
    redefined = "def load(path, threshold):\n    return []"
    engine = ScriptedEngine([redefined, f"```\n{LOOP}\n```"])
    doc = make_doc(TEXT)
    new = apply(doc, await generate_edit(doc, point(5, 6), asker(engine, tmp_path)))
    assert new.count("def load") == 1 and "rows.append(row)" in new
    assert "rewrites the whole function" in engine.prompts[1]


async def test_generate_takes_the_new_lines_from_a_reply_that_echoes_the_function(
    tmp_path: Path,
) -> None:
    """A small model answers with the whole function around the comment: its new lines
    are the answer, whether it keeps the comment or not."""
    doc = make_doc(TEXT)
    body = "\n".join("    " + line for line in LOOP.split("\n"))
    kept = (
        "def load(path, threshold):\n    rows = []\n"
        "    # parse the CSV and keep the rows\n    # whose total is above the threshold\n"
        f"{body}\n    return rows"
    )
    dropped = f"def load(path, threshold):\n    rows = []\n{body}\n    return rows\n"
    # The rest of what it echoes may differ (it implements a stub below, say).
    echoed_context = "import csv\n\n" + dropped + "\nclass Stats:\n    pass\n"
    for reply in (kept, dropped, echoed_context):
        engine = ScriptedEngine([f"```python\n{reply}\n```"])
        edit = await generate_edit(doc, point(5, 6), asker(engine, tmp_path))
        assert edit.range == point(6, 40)
        assert edit.new_text == "\n" + body
    # One that also changes the function's own lines is refused, with the reason.
    changed = dropped.replace("return rows", "return sorted(rows)")
    engine = ScriptedEngine([changed, changed])
    with pytest.raises(ActionError, match="rewrote `load` instead of writing the new code"):
        await generate_edit(doc, point(5, 6), asker(engine, tmp_path))


async def test_implement_replaces_only_the_body_and_keeps_the_docstring(tmp_path: Path) -> None:
    reply = (
        "```python\n"
        "def mean(self, values):\n"
        '    """The mean."""\n'
        "    if not values:\n"
        "        return 0.0\n"
        "    return sum(values) / len(values)\n"
        "```"
    )
    engine = ScriptedEngine([reply])
    doc = make_doc(TEXT)
    edit = await implement_edit(doc, point(11, 9), asker(engine, tmp_path))
    # From after the docstring to the end of `pass`: the signature and docstring stay.
    assert edit.range == types.Range(types.Position(12, 62), types.Position(13, 12))
    new = apply(doc, edit)
    assert new.split("\n")[11:16] == [
        "    def mean(self, values):",
        '        """The mean of ``values``, 0.0 when there are none."""',
        "        if not values:",
        "            return 0.0",
        "        return sum(values) / len(values)",
    ]
    assert new.split("\n")[16:] == TEXT.split("\n")[14:]
    ast.parse(new)


async def test_implement_a_one_line_stub_and_a_bare_body_reply(tmp_path: Path) -> None:
    engine = ScriptedEngine(["return sum(values)"])
    doc = make_doc(TEXT)
    new = apply(doc, await implement_edit(doc, point(15, 9), asker(engine, tmp_path)))
    assert "    def total(self, values):\n        return sum(values)\n\n    def size" in new
    # A body that is only `pass` again is no implementation: retried, then refused.
    engine = ScriptedEngine(["def mean(self, values):\n    pass", "..."])
    with pytest.raises(ActionError, match="wrote no body, even after a retry"):
        await implement_edit(doc, point(11, 9), asker(engine, tmp_path))
    with pytest.raises(ActionError, match="no function here whose body is only"):
        await implement_edit(doc, point(17, 9), asker(ScriptedEngine(), tmp_path))


async def test_implement_refuses_a_body_that_does_not_parse(tmp_path: Path) -> None:
    engine = ScriptedEngine(["return sum(values", "if values\n  return 1"])
    with pytest.raises(ActionError, match="implementation: it does not parse"):
        await implement_edit(make_doc(TEXT), point(15, 9), asker(engine, tmp_path))


async def test_implement_shows_workspace_definitions_of_names_it_uses(tmp_path: Path) -> None:
    other = tmp_path / "money.py"
    other.write_text('def round_cents(amount):\n    """Round to cents."""\n    return amount\n')
    index = WorkspaceIndex()
    index.add_roots([tmp_path])
    index.scan()
    text = 'def price(amount):\n    """Round with round_cents and add tax."""\n    ...\n'
    engine = ScriptedEngine(["return round_cents(amount) * 1.2"])
    doc = make_doc(text)
    edit = await implement_edit(doc, point(0, 5), asker(engine, tmp_path), index)
    assert edit.new_text == "\n    return round_cents(amount) * 1.2"
    assert "def round_cents(amount):" in engine.prompts[0]
    assert "Round to cents." in engine.prompts[0]


async def test_instruction_replaces_exactly_the_selection(tmp_path: Path) -> None:
    doc = make_doc(TEXT)
    # Lines 4 to 7 selected linewise (to column 0 of line 8).
    selection = types.Range(types.Position(4, 0), types.Position(8, 0))
    reply = "```python\nrows: list[dict] = []\nreturn rows\n```"
    engine = ScriptedEngine([reply])
    edit = await instruction_edit(doc, selection, "add type hints", asker(engine, tmp_path))
    assert edit.range == types.Range(types.Position(4, 4), types.Position(7, 15))
    new = apply(doc, edit)
    assert new.split("\n")[3:6] == [
        "def load(path, threshold):",
        "    rows: list[dict] = []",
        "    return rows",
    ]
    assert "Instruction: add type hints" in engine.prompts[0]
    assert "Code just before" in engine.prompts[0]
    # A whole definition is sent alone: the code around it only tempts a small model
    # to rewrite that instead.
    engine = ScriptedEngine(["def size(self) -> int:\n    return 1"])
    whole = types.Range(types.Position(17, 4), types.Position(18, 16))
    await instruction_edit(doc, whole, "add type hints", asker(engine, tmp_path))
    assert "Code just before" not in engine.prompts[0] and "def mean" not in engine.prompts[0]


async def test_instruction_refusals(tmp_path: Path) -> None:
    doc = make_doc(TEXT)
    selection = types.Range(types.Position(17, 4), types.Position(18, 16))
    broken = ScriptedEngine(["def size(self) -> int\n    return 1", "def size(self:"])
    with pytest.raises(ActionError, match="edit: it does not parse"):
        await instruction_edit(doc, selection, "add type hints", asker(broken, tmp_path))
    same = "def size(self):\n    return 1"
    unchanged = ScriptedEngine([same, same])
    with pytest.raises(ActionError, match="proposed no change"):
        await instruction_edit(doc, selection, "add type hints", asker(unchanged, tmp_path))
    with pytest.raises(ActionError, match="no instruction given"):
        await instruction_edit(doc, selection, "  ", asker(ScriptedEngine(), tmp_path))
    # A reply that rewrites the whole class around the method keeps only the method.
    whole = "class Stats:\n    def size(self) -> int:\n        return 1\n    def other(self): ..."
    engine = ScriptedEngine([whole])
    edit = await instruction_edit(doc, selection, "add type hints", asker(engine, tmp_path))
    assert edit.new_text == "def size(self) -> int:\n        return 1"


async def test_edit_selection_command_applies_through_the_editor(tmp_path: Path) -> None:
    uri = "file:///t/stats.py"
    session = Session(1_000_000)
    session.open(types.TextDocumentItem(uri, "python", 4, TEXT))
    client = FakeClient(ClientCapabilities(versioned_edits=True, work_done_progress=True))
    engine = ScriptedEngine(["def size(self) -> int:\n    return 1"])
    settings = Settings()
    actions = ActionService(session, lambda: settings, scripted_host(engine, tmp_path), client)
    rng = {"start": {"line": 17, "character": 0}, "end": {"line": 19, "character": 0}}
    assert await actions.execute("mmlsp.editSelection", [uri, rng, "add type hints"]) is True
    (edit,) = client.edits
    (change,) = edit.document_changes
    assert change.text_document.version == 4
    assert change.edits[0].range == types.Range(types.Position(17, 4), types.Position(18, 16))
    titles = [v.title for _, v in client.progress if isinstance(v, types.WorkDoneProgressBegin)]
    assert titles == ["mmlsp: editing the code"]
    with pytest.raises(ActionError, match="no instruction given"):
        await actions.execute("mmlsp.editSelection", [uri, rng])
    assert client.notices[-1][0].startswith("mmlsp.editSelection: expected arguments")
    # Generate and Implement are commands too.
    engine.replies = ["return sum(values)"]
    await actions.execute("mmlsp.implement", [uri, {"line": 15, "character": 9}])
    assert client.edits[-1].document_changes[0].edits[0].new_text == "\n        return sum(values)"
