"""LSP fuzzing with hypothesis against the real server process over stdio.

Each example is a sequence of notifications and requests, valid and invalid. After
each one: the server is alive, every request got a response or an LSP error, and the
server's text of every open document equals the client's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from tests.fuzz_driver import ServerDriver, reference_apply, sha256
from tests.lsp_helpers import status

URIS = [
    "file:///fuzz/a.py",
    "file:///fuzz/b%20c.py",
    "file:///fuzz/%C3%A9.js",
    "untitled:Untitled-1",
]
UNKNOWN_URI = "file:///fuzz/never-opened.py"
# Text pieces that stress the layers below: UTF-16 surrogate pairs, CRLF, lone CR,
# separators that str.splitlines treats as breaks but LSP does not, NUL, brackets.
PIECES = [
    "x",
    "é",
    "😀",
    "中",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x0c",
    "\u2028",
    "\x00",
    "(",
    ")",
    "def f(",
    ":",
    "    ",
    "'''",
    "#",
    "import os\n",
    "🐍🐍",
]
EXAMPLES = int(os.environ.get("MMLSP_FUZZ_EXAMPLES", "40"))

texts = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
positions = st.tuples(st.integers(0, 6), st.integers(0, 12))
uris = st.sampled_from(URIS)

operation = st.one_of(
    st.tuples(st.just("open"), uris, texts, st.sampled_from(["python", "javascript", "plaintext"])),
    st.tuples(st.just("change"), uris, positions, positions, texts),
    st.tuples(st.just("replace"), uris, texts),
    st.tuples(st.just("close"), uris),
    st.tuples(
        st.sampled_from(["inline", "completion", "hover", "codeAction"]),
        st.sampled_from([*URIS, UNKNOWN_URI]),
        positions,
    ),
    st.tuples(
        st.just("command"),
        st.sampled_from(["mmlsp.explain", "mmlsp.addDocstring", "mmlsp.fix", "no.such.command"]),
        st.lists(st.one_of(st.none(), st.integers(), texts, st.just({"line": -1})), max_size=3),
    ),
    st.tuples(st.just("resolve"), st.one_of(st.none(), texts, st.integers())),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
)

_ids = itertools.count()
# Totals for the reliability report (printed at teardown; run with -s to see them).
TOTALS = {"sequences": 0, "messages": 0, "requests": 0}


@pytest.fixture(scope="module")
def driver(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    driver = ServerDriver(tiny_model_dir, tmp_path_factory.mktemp("fuzz-cache"))
    yield driver
    driver.close()
    print(f"\nfuzz totals: {TOTALS}")


def _position(pos: tuple[int, int]) -> types.Position:
    return types.Position(line=pos[0], character=pos[1])


async def _run(client, ops: list[tuple[Any, ...]]) -> dict[str, str]:
    """Send the operations, await every request, return the client's open documents."""
    docs: dict[str, str] = {}
    versions: dict[str, int] = {}
    pending: list[tuple[str, asyncio.Future]] = []

    def request(method: str, params: Any) -> None:
        msg_id = f"fuzz-{next(_ids)}"
        future = asyncio.ensure_future(
            client.protocol.send_request_async(method, params, msg_id=msg_id)
        )
        pending.append((msg_id, future))
        TOTALS["requests"] += 1

    for op in ops:
        kind = op[0]
        if kind == "open":
            _, uri, text, language = op
            if uri in docs:
                continue  # reopening an open document is a client bug, not ours to test
            docs[uri], versions[uri] = text, 1
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id=language, version=1, text=text
                    )
                )
            )
        elif kind in ("change", "replace"):
            uri = op[1]
            if uri not in docs:
                continue
            versions[uri] += 1
            if kind == "change":
                _, _, start, end, text = op
                change: Any = types.TextDocumentContentChangePartial(
                    range=types.Range(_position(start), _position(end)), text=text
                )
                docs[uri] = reference_apply(docs[uri], start, end, text)
            else:
                change = types.TextDocumentContentChangeWholeDocument(text=op[2])
                docs[uri] = op[2]
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(
                        uri=uri, version=versions[uri]
                    ),
                    content_changes=[change],
                )
            )
        elif kind == "close":
            uri = op[1]
            if uri in docs:
                del docs[uri]
                client.text_document_did_close(
                    types.DidCloseTextDocumentParams(
                        text_document=types.TextDocumentIdentifier(uri=uri)
                    )
                )
        elif kind in ("inline", "completion", "hover", "codeAction"):
            _, uri, pos = op
            doc = types.TextDocumentIdentifier(uri=uri)
            if kind == "inline":
                request(
                    types.TEXT_DOCUMENT_INLINE_COMPLETION,
                    types.InlineCompletionParams(
                        text_document=doc,
                        position=_position(pos),
                        context=types.InlineCompletionContext(
                            trigger_kind=types.InlineCompletionTriggerKind.Automatic
                        ),
                    ),
                )
            elif kind == "completion":
                request(
                    types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionParams(text_document=doc, position=_position(pos)),
                )
            elif kind == "hover":
                request(
                    types.TEXT_DOCUMENT_HOVER,
                    types.HoverParams(text_document=doc, position=_position(pos)),
                )
            else:
                request(
                    types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionParams(
                        text_document=doc,
                        range=types.Range(_position(pos), _position(pos)),
                        context=types.CodeActionContext(diagnostics=[]),
                    ),
                )
        elif kind == "command":
            request(
                types.WORKSPACE_EXECUTE_COMMAND,
                types.ExecuteCommandParams(command=op[1], arguments=op[2]),
            )
        elif kind == "resolve":
            request(
                types.CODE_ACTION_RESOLVE,
                types.CodeAction(title="fuzz", data=json.loads(json.dumps(op[1]))),
            )
        elif kind == "cancel" and pending:
            msg_id = pending[op[1] % len(pending)][0]
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        TOTALS["messages"] += 1
        await asyncio.sleep(0)

    TOTALS["sequences"] += 1
    for msg_id, future in pending:
        try:
            await asyncio.wait_for(future, 30)
        except TimeoutError:
            raise AssertionError(f"request {msg_id} never answered") from None
        except Exception as exc:  # an LSP error response is a valid answer
            assert type(exc).__name__ != "AssertionError", exc
    return docs


async def _server_texts(client, uris: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for uri in uris:
        state = await client.protocol.send_request_async("mmlsp/documentState", {"uri": uri})
        out[uri] = state._asdict()
    return out


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_fuzz_sequences(driver, ops):
    client = driver.client
    docs = driver.call(_run(client, ops), timeout=120)
    current = driver.call(status(client))
    assert current["state"] == "ready"  # alive and still serving
    states = driver.call(_server_texts(client, list(URIS)))
    for uri in URIS:
        if uri in docs:
            assert states[uri]["open"], uri
            assert states[uri]["sha256"] == sha256(docs[uri]), (uri, docs[uri])
            assert states[uri]["syntaxInSync"] in (True, None)
        else:
            assert not states[uri]["open"], uri
    # Leave no document open for the next example.
    for uri in docs:
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
