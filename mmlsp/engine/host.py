"""Owns the current engine: loads it in the background, reloads it, runs generation.

It may also hold a second engine for chat (code actions, hover, review) when the
``chatModel`` setting names a different model; otherwise chat shares the one engine.

The server never blocks on the model. Loading happens on its own thread while syntax
features keep working. An in-process model generates one request at a time on a
single worker thread (one model cannot decode two prompts at once efficiently), and
a request that was superseded while it waited is dropped before it starts. A remote
engine (``backend: "openai"``) offers ``agenerate``, which the host awaits on the
event loop, up to the engine's ``max_concurrency`` requests at once: the server does
the batching, and cancelling the awaiting task closes the HTTP stream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mmlsp.engine.base import (
    BackendError,
    CacheUsage,
    ChatPrompt,
    Engine,
    EngineError,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.templates import check_setting
from mmlsp.memory import IdleTrim, release_free_memory
from mmlsp.positions import scrub_surrogates
from mmlsp.prompts import FimTemplate

if TYPE_CHECKING:
    from mmlsp.config import Settings

log = logging.getLogger(__name__)

State = Literal["idle", "loading", "ready", "failed"]
Progress = Callable[[str, int | None], None]
EngineFactory = Callable[[str, str, Path, Progress], Engine]
# How long shutdown() waits for a running generation to see its cancel event.
SHUTDOWN_WAIT_S = 2.0


def monotonic(progress: Progress) -> Progress:
    """``progress`` whose percentage never goes back: a step that reports less than one
    before it keeps the highest percentage so far (a bar must not move backwards)."""
    highest = 0

    def report(message: str, pct: int | None) -> None:
        nonlocal highest
        if pct is not None:
            pct = highest = max(highest, pct)
        progress(message, pct)

    return report


def local_engine_factory(
    model: str,
    device: str,
    cache_dir: Path,
    progress: Progress,
    trust_remote_code: bool = False,
    decode_mode: str = "auto",
    dtype: str = "auto",
) -> Engine:
    from mmlsp.engine.local import LocalEngine

    return LocalEngine(
        model,
        device=device,
        cache_dir=cache_dir,
        progress=progress,
        trust_remote_code=trust_remote_code,
        decode_mode=decode_mode,
        dtype=dtype,
    )


@dataclass(frozen=True)
class LoadSpec:
    model: str
    device: str
    fim_template: str
    cache_dir: str
    # "local": in-process torch; "openai": an OpenAI-compatible server at base_url.
    backend: str = "local"
    base_url: str = ""
    # The NAME of the environment variable holding the API key, never the key.
    api_key_env: str = ""
    completion_endpoint: str = "completions"
    request_timeout_ms: int = 30_000
    max_concurrency: int = 4
    # Set only from the user's own launch (config.USER_LEVEL_ONLY).
    trust_remote_code: bool = False
    decode_mode: str = "auto"
    dtype: str = "auto"

    @classmethod
    def from_settings(
        cls, s: Settings, model: str | None = None, fim_template: str | None = None
    ) -> LoadSpec:
        """The spec for ``s`` (``model``/``fim_template`` override, e.g. for chat)."""
        remote = s.backend != "local"
        return cls(
            model if model is not None else s.model,
            s.device,
            fim_template if fim_template is not None else s.fim_template,
            s.cache_dir,
            backend=s.backend,
            # Only what the remote backend reads, so local reloads ignore the rest.
            base_url=s.base_url if remote else "",
            api_key_env=s.api_key_env if remote else "",
            completion_endpoint=s.completion_endpoint if remote else "completions",
            request_timeout_ms=s.request_timeout_ms if remote else 30_000,
            max_concurrency=s.max_concurrent_requests if remote else 4,
            trust_remote_code=s.trust_remote_code and not remote,
            decode_mode=s.decode_mode if not remote else "auto",
            dtype=s.dtype if not remote else "auto",
        )


def openai_engine_factory(spec: LoadSpec, progress: Progress) -> Engine:
    from mmlsp.config import BUILTIN_MODEL
    from mmlsp.engine.openai import OpenAIEngine, RemoteSpec

    # The builtin default names no served model: take the server's own.
    model = "auto" if spec.model == BUILTIN_MODEL else spec.model
    remote = RemoteSpec(
        base_url=spec.base_url,
        model=model,
        api_key_env=spec.api_key_env,
        completion_endpoint="infill" if spec.completion_endpoint == "infill" else "completions",
        request_timeout_s=spec.request_timeout_ms / 1000,
        max_concurrency=spec.max_concurrency,
    )
    return OpenAIEngine(remote, progress)


RemoteFactory = Callable[[LoadSpec, Progress], Engine]


@dataclass
class Status:
    state: State = "idle"
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    # The in-process engine's decode mode (dynamic, static, compiled).
    decode: str | None = None
    template: str | None = None
    # Where the FIM template came from (tokenizer, setting, server, model name).
    template_source: str | None = None
    backend: str = "local"
    # A problem found while loading that does not stop the engine (e.g. a remote
    # server that is down right now); shown to the user once.
    warning: str | None = None
    message: str = ""
    load_seconds: float | None = None
    last_latency_ms: float | None = None
    last_finish_reason: str | None = None
    last_generated_tokens: int | None = None
    generations: int = 0
    cancelled: int = 0
    in_flight: int = 0


class EngineHost:
    def __init__(
        self,
        factory: EngineFactory = local_engine_factory,
        remote_factory: RemoteFactory = openai_engine_factory,
    ) -> None:
        self._factory = factory
        self._remote_factory = remote_factory
        # Requests being generated, so shutdown() can cancel them; the worker's futures.
        self._inflight: dict[int, GenerationRequest] = {}
        # Background generations in flight, and the gate that runs them one at a time.
        self._background: dict[int, GenerationRequest] = {}
        self._background_gate: asyncio.Semaphore | None = None
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._limits: weakref.WeakKeyDictionary[Engine, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        # Called with a remote backend's failure the first time it happens in a streak
        # (the server shows it once); repeats are only logged at debug level.
        self.on_backend_error: Callable[[str], None] = lambda message: log.error("%s", message)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._spec: LoadSpec | None = None
        self._template: FimTemplate | None = None
        self._ready = threading.Event()
        self._generation = 0
        self.status = Status()
        # A separate chat engine, only while chatModel names another model.
        self._chat_spec: LoadSpec | None = None
        self._chat_engine: Engine | None = None
        self._chat_generation = 0
        self._chat_status = Status()
        # Every model computation runs here. Besides CUDA graphs being per thread, each
        # thread that runs torch ops on the CPU gets its own OpenMP team, and once there
        # are more OpenMP threads than cores libgomp stops spinning between parallel
        # regions for good: Gemma-3-270M then decoded 76 ms a token instead of 55.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmlsp-generate")
        self._trim = IdleTrim()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmlsp-load")

    @property
    def engine(self) -> Engine | None:
        return self._engine

    @property
    def template(self) -> FimTemplate | None:
        return self._template

    @property
    def chat_engine(self) -> Engine | None:
        """The engine for chat requests: the separate chat model, else the main one."""
        return self._engine if self._chat_spec is None else self._chat_engine

    @property
    def chat_status(self) -> Status:
        return self.status if self._chat_spec is None else self._chat_status

    def chat_is_fast(self) -> bool:
        """Whether the chat engine runs on a GPU or a remote backend (review's auto mode)."""
        engine = self.chat_engine
        if engine is None:
            return False
        return engine.info.device.startswith("cuda") or engine.info.backend != "local"

    def load_chat(
        self,
        spec: LoadSpec | None,
        progress: Progress = lambda _m, _p: None,
        done: Callable[[Status], None] = lambda _s: None,
    ) -> bool:
        """Load a separate chat model in the background; None: chat uses the main engine.

        Loads queue behind the main model's on the one loader thread, so two models
        are never converted at once. Returns whether a load was started.
        """
        with self._lock:
            if spec == self._chat_spec:
                return False
            self._chat_spec = spec
            self._chat_generation += 1
            generation = self._chat_generation
            old, self._chat_engine = self._chat_engine, None
            self._chat_status = Status(
                state="loading" if spec else "idle", model=spec.model if spec else None
            )
        if old is not None:
            self._loader.submit(self._retire, old)  # off the event loop: it may wait
        if spec is None:
            return False
        self._loader.submit(self._load_chat, spec, generation, progress, done)
        return True

    def _load_chat(
        self, spec: LoadSpec, generation: int, progress: Progress, done: Callable
    ) -> None:
        start = time.monotonic()
        engine: Engine | None = None
        try:
            engine = self._make(spec, progress)
            if stops := engine.chat_stop_tokens():
                engine.set_stop_tokens(stops)
            status = _ready_status(spec, engine, start)
        except Exception as exc:  # a chat model that fails must leave completion working
            if not isinstance(exc, EngineError):
                log.exception("chat model load failed")
            status = Status(state="failed", model=spec.model, message=f"{exc}")
        with self._lock:
            if generation != self._chat_generation:
                if engine is not None:
                    engine.close()
                return
            self._chat_engine = engine if status.state == "ready" else None
            self._chat_status = status
        done(status)

    def load(
        self,
        spec: LoadSpec,
        progress: Progress = lambda _m, _p: None,
        done: Callable[[Status], None] = lambda _s: None,
    ) -> bool:
        """Start loading ``spec`` in the background unless it is already loaded or loading.

        Returns whether a load was started.
        """
        with self._lock:
            if spec == self._spec:
                return False
            self._spec = spec
            self._generation += 1
            generation = self._generation
            self._ready.clear()
            self.status = Status(state="loading", model=spec.model, message="loading")
        self._loader.submit(self._load, spec, generation, progress, done)
        return True

    def _load(self, spec: LoadSpec, generation: int, progress: Progress, done: Callable) -> None:
        start = time.monotonic()
        engine: Engine | None = None
        try:
            check_setting(spec.fim_template)  # before the slow part
            engine = self._make(spec, progress)
            template, source = engine.choose_template(spec.fim_template)
            # The chat turn's end token too: this engine also serves chat requests
            # unless chatModel names another model.
            stops = (*(template.stop if template else ()), *engine.chat_stop_tokens())
            if stops:
                engine.set_stop_tokens(stops)
            status = _ready_status(
                spec,
                engine,
                start,
                template=template.name if template else "none (prefix only)",
                template_source=source,
            )
        except Exception as exc:  # any load failure must leave the server up
            if not isinstance(exc, EngineError):
                log.exception("model load failed")
            status = Status(state="failed", model=spec.model, message=f"{exc}")
            template = None
        with self._lock:
            if generation != self._generation:  # a newer load superseded this one
                if engine is not None:
                    engine.close()
                return
            old, self._engine = self._engine, (engine if status.state == "ready" else None)
            self._template = template
            self.status = status
            self._ready.set()
        if old is not None and old is not engine:
            self._retire(old)
        done(status)

    def _make(self, spec: LoadSpec, progress: Progress) -> Engine:
        progress = monotonic(progress)
        if spec.backend == "local":
            # Only passed when not the default, so simple factories need not take them.
            extra: dict[str, Any] = {"trust_remote_code": True} if spec.trust_remote_code else {}
            if spec.decode_mode != "auto":
                extra["decode_mode"] = spec.decode_mode
            if spec.dtype != "auto":
                extra["dtype"] = spec.dtype
            engine = self._factory(spec.model, spec.device, Path(spec.cache_dir), progress, **extra)
            if engine.warm_up is not None:
                # On the generation thread: compiled CUDA graphs are recorded per thread.
                self._worker.submit(engine.warm_up).result()
            return engine
        if spec.backend == "openai":
            return self._remote_factory(spec, progress)
        raise EngineError(f"unknown backend {spec.backend!r}")

    def forget(self, cache_key: str) -> None:
        """Drop the main engine's prompt cache kept under ``cache_key`` (a closed document)."""
        if (engine := self._engine) is not None:
            engine.forget(cache_key)

    def cache_usage(self) -> CacheUsage:
        """What the main engine's kept prompt caches hold."""
        engine = self._engine
        return engine.cache_usage() if engine is not None else CacheUsage()

    def wait_ready(self, timeout: float | None = None) -> Status:
        self._ready.wait(timeout)
        return self.status

    async def generate(
        self,
        request: GenerationRequest,
        chat: bool = False,
        background: bool = False,
        record: bool = True,
    ) -> GenerationResult:
        """Generate; cancelling the awaiting task cancels the request.

        ``chat`` picks the chat engine (the same one unless chatModel differs). An
        in-process engine runs on the worker thread; a remote one (``agenerate``) on
        the event loop, up to its ``max_concurrency`` at once.

        ``background`` work (hover explanations, review, KV warm-ups) runs one at a
        time and gives way to completions: a completion request cancels the background
        generation in flight, so typing never waits behind it, and background work can
        never hold every slot of a remote backend. ``record``: count it in the status
        (warm-ups are not generations the user asked for).
        """
        if background:
            if self._background_gate is None:
                self._background_gate = asyncio.Semaphore(1)
            async with self._background_gate:
                if request.interrupted() is not None:  # given up while it waited
                    return GenerationResult("", request.interrupted() or "cancelled", 0, 0, 0.0)
                self._background[id(request)] = request
                try:
                    return await self._generate(request, chat, True, record)
                finally:
                    self._background.pop(id(request), None)
        if not chat:
            for waiting in list(self._background.values()):
                waiting.cancel.set()  # stops at its next token
        return await self._generate(request, chat, False, record)

    async def _generate(
        self, request: GenerationRequest, chat: bool, background: bool, record: bool
    ) -> GenerationResult:
        engine = self.chat_engine if chat else self._engine
        if engine is None:
            status = self.chat_status if chat else self.status
            which = "chat model" if chat else "model"
            raise EngineError(f"{which} is not ready: {status.state} {status.message}")
        # JSON lets a client send lone surrogates; every tokenizer rejects them. One
        # U+FFFD each keeps the prompt's length and the rest of the text intact.
        request.prompt = _scrubbed(request.prompt)
        # Counters live on the main status, whichever engine runs the request.
        status = self.status
        self._inflight[id(request)] = request
        status.in_flight += 1
        try:
            if engine.asynchronous:
                result = await self._remote(engine, request)
            else:
                result = await self._threaded(engine, request)
        except asyncio.CancelledError:
            request.cancel.set()
            raise
        except BackendError as exc:
            # A remote backend's failures are expected events with their own message:
            # report the first of a streak, keep the repeats out of the user's way.
            if exc.first and not background:  # background work fails quietly
                self.on_backend_error(str(exc))
            else:
                log.debug("%s", exc)
            raise
        except Exception as exc:  # a model that fails mid-generation must not fail the server
            log.exception("generation failed")
            raise GenerationFailed(f"generation failed: {exc}") from exc
        finally:
            self._inflight.pop(id(request), None)
            status.in_flight -= 1
        if record:
            self._record(status, result, chat)
        return result

    async def _threaded(self, engine: Engine, request: GenerationRequest) -> GenerationResult:
        future = self._worker.submit(engine.generate, request)
        self._running.add(future)
        future.add_done_callback(self._generated)
        # shield: a cancelled await must not abandon the thread's result unobserved;
        # the request's cancel event stops the thread at its next token.
        return await asyncio.shield(asyncio.wrap_future(future))

    def _generated(self, future: concurrent.futures.Future[Any]) -> None:
        self._running.discard(future)
        # Between generations, now and then: give the pages freed meanwhile back to
        # the system, on the worker so it never overlaps a generation (memory.py).
        if not self._running and self._trim.due():
            with contextlib.suppress(RuntimeError):  # the worker was shut down
                self._worker.submit(release_free_memory)

    async def _remote(self, engine: Engine, request: GenerationRequest) -> GenerationResult:
        limit = self._limits.get(engine)
        if limit is None:
            limit = self._limits[engine] = asyncio.Semaphore(max(1, engine.max_concurrency))
        async with limit:
            return await engine.agenerate(request)

    def _record(self, status: Status, result: GenerationResult, chat: bool) -> None:
        status.generations += 1
        status.cancelled += result.finish_reason == "cancelled"
        if chat:
            return  # "last" latency and tokens describe completions, not a 3-minute chat
        status.last_latency_ms = round(result.seconds * 1000, 1)
        status.last_finish_reason = result.finish_reason
        status.last_generated_tokens = result.generated_tokens

    def _stop_running(self, wait_s: float) -> None:
        """Tell every request in flight to stop, and wait up to ``wait_s`` for the worker."""
        for request in list(self._inflight.values()):
            request.cancel.set()
        if running := [f for f in self._running if not f.done()]:
            _done, late = concurrent.futures.wait(running, timeout=wait_s)
            if late:
                log.warning("a generation did not stop within %.1f s", wait_s)

    def _retire(self, old: Engine) -> None:
        """Close a replaced engine once nothing generates on it (a reload mid-request)."""
        self._stop_running(SHUTDOWN_WAIT_S)
        old.close()

    def shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Cancel what is generating, give it ``wait_s`` to stop, then free the models.

        Closing an engine while the worker thread is still inside ``generate`` would
        pull the model out from under it, so the running request is told to stop
        first (it checks its cancel event after every token) and waited for briefly.
        """
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._stop_running(wait_s)
        if self._engine is not None:
            self._engine.close()
        if self._chat_engine is not None:
            self._chat_engine.close()


def _scrubbed(prompt: str) -> str:
    """``prompt`` without lone surrogates, a ChatPrompt's messages included."""
    clean = scrub_surrogates(prompt)
    if isinstance(prompt, ChatPrompt):
        messages = [{k: scrub_surrogates(v) for k, v in m.items()} for m in prompt.messages]
        return ChatPrompt(clean, messages)
    return prompt if clean == prompt else clean


def _ready_status(spec: LoadSpec, engine: Engine, start: float, **fields: Any) -> Status:
    """The status of a freshly loaded engine; ``fields`` add the template's."""
    return Status(
        state="ready",
        model=spec.model,
        device=engine.info.device,
        dtype=engine.info.dtype,
        decode=engine.info.decode or None,
        backend=engine.info.backend,
        warning=_warning(engine),
        message="ready",
        load_seconds=round(time.monotonic() - start, 2),
        **fields,
    )


def _warning(engine: Engine) -> str | None:
    """Load-time problems a remote engine found (server down, model not listed)."""
    return "; ".join(engine.warnings) if engine.warnings else None
