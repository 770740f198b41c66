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


async def test_editor_settings_cannot_send_code_or_keys_elsewhere(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """Issue 22, class 6: a client that forwards workspace settings (a cloned repo's
    .vscode/settings.json, a project-local Neovim config) must not be able to point
    mmlsp at another server, nor make it send a key there. Only the user's own launch
    (flags, environment) sets backend, baseUrl and apiKeyEnv."""
    from tests.llama_server import FakeServer

    monkeypatch.setenv("MMLSP_STOLEN_KEY", "secret-value")
    seen: list[str] = []

    def record(request) -> None:
        seen.append(request.path)
        request.json(500, {"error": "should never be reached"})

    with FakeServer(record, models=("m",)) as elsewhere:
        redirect = {
            "backend": "openai",
            "baseUrl": elsewhere.base_url + "/v1",
            "apiKeyEnv": "MMLSP_STOLEN_KEY",
        }
        flags = ["--model", str(tiny_model_dir)]
        async with lsp_session(flags, tmp_path / "cache", redirect) as client:
            assert (await wait_for_state(client))["state"] == "ready"
            client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"mmlsp": redirect})
            )
            uri = "file:///tmp/hostile/redirect.py"
            open_doc(client, uri, "import os\nx = os.path\n")
            await asyncio.wait_for(inline(client, uri, 1, 11), 60)
            current = await status(client)
            assert current["backend"] == "local" and current["state"] == "ready"
            settings = current["settings"]._asdict()
            assert settings["backend"] == "local" and settings["apiKeyEnv"] == ""
            warnings = [m.message for m in client.messages if "where you start mmlsp" in m.message]
            assert any("--base-url" in w for w in warnings), client.messages
        assert seen == [], "code went to a server the user never configured"


async def test_typing_never_waits_behind_background_work(tmp_path: Path) -> None:
    """Issue 22, class 5: hover explanations that stream forever used to hold every
    request slot, and the next completion came back after 87 s, empty. Background work
    now runs one at a time and gives way: a completion cancels it at the model."""
    import threading
    import time

    from tests.llama_server import FakeRequest, FakeServer, completion_chunk

    chat_streams = {"open": 0, "closed": 0}
    lock = threading.Lock()

    def handle(request: FakeRequest) -> None:
        request.start_stream()
        if request.path.endswith("/chat/completions"):
            with lock:
                chat_streams["open"] += 1
            try:
                for _ in range(3000):  # forever, for a test: 60 s
                    delta = {"content": "Explains at length. "}
                    request.event({"choices": [{"index": 0, "delta": delta}]})
                    time.sleep(0.02)
            except OSError:
                with lock:
                    chat_streams["closed"] += 1
            return
        request.event(completion_chunk("path.join('a', 'b')"))
        request.event(completion_chunk("", "stop"))
        request.event("[DONE]")
        request.end_stream()

    with FakeServer(handle, models=("fake-model",)) as backend:
        flags = ["--backend", "openai", "--base-url", backend.base_url + "/v1"]
        flags += ["--model", "fake-model"]
        async with lsp_session(flags, tmp_path / "cache", {"reviewOnSave": "off"}) as client:
            assert (await wait_for_state(client))["state"] == "ready"
            uri = "file:///tmp/hostile/fair.py"
            defs = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(6))
            text = defs + "import os\nvalue = os."
            open_doc(client, uri, text)
            for i in range(6):  # six hovers, each asking for an endless explanation
                await client.text_document_hover_async(
                    types.HoverParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        position=types.Position(4 * i, 5),
                    )
                )
            started = time.monotonic()
            result = await asyncio.wait_for(inline(client, uri, 24, 11), 60)
            waited = time.monotonic() - started
            assert result is not None and result.items, "the completion came back empty"
            assert "path.join" in result.items[0].insert_text
            # Only one background stream ran at a time (the one in flight is cancelled by
            # the completion; that the backend sees its stream close is test_openai_unit's).
            assert chat_streams["open"] <= 2, chat_streams
            print(f"completion after six endless hovers: {waited:.2f} s")
