"""Hostile input against the real server over stdio (issue 22): odd text, settings
that would send code elsewhere, and background work that must not starve typing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from tests.lsp_helpers import inline, lsp_session, open_doc, status, wait_for_state


async def test_a_lone_surrogate_breaks_neither_completion_nor_explain(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """JSON lets a client send "\\ud800"; tokenizers reject it. It must cost nothing
    but that character."""
    async with lsp_session(["--model", str(tiny_model_dir)], tmp_path / "cache") as client:
        assert (await wait_for_state(client))["state"] == "ready"
        uri = "file:///tmp/hostile/surrogate.py"
        text = 'name = "\ud800"\n\n\ndef greet(who):\n    return "hi " + who\n\n\nx = greet(name)\n'
        open_doc(client, uri, text)
        result = await asyncio.wait_for(inline(client, uri, 7, 15), 60)
        assert result is not None
        markdown = await asyncio.wait_for(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="mmlsp.explain",
                    arguments=[uri, {"line": 3, "character": 5}, {"show": False}],
                )
            ),
            120,
        )
        assert markdown.startswith("# Explanation of `greet`")
        assert not [m for m in client.messages if "generation failed" in m.message]
        assert (await status(client))["state"] == "ready"
