"""Token healing end to end: the real server over stdio with the tiny model, the cursor
inside a word; its suggestion is the healed pipeline's, and the unhealed one with
``tokenHealing`` off."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from mmlsp.complete import complete
from mmlsp.config import Settings
from mmlsp.engine import EngineHost, LoadSpec
from tests.lsp_helpers import inline, lsp_session, open_doc, wait_for_state

DOC = "import os\n\n\ndef size(path):\n    if os.path.exists(path):\n        retu\n    return 0\n"
LINE, COLUMN = 5, len("        retu")


def in_process(model_dir: Path, cache: Path) -> dict[bool, str | None]:
    """The pipeline's suggestion at the cursor, healing on and off, in this process."""
    from mmlsp.engine.local import LocalEngine

    engine = LocalEngine(str(model_dir), device="cpu", cache_dir=cache)
    host = EngineHost(factory=lambda *_args: engine)
    host.load(LoadSpec("loaded", "cpu", "auto", str(cache)))
    assert host.wait_ready(60).state == "ready"
    offset = DOC.index("retu") + 4
    out = {}
    for healing in (True, False):
        settings = Settings(token_healing=healing, time_budget_ms=60_000)
        outcome = asyncio.run(complete(DOC, offset, settings, host, language="python"))
        out[healing] = outcome.completion.text if outcome.completion else None
    engine.close()
    return out


async def test_the_server_heals_a_word_the_cursor_is_in(tiny_model_dir, tmp_path):
    expected = await asyncio.to_thread(in_process, tiny_model_dir, tmp_path / "local")
    assert expected[True] and expected[True] != expected[False]
    # A time budget a loaded CPU meets: the whole answer, as in this process.
    options = {"model": str(tiny_model_dir), "suggestionThreshold": 0, "timeBudgetMs": 60_000}
    async with lsp_session([], tmp_path / "server", init_options=options) as client:
        assert (await wait_for_state(client))["state"] == "ready"
        open_doc(client, "file:///tmp/healed.py", DOC)
        result = await asyncio.wait_for(inline(client, "file:///tmp/healed.py", LINE, COLUMN), 60)
        assert isinstance(result, types.InlineCompletionList) and result.items
        assert result.items[0].insert_text == expected[True]

        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"mmlsp": {"tokenHealing": False}})
        )
        await asyncio.sleep(0.5)
        open_doc(client, "file:///tmp/unhealed.py", DOC)
        result = await asyncio.wait_for(inline(client, "file:///tmp/unhealed.py", LINE, COLUMN), 60)
        shown = result.items[0].insert_text if result and result.items else None
        assert shown == expected[False]
