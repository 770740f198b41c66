"""Next-edit suggestions over LSP.

End to end (the real server over stdio, the tiny random model): the request is
answered in the protocol's shape, stale and invalid requests are handled, the status
reports the format. The feature with a scripted model (exact replies, in process, a
real Session): edits come back as LSP ranges, typing what was predicted keeps the rest
without a model call, accepting marks the history, a newer request cancels the older.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from mmlsp.config import Settings
from mmlsp.features.next_edit import ACCEPT_COMMAND, NextEdits
from mmlsp.next_edit import Inputs, build_request
from mmlsp.session import Session
from tests.lsp_helpers import change_doc, open_doc, status
from tests.scripted_engine import ScriptedEngine, scripted_host

SOURCE = "def total(prices, quantities):\n    return sum(prices)\n\n\nprint(total([1], [2]))\n"


def params(uri: str, version: int | None, line: int, character: int) -> dict:
    return {
        "textDocument": {"uri": uri, "version": version},
        "position": {"line": line, "character": character},
    }


# -- over stdio, the tiny model ------------------------------------------------------------


async def test_next_edit_request_is_answered_in_the_protocol_shape(client):
    uri = "file:///tmp/next_edit_shape.py"
    open_doc(client, uri, SOURCE)
    change_doc(client, uri, 2, ", tax", (0, 28))
    result = await client.protocol.send_request_async("mmlsp/nextEdit", params(uri, 2, 0, 33))
    edits = result._asdict()["edits"] if hasattr(result, "_asdict") else result["edits"]
    assert isinstance(edits, list)
    for edit in edits:  # the random model may or may not propose something parseable
        fields = edit._asdict()
        assert set(fields) == {"text", "textDocument", "range", "command"}
        assert fields["command"].command == ACCEPT_COMMAND
    # A request for an older version gets nothing (the client is behind).
    stale = await client.protocol.send_request_async("mmlsp/nextEdit", params(uri, 1, 0, 0))
    assert list(stale.edits) == []
    current = await status(client)
    assert current["nextEdit"].format == "generic"  # a model without next-edit training
    assert current["nextEdit"].requests >= 2


async def test_next_edit_with_invalid_params_gets_an_error(client):
    for bad in (None, {"textDocument": {"uri": 3}}, params("file:///x.py", 1, -1, 0)):
        with pytest.raises(Exception) as caught:
            await client.protocol.send_request_async("mmlsp/nextEdit", bad)
        assert "-32602" in repr(caught.value) or "textDocument" in str(caught.value)


# -- the feature, a scripted model ---------------------------------------------------------


def feature(tmp_path, replies, settings: Settings | None = None):
    settings = settings or Settings()
    engine = ScriptedEngine(replies)
    host = scripted_host(engine, tmp_path)
    session = Session(settings.max_file_bytes)
    return NextEdits(session, lambda: settings, host), session, engine, host


def open_and_edit(session: Session, uri: str, before: str, after: str) -> None:
    session.open(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=before))
    session.change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=after)],
        )
    )


def rewrite_reply(text: str, offset: int, old: str, new: str) -> str:
    """The scripted model's answer: the region the pipeline will ask for, rewritten."""
    inputs = Inputs(uri="u", path="a.py")
    request, *_ = build_request(text, offset, inputs, Settings(), len)
    assert old in request.region
    return request.region.replace(old, new) + "<|file_sep|>"


