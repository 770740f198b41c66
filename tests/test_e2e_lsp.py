"""End to end: the real server process, real LSP over stdio, the tiny real model."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types

from tests.lsp_helpers import (
    change_doc,
    inline,
    open_doc,
    status,
    wait_for_diagnostics,
)

# Text where the tiny random model is known to produce visible text (checked below).
TYPING_DOC = "import os\nx = os.path."


async def test_capabilities(client):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider
    assert caps.completion_provider is not None
    sync = caps.text_document_sync
    assert sync.change == types.TextDocumentSyncKind.Incremental


async def test_status_reports_model(client, tiny_model_dir):
    current = await status(client)
    assert current["model"] == str(tiny_model_dir)
    assert current["device"] == "cpu"
    assert current["template"] == "qwen"  # detected from the tokenizer's special tokens


async def test_load_progress_was_reported(client):
    kinds = [type(v).__name__ for reports in client.progress_reports.values() for v in reports]
    assert "WorkDoneProgressBegin" in kinds and "WorkDoneProgressEnd" in kinds


async def test_syntax_diagnostics_on_open_and_change(client):
    uri = "file:///tmp/broken.py"
    open_doc(client, uri, "def f(:\n    pass\n")
    diagnostics = await wait_for_diagnostics(client, uri)
    assert diagnostics, "expected a syntax error"
    first = diagnostics[0]
    assert first.severity == types.DiagnosticSeverity.Error
    assert first.range.start.line == 0
    assert first.range.start.character == 6
    assert first.source == "mmlsp"

    # Fixing the error clears the diagnostics (published after the debounce).
    change_doc(client, uri, 2, ")", (0, 6))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if not client.diagnostics[uri]:
            break
    assert not client.diagnostics[uri]


async def test_diagnostic_columns_are_utf16(client):
    uri = "file:///tmp/emoji.py"
    # The emoji takes two UTF-16 units, so the stray 中 starts at column 15.
    open_doc(client, uri, 'print("é" "😀" 中)\n')
    diagnostics = await wait_for_diagnostics(client, uri)
    assert [(d.range.start, d.range.end) for d in diagnostics] == [
        (types.Position(0, 15), types.Position(0, 16))
    ]


async def test_non_python_documents_get_no_syntax_errors(client):
    uri = "file:///tmp/app.js"
    open_doc(client, uri, "function f( {\n", language_id="javascript")
    assert not await wait_for_diagnostics(client, uri)


async def test_inline_completion_answers(client):
    uri = "file:///tmp/typing.py"
    open_doc(client, uri, TYPING_DOC)
    result = await asyncio.wait_for(inline(client, uri, 1, len("x = os.path.")), 60)
    assert isinstance(result, types.InlineCompletionList)
    assert len(result.items) == 1
    item = result.items[0]
    assert item.insert_text.strip()
    assert "\n" not in item.insert_text  # single-line position
    assert item.range == types.Range(types.Position(1, 12), types.Position(1, 12))


async def test_completion_fallback_answers(client):
    uri = "file:///tmp/typing2.py"
    open_doc(client, uri, TYPING_DOC)
    result = await asyncio.wait_for(
        client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(1, 12),
            )
        ),
        60,
    )
    assert result.is_incomplete
    assert len(result.items) == 1
    edit = result.items[0].text_edit
    assert edit.range == types.Range(types.Position(1, 12), types.Position(1, 12))
    assert edit.new_text.strip()


async def test_rapid_typing_answers_only_the_last_request(client):
    uri = "file:///tmp/burst.py"
    base = "import os\nx = os.path"
    open_doc(client, uri, base)
    typed = ".join"
    requests = []
    for i, char in enumerate(typed):
        change_doc(client, uri, i + 2, char, (1, len("x = os.path") + i))
        requests.append(asyncio.ensure_future(inline(client, uri, 1, len("x = os.path") + i + 1)))
    results = await asyncio.wait_for(asyncio.gather(*requests), 60)
    # Every superseded request ended with an empty answer; the last one has content.
    assert [len(r.items) for r in results[:-1]] == [0] * (len(typed) - 1)
    assert len(results[-1].items) == 1
    # And it is the same suggestion an unhurried request gives for the same text.
    again = await inline(client, uri, 1, len("x = os.path.join"))
    assert again.items[0].insert_text == results[-1].items[0].insert_text


async def test_stale_position_and_unknown_uri_get_empty_results(client):
    uri = "file:///tmp/short.py"
    open_doc(client, uri, "x = 1\n")
    far = await inline(client, uri, 99, 0)
    assert not far.items
    unknown = await inline(client, "file:///nowhere/never-opened.py", 0, 0)
    assert not unknown.items
    past_eol = await inline(client, uri, 0, 500)  # past the end of the line: clamped
    assert isinstance(past_eol, types.InlineCompletionList)
    assert (await status(client))["state"] == "ready"  # still serving


async def test_close_clears_diagnostics(client):
    uri = "file:///tmp/closing.py"
    open_doc(client, uri, "def (:\n")
    assert await wait_for_diagnostics(client, uri)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    for _ in range(100):
        await asyncio.sleep(0.02)
        if not client.diagnostics[uri]:
            break
    assert not client.diagnostics[uri]
    assert not (await inline(client, uri, 0, 0)).items


async def test_other_languages_get_completions(client):
    uri = "file:///tmp/app.ts"
    open_doc(client, uri, TYPING_DOC, language_id="typescript")
    result = await inline(client, uri, 1, 12)
    assert len(result.items) == 1 and result.items[0].insert_text.strip()


async def test_cancel_request_stops_generation(client):
    """A cancelled request answers with a cancel error and its generation never runs.

    A first request keeps the single generation worker busy (about 64 tokens), so the
    second is still queued when its $/cancelRequest arrives.
    """
    busy_uri, uri = "file:///tmp/busy.py", "file:///tmp/cancel.py"
    open_doc(client, busy_uri, "import sys\nprint(")
    open_doc(client, uri, TYPING_DOC)
    before = await status(client)
    busy = asyncio.ensure_future(inline(client, busy_uri, 1, 6))
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(1, 12),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me"
        )
    )
    await asyncio.sleep(0)  # let the request go out first
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(pending, 30)
    assert (await asyncio.wait_for(busy, 30)).items
    for _ in range(500):
        current = await status(client)
        if current["generations"] >= before["generations"] + 2:
            break
        await asyncio.sleep(0.01)
    assert current["cancelled"] == before["cancelled"] + 1
    assert current["last_finish_reason"] == "cancelled"
    assert current["last_generated_tokens"] == 0
