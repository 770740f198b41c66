"""One streamed exchange with an inference server: POST the body, read the SSE stream,
apply the request's stops after every chunk, and end early on cancel or deadline.

Ending early closes the HTTP stream, which is how OpenAI-compatible servers learn to
stop generating. Transport errors propagate as httpx's, for the engine's retry policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from mmlsp.engine.base import BackendError, FinishReason, GenerationRequest
from mmlsp.engine.remote_errors import http_error, redact_url
from mmlsp.engine.sse import SSEDecoder, SSEEvent, parse_event

# How often a waiting stream checks the request's cancel event and deadline (s).
POLL_S = 0.02


@dataclass
class Stream:
    """What one streamed request produced so far."""

    text: str = ""
    chunks: int = 0
    started: bool = False  # response headers received
    finish: FinishReason | None = None
    cut: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    server_reason: str | None = None


@dataclass(frozen=True)
class Exchange:
    """Where to send a request, and what its error messages name."""

    client: httpx.AsyncClient
    url: str
    body: dict[str, Any]
    model: str  # for an HTTP error's message
    key_env: str  # likewise (the variable's name, never the key)
    where: str  # the redacted server URL


async def run_stream(exchange: Exchange, request: GenerationRequest, out: Stream) -> None:
    """Run one exchange into ``out``, watching the request's cancel event and deadline.

    The exchange runs as its own task, so a request still waiting for a slow server's
    headers or next token notices cancellation within ``POLL_S``. Cancelling that task
    leaves its ``async with`` and so closes the response and the connection the server
    streams into: that is what stops the server.
    """
    task = asyncio.ensure_future(_exchange(exchange, request, out))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=POLL_S)
            if not task.done() and (reason := request.interrupted()) is not None:
                out.finish = reason
                task.cancel()
                break
    finally:
        if not task.done():
            task.cancel()
        # Let the cancelled exchange close its stream before we return.
        await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled():
        task.result()  # re-raise its error


async def _exchange(exchange: Exchange, request: GenerationRequest, out: Stream) -> None:
    async with exchange.client.stream("POST", exchange.url, json=exchange.body) as response:
        out.started = True
        if response.status_code != 200:
            content = await response.aread()
            raise http_error(
                response.status_code, content, redact_url(exchange.url), exchange.model,
                exchange.key_env,
            )  # fmt: skip
        decoder = SSEDecoder()
        pieces = response.aiter_text()
        try:
            async for piece in pieces:
                for event in decoder.feed(piece):
                    if _take(event, request, out, exchange.where):
                        return
        finally:
            # Close the byte stream now: left to the garbage collector, an abandoned
            # iterator kept the connection, and the server streaming into it, alive
            # after a cancel or a stop.
            await pieces.aclose()  # type: ignore[attr-defined]  # an async generator
        for event in decoder.flush():
            if _take(event, request, out, exchange.where):
                return
        if out.finish is None:
            # Neither [DONE] nor a finish reason: the body ended early.
            raise httpx.RemoteProtocolError("stream ended without a finish")


def _take(event: SSEEvent, request: GenerationRequest, out: Stream, where: str) -> bool:
    """Apply one event; True when generation is over."""
    chunk = parse_event(event.data)
    if chunk.error is not None:
        raise BackendError(
            f"the inference server at {where} failed while generating: {chunk.error}",
            "server",
        )
    if chunk.prompt_tokens is not None:
        out.prompt_tokens = chunk.prompt_tokens
    if chunk.completion_tokens is not None:
        out.completion_tokens = chunk.completion_tokens
    if chunk.text:
        out.chunks += 1
        out.text += chunk.text
        if (cut := request.stop_at(out.text)) is not None:
            out.cut, out.finish = cut, "stop"
            return True
        if (reason := request.interrupted()) is not None:
            out.finish = reason
            return True
    if chunk.finish_reason is not None:
        out.server_reason = chunk.finish_reason
        out.finish = "length" if chunk.finish_reason == "length" else "eos"
    if chunk.done:
        out.finish = out.finish or "eos"
        return True
    return False
