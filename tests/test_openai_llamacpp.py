"""The openai backend against a REAL server: llama-cpp-python's OpenAI-compatible
server on loopback, serving the builtin Gemma-3-270M GGUF (the file the in-process
engine loads too). Marked ``llamacpp``; skipped only where llama-cpp-python is not
installed.

* end to end: the real mmlsp server over stdio answers inlineCompletion, a code
  action (resolve) and hover from that server;
* cancellation: a superseded request closes its stream, seen from the server side
  (its "Disconnected from client" log line, and the next request not waiting for the
  abandoned generation to finish: llama-cpp-python runs one generation at a time);
* a model name the server does not list is reported once, clearly.
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from mmlsp.engine import EngineHost, GenerationRequest
from mmlsp.engine.host import LoadSpec
from mmlsp.features.hover import PENDING_NOTE
from tests.llama_server import LlamaServer, llama_server  # noqa: F401 - the fixture
from tests.lsp_helpers import (
    apply_edit,
    code_action_params,
    inline,
    only_edit,
    open_doc,
    point,
    start_action_client,
    status,
    wait_for_diagnostics,
)

pytestmark = pytest.mark.llamacpp

TEXT = (
    "def fibonacci(n):\n"  # 0
    '    """Return the n-th Fibonacci number."""\n'  # 1
    "    if n < 2:\n"  # 2
    "        return n\n"  # 3
    "    \n"  # 4
    "\n"  # 5
    "\n"  # 6
    "def area(width, height):\n"  # 7
    "    return width * height\n"  # 8
)
# Counting goes on for as long as it is allowed to: a generation that never ends by itself.
ENDLESS = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    session, client = await start_action_client(
        "auto",
        tmp_path_factory.mktemp("cache"),
        "visual-studio-code",
        ["--backend", "openai", "--base-url", llama_server.base_url + "/v1"],
        maxNewTokens=24,
        maxNewTokensMultiline=24,
        timeBudgetMs=20000,
    )
    yield client
    await session.__aexit__(None, None, None)


async def test_status_names_the_server_and_the_template_choice(client, llama_server) -> None:  # noqa: F811
    current = await status(client)
    assert current["state"] == "ready" and current["backend"] == "openai"
    assert current["device"] == llama_server.base_url
    assert current["dtype"] == "llama-cpp-python"  # the server kind
    # Gemma-3's tokenizer has no FIM tokens: the server's tokenizer said so.
    assert current["template"] == "none (prefix only)"
    assert current["template_source"] == "server's tokenizer has no FIM tokens (prefix only)"
    assert current["warning"] is None


async def test_inline_completion_from_the_server(client, llama_server) -> None:  # noqa: F811
    uri = "file:///tmp/llama/fib.py"
    open_doc(client, uri, TEXT)
    assert not await wait_for_diagnostics(client, uri)
    before = llama_server.log_text().count("POST /v1/completions")
    result = await asyncio.wait_for(inline(client, uri, 4, 4), 60)
    assert result is not None and result.items, "the server's model suggested nothing"
    assert result.items[0].insert_text.strip()
    assert llama_server.log_text().count("POST /v1/completions") > before


async def test_code_action_resolve_from_the_server(client, llama_server) -> None:  # noqa: F811
    uri = "file:///tmp/llama/area.py"
    open_doc(client, uri, TEXT)
    actions = await client.text_document_code_action_async(code_action_params(uri, point(7, 6)))
    (docstring,) = [a for a in actions if a.kind == types.CodeActionKind.RefactorRewrite]
    before = llama_server.log_text().count("POST /v1/chat/completions")
    try:
        resolved = await asyncio.wait_for(client.code_action_resolve_async(docstring), 120)
    except JsonRpcException as exc:
        # The served model is the base Gemma-3-270M: it may only echo the question,
        # which is refused with a plain reason rather than written into the file.
        assert re.search("repeated the question|no docstring text", str(exc)), exc
        assert llama_server.log_text().count("POST /v1/chat/completions") > before
        return
    assert llama_server.log_text().count("POST /v1/chat/completions") > before
    new = apply_edit(TEXT, only_edit(resolved.edit, uri))
    tree = ast.parse(new)
    area = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "area")
    assert ast.get_docstring(area)


async def test_hover_explanation_from_the_server(client, llama_server) -> None:  # noqa: F811
    uri = "file:///tmp/llama/hover.py"
    open_doc(client, uri, TEXT)
    params = types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(7, 5)
    )
    deadline = time.monotonic() + 120
    while True:  # the first hover may only say the explanation is on its way
        hover = await asyncio.wait_for(client.text_document_hover_async(params), 60)
        assert hover is not None and "area" in hover.contents.value
        tail = (
            hover.contents.value.split("\n---\n")[-1] if "\n---\n" in hover.contents.value else ""
        )
        if tail.strip() and PENDING_NOTE not in tail:
            break  # the explanation the server's model wrote
        assert time.monotonic() < deadline, hover.contents.value
        await asyncio.sleep(0.5)
    assert "POST /v1/chat/completions" in llama_server.log_text()


def remote_host(server: LlamaServer, model: str = "auto") -> EngineHost:
    host = EngineHost()
    host.load(
        LoadSpec(model, "cpu", "auto", "/nonexistent", backend="openai", base_url=server.base_url)
    )
    assert host.wait_ready(60).state == "ready", host.status
    return host


@pytest.mark.parametrize("how", ["task-cancelled", "cancel-event"])
def test_superseded_request_closes_its_stream_at_the_server(
    llama_server: LlamaServer,  # noqa: F811
    how: str,
) -> None:
    """Cancel a long generation after its first tokens; the server must stop it.

    llama-cpp-python generates one request at a time (here without interrupting one
    for the next), so the follow-up request can only be fast if the abandoned
    generation ended at the server. Its log shows the disconnect too.
    """
    host = remote_host(llama_server)

    async def run() -> tuple[float, float, int]:
        # How long the server takes per token right now (the machine may be busy).
        start = time.monotonic()
        probe = await host.generate(GenerationRequest(ENDLESS, 8))
        per_token = (time.monotonic() - start) / max(1, probe.generated_tokens)
        disconnects = llama_server.log_text().count("Disconnected from client")
        first_text = asyncio.Event()
        request = GenerationRequest(ENDLESS, 400, stop_at=lambda _t: first_text.set())
        task = asyncio.ensure_future(host.generate(request))
        await asyncio.wait_for(first_text.wait(), 60)
        if how == "task-cancelled":  # $/cancelRequest: the awaiting task is cancelled
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:  # an edit supersedes it: completions set the request's cancel event
            request.cancel.set()
            assert (await task).finish_reason == "cancelled"
        start = time.monotonic()
        follow = await host.generate(GenerationRequest("x = ", 1))
        assert follow.generated_tokens >= 1
        return time.monotonic() - start, per_token, disconnects

    follow_s, per_token, disconnects = asyncio.run(run())
    host.shutdown()
    # Had the stream stayed open, the follow-up would wait for ~390 more tokens.
    assert follow_s < 100 * per_token, (follow_s, per_token)
    deadline = time.monotonic() + 10
    while llama_server.log_text().count("Disconnected from client") <= disconnects:
        assert time.monotonic() < deadline, llama_server.log_tail()
        time.sleep(0.1)


async def test_unknown_model_name_is_reported_once(llama_server, tmp_path: Path) -> None:  # noqa: F811
    from tests.lsp_helpers import lsp_session, wait_for_state

    flags = ["--backend", "openai", "--base-url", llama_server.base_url]
    async with lsp_session([*flags, "--model", "no-such-model"], tmp_path / "cache") as client:
        ready = await wait_for_state(client)
        assert ready["state"] == "ready"
        assert "does not list model 'no-such-model'" in ready["warning"]
        uri = "file:///tmp/llama/model.py"
        open_doc(client, uri, TEXT)
        await wait_for_diagnostics(client, uri)
        for _ in range(2):
            await asyncio.wait_for(inline(client, uri, 4, 4), 60)
        shown = [m.message for m in client.messages if "does not list model" in m.message]
        assert len(shown) == 1 and llama_server.model_id in shown[0]


async def test_superseding_edit_over_lsp_closes_the_stream(llama_server, tmp_path: Path) -> None:  # noqa: F811
    """The editor's view: a request in flight, then an edit that does not type what it
    generates (a deletion) and the next request. The server logs the disconnect of the
    first stream right after the edit, long before its ~400 tokens could be done."""
    from tests.lsp_helpers import change_doc, lsp_session, wait_for_state

    flags = ["--backend", "openai", "--base-url", llama_server.base_url]
    options = {
        "maxNewTokens": 400,
        "maxNewTokensMultiline": 400,
        "timeBudgetMs": 120000,
        "typeahead": False,
    }
    text = "counts = [" + ENDLESS
    async with lsp_session(flags, tmp_path / "cache", options) as client:
        assert (await wait_for_state(client))["state"] == "ready"
        uri = "file:///tmp/llama/count.py"
        open_doc(client, uri, text)
        posts = llama_server.log_text().count("POST /v1/completions")
        disconnects = llama_server.log_text().count("Disconnected from client")
        first = asyncio.ensure_future(inline(client, uri, 0, len(text)))
        deadline = time.monotonic() + 30
        while llama_server.log_text().count("POST /v1/completions") == posts:
            assert time.monotonic() < deadline, "the first request never reached the server"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a few tokens into its ~400
        change_doc(client, uri, 2, "", (0, len(text) - 1), (0, len(text)))
        changed = time.monotonic()
        second = asyncio.ensure_future(inline(client, uri, 0, len(text) - 1))
        # The server sees the first stream close soon after the edit (under a second
        # alone), while its ~400 tokens take it 15 s or more on this CPU; a stream run to
        # its end logs no disconnect at all. 15 s leaves room for a loaded CI machine
        # (5 s once failed at 5.004 s in a full-suite run).
        while llama_server.log_text().count("Disconnected from client") <= disconnects:
            assert time.monotonic() - changed < 15, llama_server.log_tail()
            await asyncio.sleep(0.05)
        superseded = await asyncio.wait_for(first, 30)
        assert superseded is None or not superseded.items  # cancelled, nothing to show
        answered = await asyncio.wait_for(second, 120)
        assert answered is not None and answered.items
