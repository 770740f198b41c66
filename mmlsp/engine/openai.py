"""Remote engine: an OpenAI-compatible inference server (vLLM, SGLang, llama.cpp, Ollama).

mmlsp stays the client: it builds the FIM prompt itself (templates, context and
post-processing stay ours) and sends it to ``/v1/completions`` as an SSE stream,
or, where configured, to llama.cpp's native ``/infill``. Chat requests (code
actions, hover, review) go to ``/v1/chat/completions`` with the messages, so the
server applies the model's own chat template.

The same streaming stops as the in-process engine apply: the caller's ``stop_at``
after every chunk, cancellation and the deadline. Ending early closes the HTTP
stream, which is how OpenAI-compatible servers learn to stop generating.

Failures become ``BackendError`` with a fixed, readable message per cause (server
down, TLS, 401, 404, 501, dropped stream, slow server) so the server can show each
once. Connection errors are retried a bounded number of times with backoff; HTTP
errors never are. The API key is read from the environment variable named by
``apiKeyEnv`` and never appears in messages, logs or status.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from mmlsp.engine.base import (
    BackendError,
    ChatPrompt,
    Engine,
    EngineError,
    EngineInfo,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    render_plain_chat,
)
from mmlsp.engine.templates import TemplateEvidence, candidate_tokens
from mmlsp.engine.templates import template_from_name as template_from_name  # re-exported
from mmlsp.prompts import FimPrompt, FimTemplate

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]
CompletionEndpoint = Literal["completions", "infill"]

# Model names that mean "whatever the server serves" (its first listed model).
AUTO_MODELS = ("", "auto")
# How often a waiting stream checks the request's cancel event and deadline (s).
POLL_S = 0.02
# Connection failures: retries per request, and how long later requests fail fast
# (without a network attempt) after a request found the server unreachable.
RETRIES = 2
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
# A few lines of typical code, to calibrate the characters-per-token estimate.
_CALIBRATION = (
    "def load(path: str, *, encoding: str = 'utf-8') -> dict[str, int]:\n"
    "    counts = {}\n"
    "    with open(path, encoding=encoding) as handle:\n"
    "        for line in handle:\n"
    "            key = line.strip().split(',')[0]\n"
    "            counts[key] = counts.get(key, 0) + 1  # tally\n"
    "    return counts\n"
)


# -- errors -----------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without user:password and query (where people paste tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def server_root(base_url: str) -> str:
    """The server's root URL: ``baseUrl`` with a trailing ``/v1`` (OpenAI style) removed."""
    root = base_url.strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root


def _server_message(body: bytes) -> str:
    """The human part of an error body (OpenAI, vLLM, llama.cpp and FastAPI shapes)."""
    import json

    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:200]
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or error.get("msg") or error
        if isinstance(error, list) and error and isinstance(error[0], dict):
            error = error[0].get("msg", error[0])
        if error is not None:
            return str(error)[:200]
    return str(data)[:200]


def http_error(status: int, body: bytes, where: str, model: str, key_env: str) -> BackendError:
    """The message for an HTTP error status from ``where`` (a redacted URL)."""
    detail = _server_message(body)
    if status in (401, 403):
        if key_env:
            hint = f"check the key in the environment variable {key_env}"
        else:
            hint = "set apiKeyEnv to the name of an environment variable that holds the key"
        return BackendError(
            f"the inference server rejected the request to {where} (HTTP {status}, "
            f"unauthorized): {hint}",
            "auth",
        )
    if status == 404:
        if "model" in detail.lower():
            return BackendError(
                f"the inference server at {where} does not serve model {model!r} (HTTP 404); "
                "set the model setting to a name listed by its /v1/models",
                "model",
            )
        return BackendError(
            f"no such endpoint: {where} (HTTP 404); check baseUrl "
            "(the server's address, e.g. http://host:8000 or http://host:8000/v1)",
            "endpoint",
        )
    if status == 501 or status == 405:
        return BackendError(
            f"the inference server does not implement {where} (HTTP {status}); "
            + (
                "set completionEndpoint to 'completions'"
                if where.endswith("/infill")
                else "it needs an OpenAI-compatible completions API"
            ),
            "unsupported",
        )
    if status == 400 and "model" in detail.lower() and "not" in detail.lower():
        return BackendError(
            f"the inference server at {where} rejected model {model!r} (HTTP 400): {detail}",
            "model",
        )
    return BackendError(
        f"the inference server answered HTTP {status} at {where}: {detail}", "server"
    )


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


