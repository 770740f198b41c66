"""Owns the engines: loads them in the background, reloads them, runs generation.

It may also hold a second engine for chat (code actions, hover, review) when the
``chatModel`` setting names a different model; otherwise chat shares the one engine.
And a vision-language model, while ``visionModel`` names one (``vision.py``): asked
only with requests that carry images. All load the same way (``slot.EngineSlot``).

The server never blocks on the model. Loading happens on its own thread while syntax
features keep working. An in-process model generates one request at a time on a
single worker thread (one model cannot decode two prompts at once efficiently), and
a request that was superseded while it waited is dropped before it starts. A remote
engine (``Engine.asynchronous``) is awaited on the event loop instead, up to the
engine's ``max_concurrency`` requests at once: the server does the batching, and
cancelling the awaiting task closes the HTTP stream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
from mmlsp.engine.factory import (
    EngineFactory,
    Progress,
    RemoteFactory,
    local_engine_factory,
    local_extras,
    monotonic,
    openai_engine_factory,
)
from mmlsp.engine.slot import Done, EngineSlot, Status
from mmlsp.engine.spec import LoadSpec
from mmlsp.engine.vision import VisionPrompt, local_vision_factory
from mmlsp.memory import IdleTrim, release_free_memory
from mmlsp.prompt.fim import FimTemplate
from mmlsp.text.positions import scrub_surrogates

# Defined in the modules this one was split into; importable from here as before.
__all__ = ["EngineHost", "LoadSpec", "Status", "local_engine_factory", "monotonic"]

log = logging.getLogger(__name__)

# How long shutdown() waits for a running generation to see its cancel event.
SHUTDOWN_WAIT_S = 2.0


class EngineHost:
    def __init__(
        self,
        factory: EngineFactory = local_engine_factory,
        remote_factory: RemoteFactory = openai_engine_factory,
        vision_factory: EngineFactory = local_vision_factory,
    ) -> None:
        self._factory = factory
        self._remote_factory = remote_factory
        self._vision_factory = vision_factory
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
        # Every model computation runs here. Besides CUDA graphs being per thread, each
        # thread that runs torch ops on the CPU gets its own OpenMP team, and once there
        # are more OpenMP threads than cores libgomp stops spinning between parallel
        # regions for good: Gemma-3-270M then decoded 76 ms a token instead of 55.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmlsp-generate")
        self._trim = IdleTrim()
        # Loads of both engines queue here, so two models are never converted at once.
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmlsp-load")
        self._main = EngineSlot("model", self._make, self._loader, self._retire, completion=True)
        # A separate chat engine, only while chatModel names another model.
        self._chat = EngineSlot(
            "chat model", self._make, self._loader, self._retire, completion=False
        )
        # The vision-language model, only while visionModel names one.
        self._vision = EngineSlot(
            "vision model", self._make_vision, self._loader, self._retire, completion=False
        )

    @property
    def engine(self) -> Engine | None:
        return self._main.engine

    @property
    def template(self) -> FimTemplate | None:
        return self._main.template

    @property
    def status(self) -> Status:
        return self._main.status

    @property
    def chat_engine(self) -> Engine | None:
        """The engine for chat requests: the separate chat model, else the main one."""
        return self._main.engine if self._chat.spec is None else self._chat.engine

    @property
    def chat_status(self) -> Status:
        return self._main.status if self._chat.spec is None else self._chat.status

    @property
    def vision_engine(self) -> Engine | None:
        """The vision-language model, once loaded; None while visionModel is empty."""
        return self._vision.engine

    @property
    def vision_status(self) -> Status:
        return self._vision.status

    @property
    def vision_configured(self) -> bool:
        """Whether visionModel names a model (loaded, loading or failed)."""
        return self._vision.spec is not None

    def chat_is_fast(self) -> bool:
        """Whether the chat engine runs on a GPU or a remote backend (review's auto mode)."""
        engine = self.chat_engine
        if engine is None:
            return False
        return engine.info.device.startswith("cuda") or engine.info.backend == "openai"

    def load(
        self, spec: LoadSpec, progress: Progress = lambda _m, _p: None, done: Done = lambda _s: None
    ) -> bool:
        """Start loading ``spec`` in the background unless it is already loaded or loading.

        The current engine serves until the new one is ready. Returns whether a load
        was started.
        """
        return self._main.load(spec, progress, done)

    def load_chat(
        self,
        spec: LoadSpec | None,
        progress: Progress = lambda _m, _p: None,
        done: Done = lambda _s: None,
    ) -> bool:
        """Load a separate chat model in the background; None: chat uses the main engine.

        Returns whether a load was started.
        """
        return self._chat.load(spec, progress, done)

    def load_vision(
        self,
        spec: LoadSpec | None,
        progress: Progress = lambda _m, _p: None,
        done: Done = lambda _s: None,
    ) -> bool:
        """Load the vision-language model in the background; None: hold none.

        Returns whether a load was started.
        """
        return self._vision.load(spec, progress, done)

    def wait_vision(self, timeout: float | None = None) -> Status:
        self._vision.ready.wait(timeout)
        return self.vision_status

    def _make_vision(self, spec: LoadSpec, progress: Progress) -> Engine:
        if spec.backend == "local":
            extra: dict[str, Any] = {"trust_remote_code": True} if spec.trust_remote_code else {}
            if spec.dtype != "auto":
                extra["dtype"] = spec.dtype
            return self._vision_factory(spec.model, spec.device, monotonic(progress), **extra)
        return self._make(spec, progress)  # a served model: the same remote engine

    def _make(self, spec: LoadSpec, progress: Progress) -> Engine:
        progress = monotonic(progress)
        if spec.backend == "local":
            engine = self._factory(
                spec.model, spec.device, Path(spec.cache_dir), progress, **local_extras(spec)
            )
        elif spec.backend == "openai":
            engine = self._remote_factory(spec, progress)
        else:
            raise EngineError(f"unknown backend {spec.backend!r}")
        if engine.warm_up is not None:
            # On the generation thread: compiled CUDA graphs are recorded per thread.
            self._worker.submit(engine.warm_up).result()
        return engine

    def wait_ready(self, timeout: float | None = None) -> Status:
        self._main.ready.wait(timeout)
        return self.status

    def forget(self, cache_key: str) -> None:
        """Drop the main engine's prompt cache kept under ``cache_key`` (a closed document)."""
        if (engine := self.engine) is not None:
            engine.forget(cache_key)

    def cache_usage(self) -> CacheUsage:
        """What the main engine's kept prompt caches hold."""
        engine = self.engine
        return engine.cache_usage() if engine is not None else CacheUsage()

    async def generate(
        self,
        request: GenerationRequest,
        chat: bool = False,
        background: bool = False,
        record: bool = True,
        vision: bool = False,
    ) -> GenerationResult:
        """Generate; cancelling the awaiting task cancels the request.

        ``chat`` picks the chat engine (the same one unless chatModel differs). An
        in-process engine runs on the worker thread; a remote one (``agenerate``) on
        the event loop, up to its ``max_concurrency`` at once.

        ``background`` work (hover explanations, review, KV warm-ups) runs one at a
        time and gives way to completions: a completion request cancels the background
        generation in flight, so typing never waits behind it, and background work can
        never hold every slot of a remote backend. ``record``: count it in the status
        (warm-ups are not generations the user asked for). ``vision``: the request
        (a ``VisionPrompt``) goes to the vision model.
        """
        if vision:
            chat = True  # counted as chat: no "last completion" figures
        if background:
            if self._background_gate is None:
                self._background_gate = asyncio.Semaphore(1)
            async with self._background_gate:
                if request.interrupted() is not None:  # given up while it waited
                    return GenerationResult("", request.interrupted() or "cancelled", 0, 0, 0.0)
                self._background[id(request)] = request
                try:
                    return await self._generate(request, chat, True, record, vision)
                finally:
                    self._background.pop(id(request), None)
        if not chat:
            for waiting in list(self._background.values()):
                waiting.cancel.set()  # stops at its next token
        return await self._generate(request, chat, False, record, vision)

    async def _generate(
        self,
        request: GenerationRequest,
        chat: bool,
        background: bool,
        record: bool,
        vision: bool = False,
    ) -> GenerationResult:
        engine = self.vision_engine if vision else self.chat_engine if chat else self.engine
        if engine is None:
            status = self.vision_status if vision else self.chat_status if chat else self.status
            which = "vision model" if vision else "chat model" if chat else "model"
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
        for slot in (self._main, self._chat, self._vision):
            if slot.engine is not None:
                slot.engine.close()


def _scrubbed(prompt: str) -> str:
    """``prompt`` without lone surrogates, a ChatPrompt's messages included."""
    if isinstance(prompt, VisionPrompt):
        return prompt.map_text(scrub_surrogates)
    clean = scrub_surrogates(prompt)
    if isinstance(prompt, ChatPrompt):
        messages = [{k: scrub_surrogates(v) for k, v in m.items()} for m in prompt.messages]
        return ChatPrompt(clean, messages)
    return prompt if clean == prompt else clean
