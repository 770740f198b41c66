"""Remote engine: an OpenAI-compatible inference server (vLLM, SGLang, llama.cpp, Ollama).

mmlsp stays the client: it builds the FIM prompt itself (templates, context and
post-processing stay ours) and sends it to ``/v1/completions`` as an SSE stream,
or, where configured, to llama.cpp's native ``/infill``. Chat requests (code
actions, hover, review) go to ``/v1/chat/completions`` with the messages, so the
server applies the model's own chat template.

The same streaming stops as the in-process engine apply (``stream.py``): the
caller's ``stop_at`` after every chunk, cancellation and the deadline.

Failures become ``BackendError`` with a fixed, readable message per cause
(``remote_errors.py``), and this engine keeps the failure streak, so the server shows
each once. Connection errors are retried a bounded number of times with backoff; HTTP
errors never are. The API key is read from the environment variable named by
``apiKeyEnv`` and never appears in messages, logs or status. What the server is and
serves is asked once at load (``probe.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import httpx

from mmlsp.engine.base import (
    BackendError,
    ChatPrompt,
    Engine,
    EngineError,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    render_plain_chat,
)
from mmlsp.engine.probe import probe_server
from mmlsp.engine.remote_errors import (
    backoff_s,
    http_error,
    redact_url,
    server_root,
    should_retry,
    transport_failure,
)
from mmlsp.engine.spec import RemoteSpec
from mmlsp.engine.sse import SSEDecoder, SSEEvent, parse_event
from mmlsp.engine.stream import Exchange, Stream, run_stream
from mmlsp.engine.templates import TemplateEvidence, template_from_name
from mmlsp.engine.vision import VisionPrompt
from mmlsp.prompt.fim import FimPrompt, FimTemplate

# Defined in the modules this one was split into; importable from here as before.
__all__ = [
    "BackendError",
    "OpenAIEngine",
    "RemoteSpec",
    "SSEDecoder",
    "SSEEvent",
    "backoff_s",
    "http_error",
    "parse_event",
    "redact_url",
    "server_root",
    "should_retry",
    "template_from_name",
]

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]
# After a request found the server unreachable, how long later requests fail fast
# (without a network attempt); retries per request are RemoteSpec.retries.
DOWN_COOLDOWN_S = 1.0
# For the server's /infill endpoint, which applies the model's own FIM template to the
# parts of a ``FimPrompt``: these markers only spell the prompt's text (logs, counts).
INFILL_SPLIT = FimTemplate(
    name="server-infill",
    prefix_marker="\ue000",
    suffix_marker="\ue001",
    middle_marker="\ue002",
    stop=(),
)


class OpenAIEngine(Engine):
    """A model served by an OpenAI-compatible server, reached over HTTP(S) with httpx."""

    asynchronous = True  # the server batches: requests are awaited, several at once

    def __init__(self, spec: RemoteSpec, progress: Progress = lambda _m, _p: None) -> None:
        self.spec = spec
        self.root = server_root(spec.base_url)
        if not re.match(r"^https?://[^/]+", self.root):
            raise EngineError(
                f"baseUrl must be an http:// or https:// URL, got {redact_url(self.root)!r}"
            )
        self.where = redact_url(self.root)
        self.max_concurrency = spec.max_concurrency
        warnings: list[str] = []
        self._key = os.environ.get(spec.api_key_env, "") if spec.api_key_env else ""
        if spec.api_key_env and not self._key:
            warnings.append(
                f"apiKeyEnv names {spec.api_key_env}, which is not set in mmlsp's environment;"
                " sending no API key"
            )
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._headers = headers
        t = spec.request_timeout_s
        self._timeout = httpx.Timeout(t, connect=min(5.0, t))
        self._limits = httpx.Limits(
            max_connections=spec.max_concurrency + 2,
            max_keepalive_connections=spec.max_concurrency + 2,
        )
        self._sync = httpx.Client(headers=headers, timeout=self._timeout, limits=self._limits)
        self._async: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._stops: tuple[str, ...] = ()
        # Failure streak: the first failure is reported, repeats are quiet.
        self._last_error: str | None = None
        self._down_until = 0.0
        facts = probe_server(self._sync, self.root, spec.model, spec.api_key_env, progress)
        self.warnings = [*warnings, *facts.warnings]
        self.model = facts.model
        self.server_kind = facts.server_kind
        self.served_models = facts.served_models
        self.reachable = facts.reachable
        self._tokenize = facts.tokenize
        self._vocab = facts.vocab
        self._chars_per_token = facts.chars_per_token
        self.info = EngineInfo(
            model=self.model, device=self.where, dtype=self.server_kind, backend="openai"
        )

    # -- Engine interface ---------------------------------------------------------------
    def template_evidence(self) -> TemplateEvidence:
        """The FIM tokens the server's tokenizer confirmed; without a tokenize endpoint,
        the model's name. The /infill endpoint applies the model's own template."""
        if self.spec.completion_endpoint == "infill":
            fixed = (INFILL_SPLIT, "server /infill endpoint (the model's own template)")
            return TemplateEvidence(self._vocab, fixed=fixed)
        tokenizer = "server's tokenizer" if self._tokenize is not None else None
        return TemplateEvidence(self._vocab, tokenizer, model_name=self.model)

    def vocabulary(self) -> Collection[str]:
        return self._vocab

    def count_tokens(self, text: str) -> int:
        # Called per line while fitting context, on the event loop: no HTTP here.
        return math.ceil(len(text) / self._chars_per_token)

    def set_stop_tokens(self, tokens: Collection[str]) -> None:
        """Stop strings for completion requests (the FIM template's end tokens)."""
        self._stops = tuple(tokens)

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        # The server applies the chat template; the text is for logs and token counts.
        return ChatPrompt(render_plain_chat(messages), messages)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Blocking form (CLI, benchmarks): its own event loop and connection pool."""

        async def run() -> GenerationResult:
            async with self._new_client() as client:
                return await self._generate(client, request)

        return asyncio.run(run())

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        """Generate on the caller's event loop; cancelling the task closes the stream."""
        return await self._generate(self._client(), request)

    def close(self) -> None:
        self._sync.close()
        client, loop = self._async, self._async_loop
        self._async = self._async_loop = None
        if client is not None and loop is not None and not loop.is_closed():
            try:
                if loop.is_running():
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            except RuntimeError:  # loop shutting down: the sockets close with it
                pass

    # -- requests -----------------------------------------------------------------------
    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers=self._headers, timeout=self._timeout, limits=self._limits)

    def _client(self) -> httpx.AsyncClient:
        """The pooled client of the running loop (a client is bound to one loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._async is None or self._async_loop is not loop:
                self._async, self._async_loop = self._new_client(), loop
            return self._async

    def _request_body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        prompt = request.prompt
        llama = self.server_kind in ("llama.cpp", "llama-cpp-python")
        if isinstance(prompt, VisionPrompt):
            # Images as image_url parts (base64 data: URLs) for a vision model served.
            body: dict[str, Any] = {
                "model": self.model,
                "messages": prompt.openai_messages(),
                "max_tokens": request.max_new_tokens,
                "temperature": 0,
                "stream": True,
            }
            path = "/v1/chat/completions"
        elif isinstance(prompt, ChatPrompt):
            body = {
                "model": self.model,
                "messages": [dict(m) for m in prompt.messages],
                "max_tokens": request.max_new_tokens,
                "temperature": 0,
                "stream": True,
            }
            path = "/v1/chat/completions"
        elif self.spec.completion_endpoint == "infill":
            # The server applies the model's own template to the parts (a plain string,
            # which no caller sends here, is all prefix).
            fim = prompt if isinstance(prompt, FimPrompt) else FimPrompt(prompt, prompt, "", "")
            body = {
                "input_prefix": fim.prefix,
                "input_suffix": fim.suffix,
                # llama.cpp puts it after its FIM middle token, as build_prompt does.
                "prompt": fim.middle,
                "n_predict": request.max_new_tokens,
                "temperature": 0,
                "top_k": 1,
                "stream": True,
            }
            if fim.pieces:  # labelled by the server, in the model's repo format if it has one
                body["input_extra"] = [{"filename": p.path, "text": p.text} for p in fim.pieces]
            path = "/infill"
        else:
            body = {
                "model": self.model,
                "prompt": prompt,
                "max_tokens": request.max_new_tokens,
                "temperature": 0,
                "stream": True,
            }
            if self._stops:
                body["stop"] = list(self._stops)
            path = "/v1/completions"
        if llama:
            # Keep the prompt's KV in the slot: the next keystroke's prompt shares it.
            body["cache_prompt"] = True
        if self.server_kind in ("vllm", "sglang") and path.startswith("/v1/"):
            body["stream_options"] = {"include_usage": True}
        return path, body

    async def _generate(
        self, client: httpx.AsyncClient, request: GenerationRequest
    ) -> GenerationResult:
        start = time.monotonic()
        if (reason := request.interrupted()) is not None:
            return GenerationResult("", reason, 0, 0, 0.0)
        if time.monotonic() < self._down_until and self._last_error is not None:
            # Known down: fail fast and quietly instead of a connection attempt per key.
            raise BackendError(self._last_error, "unreachable", first=False)
        path, body = self._request_body(request)
        url = f"{self.root}{path}"
        exchange = Exchange(client, url, body, self.model, self.spec.api_key_env, self.where)
        attempt = 0
        while True:
            stream = Stream()
            try:
                await run_stream(exchange, request, stream)
                break
            except BackendError as exc:
                raise self._failed(exc) from None
            except httpx.RequestError as exc:
                wait = backoff_s(attempt)
                if (
                    should_retry(exc, stream.started)
                    and attempt < self.spec.retries
                    and (request.deadline is None or time.monotonic() + wait < request.deadline)
                ):
                    log.debug("retrying %s after %s (%d)", path, type(exc).__name__, attempt + 1)
                    await asyncio.sleep(wait)
                    attempt += 1
                    continue
                err = transport_failure(
                    exc, stream.started, self.where, self.spec.request_timeout_s
                )
                if err.kind in ("unreachable", "tls", "timeout"):
                    self._down_until = time.monotonic() + DOWN_COOLDOWN_S
                raise self._failed(err) from None
        finish = stream.finish or "eos"
        if finish == "deadline" and stream.chunks == 0 and not stream.text:
            raise self._failed(
                BackendError(
                    f"the inference server at {self.where} produced no tokens before the "
                    "completion deadline; it is slow or overloaded (raise timeBudgetMs, or use a "
                    "smaller model or a faster server)",
                    "slow",
                )
            )
        self._succeeded()
        text = stream.text if stream.cut is None else stream.text[: stream.cut]
        prompt_tokens = stream.prompt_tokens or self.count_tokens(request.prompt)
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            generated_tokens=stream.completion_tokens or stream.chunks,
            seconds=time.monotonic() - start,
            prefilled_tokens=prompt_tokens,
        )

    # -- failure streaks ----------------------------------------------------------------
    def _failed(self, err: BackendError) -> BackendError:
        message = self._redact(str(err))
        first = message != self._last_error
        self._last_error = message
        return BackendError(message, err.kind, first=first)

    def _succeeded(self) -> None:
        if self._last_error is not None:
            log.info("the inference server at %s is answering again", self.where)
        self._last_error = None
        self._down_until = 0.0

    def _redact(self, text: str) -> str:
        # Defence in depth: a server that echoes the key must not put it in our logs.
        return text.replace(self._key, "***") if self._key else text