def connection_error(exc: httpx.TransportError, where: str) -> BackendError:
    """The message for a transport failure before any response arrived."""
    if (tls := _tls_cause(exc)) is not None or "SSL" in str(exc) or "certificate" in str(exc):
        reason = getattr(tls, "reason", None) or getattr(tls, "verify_message", None) or "handshake"
        return BackendError(
            f"TLS error talking to the inference server at {where} ({reason}); check its "
            "certificate (SSL_CERT_FILE) or use http:// for a server without TLS",
            "tls",
        )
    if isinstance(exc, httpx.TimeoutException):
        return BackendError(
            f"the inference server at {where} did not answer in time (connection timeout)",
            "timeout",
        )
    return BackendError(
        f"cannot reach the inference server at {where} (connection refused or host down); "
        "completions resume when it is up",
        "unreachable",
    )


def should_retry(exc: BaseException, response_started: bool) -> bool:
    """Retry only connection-level failures before any response: never HTTP statuses."""
    if response_started or isinstance(exc, BackendError | httpx.HTTPStatusError):
        return False
    if _tls_cause(exc) is not None:
        return False  # a bad certificate stays bad
    # A stale pooled keep-alive connection fails with a protocol or read error before
    # any byte of the response: safe to send again.
    return isinstance(
        exc,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.RemoteProtocolError | httpx.ReadError,
    )


def backoff_s(attempt: int) -> float:
    """Delay before retry ``attempt`` (0-based): 0.05, 0.2, 0.8 s ... capped at 2 s."""
    return min(2.0, 0.05 * 4**attempt)


# -- server-sent events ------------------------------------------------------------------


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder: feed text chunks, get whole events.

    Handles lines split across chunks, CR, LF and CRLF endings (a CR at a chunk's end
    waits for the next chunk), multi-line ``data``, comments and ``event`` fields.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: str) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            cr, lf = self._buffer.find("\r"), self._buffer.find("\n")
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                return events
            at = min(ends)
            if at == cr and at == len(self._buffer) - 1:
                return events  # maybe CRLF split across chunks
            width = 2 if self._buffer.startswith("\r\n", at) else 1
            line, self._buffer = self._buffer[:at], self._buffer[at + width :]
            if (event := self._line(line)) is not None:
                events.append(event)

    def flush(self) -> list[SSEEvent]:
        """Events left when the stream ends (a last event without its blank line)."""
        events = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip("\r"), ""
            if (event := self._line(line)) is not None:
                events.append(event)
        if (event := self._line("")) is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


