"""The adaptive debounce fed by what happens to requests, driven as the server drives
``Completions``: answered requests, requests superseded by the next keystroke, and
requests the client cancels. The model is a slow ``ScriptedEngine`` so that typing can
outrun it; the tiny random model covers the real plumbing elsewhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.features.completion import Completions
from mmlsp.features.debounce import SUPERSEDED_SHARE
from tests.scripted_engine import ScriptedEngine, scripted_host

SETTINGS = Settings(debounce_max_ms=200, typeahead=False)
URI = "file:///w/pace.py"


def request(completions: Completions, text: str) -> asyncio.Future:
    position = types.Position(0, len(text))
    return asyncio.ensure_future(completions.suggestion_at(URI, text, position, SETTINGS))


def type_char(completions: Completions, text: str, char: str) -> str:
    text += char
    completions.changed(URI, text, SETTINGS)
    return text


async def test_request_outcomes_decide_whether_the_next_request_waits(tmp_path: Path) -> None:
    engine = ScriptedEngine(["+ 1"] * 40, seconds=0.3)
    completions = Completions(scripted_host(engine, tmp_path))
    text = "y = "
    # The user reads each suggestion before typing on: every request is answered.
    for char in "abc":
        text = type_char(completions, text, char)
        assert (await request(completions, text)) is not None
    pace = completions.paces[URI]
    assert pace.superseded == 0.0
    assert [r["outcome"] for r in completions.recent] == ["model"] * 3

    # Typing on every 10 ms over a 300 ms model: each request is overtaken by the next.
    pending = []
    for char in "defghi":
        text = type_char(completions, text, char)
        pending.append(request(completions, text))
        await asyncio.sleep(0.01)
    results = await asyncio.gather(*pending)
    assert results[-1] is not None  # the last keystroke still gets its answer
    outcomes = [r["outcome"] for r in list(completions.recent)[3:]]
    assert outcomes.count("superseded") + outcomes.count("debounced") == 5, outcomes
    assert pace.superseded is not None and pace.superseded >= SUPERSEDED_SHARE
    # So a request now, typed faster than the model answers, waits before calling it.
    text = type_char(completions, text, "j")
    assert pace.delay(pace.last_edit or 0.0, SETTINGS.debounce_max_ms / 1000) > 0
    # Not when the requests had been answered: the user then waits for each answer.
    pace.superseded = 0.0
    assert pace.delay(pace.last_edit or 0.0, SETTINGS.debounce_max_ms / 1000) == 0

    # A request the client cancels (it sends $/cancelRequest when the user types on)
    # counts as overtaken as well.
    task = request(completions, text)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert completions.recent[-1]["outcome"] == "cancelled"
    assert pace.superseded > 0
