"""Acceptance events end to end: the real server over stdio with the tiny model; every
inline item carries the accept command, running it records an accept that
``mmlsp stats`` then prints, and the delete command deletes the record."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.lsp_helpers import change_doc, inline, lsp_session, open_doc, status, wait_for_state

DOC = "import os\nx = os.path."  # the tiny model writes visible text here


async def execute(client, command: str, arguments: list) -> object:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=arguments)
    )


def plain(value):
    """pygls hands custom results over as namedtuples: back to dicts."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    return value


def stats(cache) -> str:
    env = {**os.environ, "MMLSP_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-m", "mmlsp", "stats"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_accept_command_is_recorded_and_shown_by_stats(tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    async with lsp_session(["--model", str(tiny_model_dir)], cache) as client:
        assert (await wait_for_state(client))["state"] == "ready"
        commands = client.init_result.capabilities.execute_command_provider.commands
        assert "mmlsp.accepted" in commands and "mmlsp.deleteAcceptanceStats" in commands
        uri = "file:///tmp/accept.py"
        open_doc(client, uri, DOC)
        result = await asyncio.wait_for(inline(client, uri, 1, len("x = os.path.")), 60)
        # The default threshold hides nothing here: no prior for the tiny model, no history.
        assert len(result.items) == 1
        item = result.items[0]
        assert item.command is not None and item.command.command == "mmlsp.accepted"
        (argument,) = item.command.arguments
        # As a client does: insert the text, then run the item's command.
        change_doc(client, uri, 2, item.insert_text, (1, len("x = os.path.")))
        await execute(client, item.command.command, item.command.arguments)
        with pytest.raises(JsonRpcException, match="expected"):
            await execute(client, "mmlsp.accepted", [{"id": argument["id"], "how": "bogus"}])
        summary = plain((await status(client))["acceptance"])
        assert summary["enabled"] and summary["gate"] == "none"
        assert summary["storedEvents"] == 1
        assert summary["session"]["accepted_whole"] == 1
        assert summary["session"]["accepted"] == 1
        # A request elsewhere answered: the server is still up after the bad arguments.
        again = await asyncio.wait_for(inline(client, uri, 0, 0), 60)
        assert isinstance(again, types.InlineCompletionList)
    printed = stats(cache)
    assert "accepted 1 whole" in printed, printed
    assert "python" in printed


async def test_delete_command_and_turning_it_off(tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    off = {"acceptanceStats": False}
    async with lsp_session(["--model", str(tiny_model_dir)], cache, off) as client:
        assert (await wait_for_state(client))["state"] == "ready"
        uri = "file:///tmp/off.py"
        open_doc(client, uri, DOC)
        result = await asyncio.wait_for(inline(client, uri, 1, len("x = os.path.")), 60)
        assert result.items and result.items[0].command is not None  # same items either way
        await execute(client, "mmlsp.accepted", result.items[0].command.arguments)
        assert not (cache / "acceptance.sqlite3").exists()
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"mmlsp": {"acceptanceStats": True}})
        )
        await asyncio.sleep(0.2)
        change_doc(client, uri, 2, "p", (1, len("x = os.path.")))
        await asyncio.wait_for(inline(client, uri, 1, len("x = os.path.p")), 60)
        assert (cache / "acceptance.sqlite3").exists()
        said = await execute(client, "mmlsp.deleteAcceptanceStats", [])
        assert "deleted" in str(said)
        assert not (cache / "acceptance.sqlite3").exists()
    assert "No suggestions recorded yet" in stats(cache)