@dataclass
class Chunk:
    """One decoded stream event: text, and whether/why the server finished."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def parse_event(data: str) -> Chunk:
    """One SSE ``data`` payload from /v1/completions, /v1/chat/completions or /infill."""
    import json

    if data.strip() == "[DONE]":
        return Chunk(done=True)
    try:
        obj = json.loads(data)
    except ValueError:
        return Chunk(error=f"unreadable stream event: {data[:80]!r}")
    if not isinstance(obj, dict):
        return Chunk(error=f"unexpected stream event: {data[:80]!r}")
    if "error" in obj:
        error = obj["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        return Chunk(error=str(message)[:200])
    chunk = Chunk()
    if isinstance(usage := obj.get("usage"), dict):
        chunk.prompt_tokens = usage.get("prompt_tokens")
        chunk.completion_tokens = usage.get("completion_tokens")
    choices = obj.get("choices")
    if isinstance(choices, list):
        if choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta")
            if isinstance(delta, dict):
                chunk.text = delta.get("content") or ""
            else:
                chunk.text = choice.get("text") or ""
            chunk.finish_reason = choice.get("finish_reason")
        return chunk
    # llama.cpp native (/infill, /completion): {"content": ..., "stop": bool}
    if "content" in obj:
        chunk.text = obj.get("content") or ""
        if obj.get("stop"):
            chunk.done = True
            chunk.finish_reason = "length" if obj.get("stop_type") == "limit" else "stop"
    return chunk


# -- the engine --------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteSpec:
    base_url: str
    model: str
    api_key_env: str = ""
    completion_endpoint: CompletionEndpoint = "completions"
    request_timeout_s: float = 30.0
    max_concurrency: int = 4
    retries: int = RETRIES


@dataclass
class _Stream:
    """What one streamed request produced so far."""

    text: str = ""
    chunks: int = 0
    started: bool = False  # response headers received
    finish: FinishReason | None = None
    cut: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    server_reason: str | None = None
    error: BackendError | None = field(default=None)


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
        self.warnings: list[str] = []
        self._key = os.environ.get(spec.api_key_env, "") if spec.api_key_env else ""
        if spec.api_key_env and not self._key:
            self.warnings.append(
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
        self._vocab: frozenset[str] = frozenset()
        self._chars_per_token = 3.0  # conservative until calibrated
        self._tokenize: tuple[str, Callable[[str], dict[str, Any]]] | None = None
        self.server_kind = "unknown"
        self.served_models: list[str] = []
        self.reachable = False
        # Failure streak: the first failure is reported, repeats are quiet.
        self._last_error: str | None = None
        self._down_until = 0.0
        progress(f"contacting {self.where}", 10)
        model = self._probe(spec.model)
        self.model = model
        self.info = EngineInfo(
            model=model, device=self.where, dtype=self.server_kind, backend="openai"
        )
        if self.reachable:
            progress("probing the server's tokenizer", 50)
            self._probe_tokenizer()

    # -- load-time probes (loader thread, synchronous) ----------------------------------
    def _probe(self, model: str) -> str:
        """Reachability, server kind and served models; returns the model name to send."""
        url = f"{self.root}/v1/models"
        try:
            response = self._sync.get(url)
        except httpx.TransportError as exc:
            self.warnings.append(str(connection_error(exc, self.where)))
            return model if model not in AUTO_MODELS else "default"
        self.reachable = True
        if response.status_code != 200:
            err = http_error(
                response.status_code, response.content, redact_url(url), model,
                self.spec.api_key_env,
            )  # fmt: skip
            self.warnings.append(str(err))
            return model if model not in AUTO_MODELS else "default"
        try:
            data = response.json().get("data") or []
            served = [m["id"] for m in data if isinstance(m, dict) and "id" in m]
            owners = {str(m.get("owned_by", "")) for m in data if isinstance(m, dict)}
        except (ValueError, AttributeError, TypeError):
            served, owners = [], set()
        self.served_models = served
        self.server_kind = self._kind(owners)
        if model in AUTO_MODELS:
            if served:
                return served[0]
            self.warnings.append(f"the inference server at {self.where} lists no models")
            return "default"
        if served and model not in served:
            self.warnings.append(
                f"the inference server at {self.where} does not list model {model!r}; "
                f"it serves {', '.join(repr(m) for m in served[:5])}"
            )
        return model

    def _kind(self, owners: set[str]) -> str:
        for owner, kind in (("vllm", "vllm"), ("sglang", "sglang"), ("llamacpp", "llama.cpp")):
            if owner in owners:
                return kind
        if "me" in owners:
            return "llama-cpp-python"
        if owners & {"library", "ollama"}:
            return "ollama"
        try:  # llama.cpp's native server answers /props even when owned_by differs
            props = self._sync.get(f"{self.root}/props", timeout=3.0)
            if props.status_code == 200 and "default_generation_settings" in props.text:
                return "llama.cpp"
        except httpx.TransportError:
            pass
        return "openai-compatible"

    def _probe_tokenizer(self) -> None:
        """Find a tokenize endpoint; learn which FIM tokens are single special tokens."""
        model = self.model
        attempts: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
            ("/tokenize", lambda text: {"model": model, "prompt": text}),  # vLLM, SGLang
            ("/tokenize", lambda text: {"content": text, "add_special": False}),  # llama.cpp
            ("/extras/tokenize", lambda text: {"input": text, "model": model}),  # llama-cpp-py
        ]
        for path, body in attempts:
            if self._count(path, body, "x") is not None:
                self._tokenize = (path, body)
                break
        if self._tokenize is None:
            log.info("%s has no tokenize endpoint: estimating token counts", self.where)
            return
        path, body = self._tokenize
        base = self._count(path, body, "") or 0
        confirmed = set()
        for token in candidate_tokens():
            count = self._count(path, body, token)
            if count is not None and count - base == 1:
                confirmed.add(token)
        self._vocab = frozenset(confirmed)
        if (tokens := self._count(path, body, _CALIBRATION)) and tokens > base:
            # A little under the measured ratio, so counts err on the high side.
            self._chars_per_token = max(1.5, 0.85 * len(_CALIBRATION) / (tokens - base))

    def _count(self, path: str, body: Callable[[str], dict[str, Any]], text: str) -> int | None:
        try:
            response = self._sync.post(f"{self.root}{path}", json=body(text), timeout=5.0)
            if response.status_code != 200:
                return None
            tokens = response.json().get("tokens")
        except (httpx.TransportError, ValueError, AttributeError):
            return None
        return len(tokens) if isinstance(tokens, list) else None

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
        if isinstance(prompt, ChatPrompt):
            body: dict[str, Any] = {
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
        attempt = 0
        while True:
            stream = _Stream()
            try:
                await self._stream(client, url, body, request, stream)
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
                err = self._transport_failure(exc, stream.started)
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

    async def _stream(
        self,
        client: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        request: GenerationRequest,
        out: _Stream,
    ) -> None:
        """Run one exchange into ``out``, watching the request's cancel event and deadline.

        The exchange runs as its own task, so a request still waiting for a slow
        server's headers or next token notices cancellation within ``POLL_S``.
        Cancelling that task leaves its ``async with`` and so closes the response and
        the connection the server streams into: that is what stops the server.
        """
        exchange = asyncio.ensure_future(self._exchange(client, url, body, request, out))
        try:
            while not exchange.done():
                await asyncio.wait({exchange}, timeout=POLL_S)
                if not exchange.done() and (reason := request.interrupted()) is not None:
                    out.finish = reason
                    exchange.cancel()
                    break
        finally:
            if not exchange.done():
                exchange.cancel()
            # Let the cancelled exchange close its stream before we return.
            await asyncio.gather(exchange, return_exceptions=True)
        if not exchange.cancelled():
            exchange.result()  # re-raise its error

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        request: GenerationRequest,
        out: _Stream,
    ) -> None:
        async with client.stream("POST", url, json=body) as response:
            out.started = True
            if response.status_code != 200:
                content = await response.aread()
                raise http_error(
                    response.status_code, content, redact_url(url), self.model,
                    self.spec.api_key_env,
                )  # fmt: skip
            decoder = SSEDecoder()
            pieces = response.aiter_text()
            try:
                async for piece in pieces:
                    for event in decoder.feed(piece):
                        if self._take(event, request, out):
                            return
            finally:
                # Close the byte stream now: left to the garbage collector, an
                # abandoned iterator kept the connection, and the server streaming
                # into it, alive after a cancel or a stop.
                await pieces.aclose()
            for event in decoder.flush():
                if self._take(event, request, out):
                    return
            if out.finish is None:
                # Neither [DONE] nor a finish reason: the body ended early.
                raise httpx.RemoteProtocolError("stream ended without a finish")

    def _take(self, event: SSEEvent, request: GenerationRequest, out: _Stream) -> bool:
        """Apply one event; True when generation is over."""
        chunk = parse_event(event.data)
        if chunk.error is not None:
            raise BackendError(
                f"the inference server at {self.where} failed while generating: {chunk.error}",
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

    def _transport_failure(self, exc: httpx.RequestError, started: bool) -> BackendError:
        if isinstance(exc, httpx.ReadTimeout):
            return BackendError(
                f"the inference server at {self.where} sent nothing for "
                f"{self.spec.request_timeout_s:g} s (requestTimeoutMs); it is slow or overloaded",
                "slow",
            )
        if started:
            return BackendError(
                f"the inference server at {self.where} closed the connection in the middle "
                "of a response",
                "dropped",
            )
        if isinstance(exc, httpx.TransportError):
            return connection_error(exc, self.where)
        return BackendError(
            f"unreadable response from the inference server at {self.where} ({type(exc).__name__})",
            "protocol",
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
