"""Backend faults end to end: the real mmlsp server over stdio, its openai backend
pointed at a server that is down, rejects the key, does not know the model, lacks
the endpoint, is too slow, or drops the stream mid-response (issue 8's fault
injection). Each fault is shown to the user once, with a message that names the
cause, and the server keeps serving: syntax diagnostics and status still answer.

The faulty servers are ``FakeServer``s (a stdlib HTTP server in this process): a
real llama.cpp server cannot be made to answer 401, 404 or 501 on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.llama_server import FakeRequest, FakeServer, completion_chunk, refused_port
from tests.lsp_helpers import (
    inline,
    lsp_session,
    open_doc,
    status,
    wait_for_diagnostics,
    wait_for_state,
)

BROKEN = "import os\n\ndef f(:\n    pass\n\nvalue = os.path.join('a', 'b')\n"


def answer(status_code: int, payload: dict[str, Any]) -> Callable[[FakeRequest], None]:
    return lambda request: request.json(status_code, payload)


def hang(_request: FakeRequest) -> None:
    time.sleep(20)


def drop_mid_stream(request: FakeRequest) -> None:
    request.start_stream()
    request.event(completion_chunk("os.path"))
    request.drop()


@dataclass
class Fault:
    name: str
    handle: Callable[[FakeRequest], None] | None  # None: nothing listens (refused)
    # Text each of these messages must contain, each shown exactly once.
    expect: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ("fake-model",)


FAULTS = [
    Fault("down", None, ("cannot reach the inference server", "connection refused")),
    Fault(
        "wrong-model",
        answer(404, {"error": {"message": "The model `nope` does not exist.", "code": 404}}),
        ("does not list model 'nope'", "does not serve model 'nope' (HTTP 404)"),
        {"model": "nope"},
        models=("served-model",),
    ),
    Fault(
        "unauthorized",
        answer(401, {"detail": "Invalid API key"}),
        ("rejected the request", "HTTP 401, unauthorized"),
    ),
    Fault(
        "no-endpoint",
        answer(501, {"error": {"message": "not implemented"}}),
        ("does not implement", "HTTP 501"),
    ),
    Fault(
        "slow",
        hang,
        ("produced no tokens before the completion deadline", "slow or overloaded"),
        {"timeBudgetMs": 700},
    ),
    Fault(
        "dropped-stream",
        drop_mid_stream,
        ("closed the connection in the middle of a response",),
    ),
]


async def shown(client: Any, text: str, timeout: float = 10.0) -> list[str]:
    """The showMessage texts containing ``text``, once at least one has arrived."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [m.message for m in client.messages if text in m.message]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
async def test_fault_is_shown_once_and_the_server_keeps_serving(
    fault: Fault, tmp_path: Path
) -> None:
    server = FakeServer(fault.handle, models=fault.models) if fault.handle else None
    base_url = server.base_url + "/v1" if server else f"http://127.0.0.1:{refused_port()}/v1"
    flags = ["--backend", "openai", "--base-url", base_url, "--model", "fake-model"]
    try:
        async with lsp_session(flags, tmp_path / "cache", fault.options) as client:
            ready = await wait_for_state(client)
            assert ready["state"] == "ready", ready
            assert ready["backend"] == "openai"
            uri = "file:///tmp/faults/broken.py"
            open_doc(client, uri, BROKEN)
            # Syntax diagnostics do not wait for (or on) the backend.
            assert await wait_for_diagnostics(client, uri)
            for _ in range(4):  # a few keystrokes' worth of requests
                result = await asyncio.wait_for(inline(client, uri, 5, 15), 30)
                assert result is None or not result.items
            for text in fault.expect:
                messages = await shown(client, text)
                assert len(messages) == 1, (text, [m.message for m in client.messages])
            # Every message names the server, never anything secret, and is not repeated.
            texts = [m.message for m in client.messages]
            assert len(texts) == len(set(texts)), texts
            # Still serving: a new document's diagnostics and the status request.
            other = "file:///tmp/faults/other.py"
            open_doc(client, other, "def g(:\n")
            assert await wait_for_diagnostics(client, other)
            current = await status(client)
            assert current["state"] == "ready" and current["in_flight"] == 0
    finally:
        if server is not None:
            server.close()
