"""End to end: Generate code, Implement and edit by instruction through real LSP
(stdio), with the tiny model.

The tiny model's weights are random, so these tests check plumbing (what is listed
without a model call, that a resolve answers with an edit confined to its target or a
clear error, the commands' arguments and errors), not the code written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.lsp_helpers import (
    apply_edit,
    code_action_params,
    only_edit,
    open_doc,
    point,
    start_action_client,
    status,
)

TEXT = (
    "import csv\n"  # 0
    "\n"  # 1
    "\n"  # 2
    "def load(path, threshold):\n"  # 3
    "    rows = []\n"  # 4
    "    # parse the CSV and keep the rows whose total is above the threshold\n"  # 5
    "    return rows\n"  # 6
    "\n"  # 7
    "\n"  # 8
    "def mean(values):\n"  # 9
    '    """The mean of ``values``."""\n'  # 10
    "    pass\n"  # 11
)
CLEAR = ("nothing was changed", "no change", "no body", "no code")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    session, client = await start_action_client(
        tiny_model_dir, tmp_path_factory.mktemp("cache"), "visual-studio-code"
    )
    yield client
    await session.__aexit__(None, None, None)


async def test_commands_are_advertised_and_actions_listed_without_the_model(client) -> None:
    commands = client.init_result.capabilities.execute_command_provider.commands
    assert {"mmlsp.generateCode", "mmlsp.implement", "mmlsp.editSelection"} <= set(commands)
    uri = "file:///tmp/e2e/generate-list.py"
    open_doc(client, uri, TEXT)
    before = (await status(client))["generations"]
    on_comment = await client.text_document_code_action_async(code_action_params(uri, point(5, 12)))
    assert [a.title for a in on_comment] == ["Generate code with AI"]
    on_stub = await client.text_document_code_action_async(code_action_params(uri, point(9, 5)))
    assert [a.title for a in on_stub][:2] == [
        "Implement with AI",
        "Update docstring (google) with AI",
    ]
    assert all(a.edit is None for a in on_comment + on_stub)
    assert (await status(client))["generations"] == before


async def resolve_or_fail(client, action: types.CodeAction) -> types.CodeAction | None:
    """The resolved action, or None after checking the error is a clear one."""
    try:
        return await asyncio.wait_for(client.code_action_resolve_async(action), 180)
    except JsonRpcException as exc:
        assert any(reason in str(exc) for reason in CLEAR), exc
        return None


async def test_resolved_generate_inserts_below_the_comment_or_fails_clearly(client) -> None:
    uri = "file:///tmp/e2e/generate.py"
    open_doc(client, uri, TEXT)
    (action,) = await client.text_document_code_action_async(code_action_params(uri, point(5, 8)))
    before = (await status(client))["generations"]
    resolved = await resolve_or_fail(client, action)
    assert (await status(client))["generations"] - before in (1, 2)
    if resolved is not None:
        edit = only_edit(resolved.edit, uri)
        assert edit.range == point(5, 72)  # an insertion at the end of the comment
        assert edit.new_text.startswith("\n    ")
        new = apply_edit(TEXT, edit)
        assert new.startswith(TEXT.split("    return rows")[0])
        assert new.endswith("    return rows" + TEXT.split("    return rows")[1])


async def test_resolved_implement_replaces_only_the_body_or_fails_clearly(client) -> None:
    uri = "file:///tmp/e2e/implement.py"
    open_doc(client, uri, TEXT)
    actions = await client.text_document_code_action_async(code_action_params(uri, point(9, 5)))
    resolved = await resolve_or_fail(client, actions[0])
    if resolved is not None:
        edit = only_edit(resolved.edit, uri)
        assert edit.range == types.Range(types.Position(10, 33), types.Position(11, 8))
        assert apply_edit(TEXT, edit).startswith(TEXT.split("    pass")[0])


async def test_edit_selection_applies_through_the_editor_or_fails_clearly(client) -> None:
    uri = "file:///tmp/e2e/edit.py"
    open_doc(client, uri, TEXT)
    applied = len(client.applied_edits)
    rng = {"start": {"line": 3, "character": 0}, "end": {"line": 7, "character": 0}}
    try:
        result = await asyncio.wait_for(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="mmlsp.editSelection", arguments=[uri, rng, "add type hints"]
                )
            ),
            180,
        )
    except JsonRpcException as exc:
        assert any(reason in str(exc) for reason in CLEAR), exc
        assert len(client.applied_edits) == applied
    else:
        assert result is True
        edit = only_edit(client.applied_edits[-1].edit, uri)
        assert edit.range == types.Range(types.Position(3, 0), types.Position(6, 15))
    assert (await status(client))["state"] == "ready"


async def test_bad_requests_get_clear_errors(client) -> None:
    uri = "file:///tmp/e2e/edit-errors.py"
    open_doc(client, uri, TEXT)
    rng = {"start": {"line": 4, "character": 0}, "end": {"line": 5, "character": 0}}
    with pytest.raises(JsonRpcException, match="no instruction given"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="mmlsp.editSelection", arguments=[uri, rng])
        )
    with pytest.raises(JsonRpcException, match="no comment describing code"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="mmlsp.generateCode", arguments=[uri, {"line": 4, "character": 4}]
            )
        )
    with pytest.raises(JsonRpcException, match="no function here whose body is only"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="mmlsp.implement", arguments=[uri, {"line": 3, "character": 4}]
            )
        )
    # Each is also shown to the user (window/showMessage), named by its command.
    for _ in range(100):
        if any(
            m.message.startswith("mmlsp: mmlsp.implement: no function") for m in client.messages
        ):
            break
        await asyncio.sleep(0.02)
    shown = [m.message for m in client.messages]
    assert any(m.startswith("mmlsp: mmlsp.editSelection: expected arguments") for m in shown)
    assert any(m.startswith("mmlsp: mmlsp.implement: no function") for m in shown)