def test_edits_come_back_as_ranges_and_typing_keeps_the_rest(tmp_path):
    uri = "file:///w/a.py"
    after = SOURCE.replace("quantities)", "quantities, tax)")
    offset = after.index("tax") + 3
    reply = rewrite_reply(after, offset, "[2]))", "[2], tax))")
    nes, session, engine, host = feature(tmp_path, [reply])
    try:
        open_and_edit(session, uri, SOURCE, after)
        result = asyncio.run(nes.request(params(uri, 2, 0, 34)))
        [edit] = result["edits"]
        assert edit["text"] == ", tax"
        assert edit["range"]["start"] == {"line": 4, "character": 20}
        assert edit["textDocument"] == {"uri": uri, "version": 2}
        # The user types ", t" where the edit goes: the rest comes back, no model call.
        typed = after.replace("[2]))", "[2], t))")
        session.change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=typed)],
            )
        )
        again = asyncio.run(nes.request(params(uri, 3, 4, 23)))
        assert [e["text"] for e in again["edits"]] == ["ax"]
        assert len(engine.prompts) == 1 and nes.counts["kept_alive"] == 1
        # Accepting it: the history marks the change as an accepted suggestion.
        done = typed.replace("[2], t))", "[2], tax))")
        session.change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=4),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=done)],
            )
        )
        nes.accepted([{"uri": uri, "id": again["edits"][0]["command"]["arguments"][0]["id"]}])
        assert nes.counts["accepted"] == 1
        assert session.history.entries(uri)[0].accepted
    finally:
        host.shutdown()


def test_turned_off_or_stale_gives_nothing_without_a_model_call(tmp_path):
    uri = "file:///w/a.py"
    off = dataclasses.replace(Settings(), next_edit=False)
    nes, session, engine, host = feature(tmp_path, ["x"], off)
    try:
        open_and_edit(session, uri, SOURCE, SOURCE + "\n")
        assert asyncio.run(nes.request(params(uri, 2, 0, 0))) == {"edits": []}
        assert engine.prompts == [] and nes.reasons["turned off"] == 1
        with pytest.raises(JsonRpcInvalidParams):
            asyncio.run(nes.request({"position": {"line": 0, "character": 0}}))
    finally:
        host.shutdown()


def test_a_newer_request_cancels_the_one_in_flight(tmp_path):
    uri = "file:///w/a.py"
    engine = ScriptedEngine(["", ""], seconds=5.0)
    host = scripted_host(engine, tmp_path)
    session = Session(Settings().max_file_bytes)
    nes = NextEdits(session, Settings, host)
    open_and_edit(session, uri, SOURCE, SOURCE + "\n")

    async def both():
        first = asyncio.ensure_future(nes.request(params(uri, 2, 0, 0)))
        await asyncio.sleep(0.3)
        second = asyncio.ensure_future(nes.request(params(uri, 2, 1, 0)))
        await asyncio.sleep(0.3)
        nes.changed(uri)  # a new edit stops the second too
        return await asyncio.wait_for(asyncio.gather(first, second), 4.0)

    try:
        first, second = asyncio.run(both())
        assert first == second == {"edits": []}
        assert nes.reasons["cancelled"] == 2
    finally:
        host.shutdown()


def test_an_edit_at_the_cursor_comes_back_as_an_inline_completion(tmp_path):
    uri = "file:///w/a.py"
    after = SOURCE.replace("quantities)", "quantities, tax)")
    line = after.splitlines().index("print(total([1], [2]))")
    cursor = types.Position(line, len("print(total([1], [2]"))
    offset = after.index("[2]))") + 3
    reply = rewrite_reply(after, offset, "[2]))", "[2], tax))")
    elsewhere = rewrite_reply(after, 0, "sum(prices)", "sum(p * q for p, q in pairs)")
    nes, session, engine, host = feature(tmp_path, [reply, elsewhere])
    try:
        open_and_edit(session, uri, SOURCE, after)
        items = asyncio.run(nes.inline(uri, cursor)).items
        assert [item.insert_text for item in items] == [", tax"]
        assert items[0].range.start == items[0].range.end == cursor
        assert items[0].command.command == ACCEPT_COMMAND
        # An edit on another line is not an inline completion.
        nes.closed(uri)
        open_and_edit(session, uri, SOURCE, after)
        assert asyncio.run(nes.inline(uri, types.Position(0, 0))).items == []
        assert len(engine.prompts) == 2
    finally:
        host.shutdown()
