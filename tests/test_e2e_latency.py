"""End to end, through the real server: typed-ahead reuse, speculative next suggestion,
and a burst of keystrokes that must leave nothing stuck and the caches bounded."""

from __future__ import annotations

import asyncio

from tests.lsp_helpers import change_doc, inline, open_doc, status

DOC = "import os\nx = os.path."
LINE = 1
COL = len("x = os.path.")


def plain(value):
    """pygls hands custom results back as namedtuples; make them dicts and lists again."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


async def completion_stats(client) -> dict:
    return plain((await status(client))["completion"])


async def settle(client) -> dict:
    """Wait until no generation is running (background ones included)."""
    for _ in range(600):
        stats = await completion_stats(client)
        if stats["activeJobs"] == 0:
            return stats
        await asyncio.sleep(0.02)
    raise AssertionError(f"generation still running: {stats}")


async def test_typed_ahead_text_is_answered_without_a_model_call(client):
    uri = "file:///tmp/typeahead.py"
    open_doc(client, uri, DOC)
    first = await inline(client, uri, LINE, COL)
    suggestion = first.items[0].insert_text
    assert len(suggestion) >= 2
    calls = (await completion_stats(client))["counts"].get("model_calls", 0)

    # Type the first character of the suggestion: the rest comes from the cache.
    change_doc(client, uri, 2, suggestion[0], (LINE, COL))
    typed = await inline(client, uri, LINE, COL + 1)
    assert typed.items[0].insert_text == suggestion[1:]
    # Backspace, and the whole suggestion is back, still with no model call.
    change_doc(client, uri, 3, "", (LINE, COL), (LINE, COL + 1))
    back = await inline(client, uri, LINE, COL)
    assert back.items[0].insert_text == suggestion
    stats = await completion_stats(client)
    assert stats["counts"].get("model_calls", 0) == calls
    assert [r["outcome"] for r in stats["recent"][-2:]] == ["typeahead", "typeahead"]


async def test_accepting_a_suggestion_starts_the_next_one(client):
    uri = "file:///tmp/accept.py"
    open_doc(client, uri, DOC)
    suggestion = (await inline(client, uri, LINE, COL)).items[0].insert_text
    before = (await completion_stats(client))["counts"]
    change_doc(client, uri, 2, suggestion, (LINE, COL))  # the editor inserts it (Tab)
    stats = await settle(client)
    assert stats["counts"].get("speculative_started", 0) == before.get("speculative_started", 0) + 1
    # The editor now asks at the end of the accepted text: answered from the
    # speculative result (or, if the model had nothing to add, it asks the model).
    await inline(client, uri, LINE, COL + len(suggestion))
    stats = await completion_stats(client)
    if stats["recent"][-1]["outcome"] == "typeahead":
        assert stats["counts"].get("model_calls", 0) == before.get("model_calls", 0)


async def test_a_burst_of_200_keystrokes_leaves_nothing_stuck(client):
    uri = "file:///tmp/burst200.py"
    text = "import os\n\n\ndef f(path):\n    "
    open_doc(client, uri, text)
    line, col = 4, 4
    typed = ("return os.path.join(path, 'x')  # comment\n    " * 5)[:200]
    requests = []
    for i, char in enumerate(typed):
        if char == "\n":
            change_doc(client, uri, i + 2, char, (line, col))
            line, col = line + 1, 0
        else:
            change_doc(client, uri, i + 2, char, (line, col))
            col += 1
        requests.append(asyncio.ensure_future(inline(client, uri, line, col)))
        if i % 20 == 0:
            await asyncio.sleep(0.005)  # let some requests run, as an editor would
    results = await asyncio.wait_for(asyncio.gather(*requests), 120)
    assert len(results) == 200
    stats = await settle(client)
    assert stats["activeJobs"] == 0
    assert stats["typeaheadEntries"] <= 32
    assert stats["kvCacheEntries"] <= 4
    assert len(stats["recent"]) <= 1024
    server = await status(client)
    assert server["state"] == "ready"
    # Nothing is kept per message: pygls 2.1 kept a future for every notification.
    assert server["handling"] <= 1, server["handling"]
    # And the server still answers normally afterwards.
    final = await asyncio.wait_for(inline(client, uri, line, col), 60)
    assert final is not None
