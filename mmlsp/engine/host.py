"""Owns the current engine: loads it in the background, reloads it, runs generation.

It may also hold a second engine for chat (code actions, hover, review) when the
``chatModel`` setting names a different model; otherwise chat shares the one engine.

The server never blocks on the model. Loading happens on its own thread while syntax
features keep working; generation runs one request at a time on a single worker
thread (one model cannot decode two prompts at once efficiently), and a request that
was superseded while it waited is dropped before it starts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmlsp.engine.base import (
    Engine,
    EngineError,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.prompts import FimTemplate, detect_template, restrict_to_vocab, template_by_name

log = logging.getLogger(__name__)

State = Literal["idle", "loading", "ready", "failed"]
Progress = Callable[[str, int | None], None]
EngineFactory = Callable[[str, str, Path, Progress], Engine]


def local_engine_factory(model: str, device: str, cache_dir: Path, progress: Progress) -> Engine:
    from mmlsp.engine.local import LocalEngine

    return LocalEngine(model, device=device, cache_dir=cache_dir, progress=progress)


@dataclass(frozen=True)
class LoadSpec:
    model: str
    device: str
    fim_template: str
    cache_dir: str


@dataclass
class Status:
    state: State = "idle"
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    template: str | None = None
    message: str = ""
    load_seconds: float | None = None
    last_latency_ms: float | None = None
    last_finish_reason: str | None = None
    last_generated_tokens: int | None = None
    generations: int = 0
    cancelled: int = 0


class EngineHost:
    def __init__(self, factory: EngineFactory = local_engine_factory) -> None:
        self._factory = factory
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
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmlsp-generate")
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
            old.close()
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
            engine = self._factory(spec.model, spec.device, Path(spec.cache_dir), progress)
            if stops := _chat_stops(engine):
                engine.set_stop_tokens(stops)  # type: ignore[attr-defined]
            status = Status(
                state="ready",
                model=spec.model,
                device=engine.info.device,
                dtype=engine.info.dtype,
                message="ready",
                load_seconds=round(time.monotonic() - start, 2),
            )
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
            template_override = spec.fim_template
            if template_override not in ("auto", "none"):
                template_by_name(template_override)  # validate before the slow part
            engine = self._factory(spec.model, spec.device, Path(spec.cache_dir), progress)
            if template_override == "auto":
                template = detect_template(engine.vocabulary())
            else:
                template = template_by_name(template_override)
                if template is not None:
                    template = restrict_to_vocab(template, engine.vocabulary())
            # The chat turn's end token too: this engine also serves chat requests
            # unless chatModel names another model.
            stops = (*(template.stop if template else ()), *_chat_stops(engine))
            if stops and hasattr(engine, "set_stop_tokens"):
                engine.set_stop_tokens(stops)
            status = Status(
                state="ready",
                model=spec.model,
                device=engine.info.device,
                dtype=engine.info.dtype,
                template=template.name if template else "none (prefix only)",
                message="ready",
                load_seconds=round(time.monotonic() - start, 2),
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
            old.close()
        done(status)

    def wait_ready(self, timeout: float | None = None) -> Status:
        self._ready.wait(timeout)
        return self.status

    async def generate(self, request: GenerationRequest, chat: bool = False) -> GenerationResult:
        """Run on the worker thread; cancelling the awaiting task cancels the request.

        ``chat`` picks the chat engine (the same one unless chatModel differs).
        """
        engine = self.chat_engine if chat else self._engine
        if engine is None:
            status = self.chat_status if chat else self.status
            which = "chat model" if chat else "model"
            raise EngineError(f"{which} is not ready: {status.state} {status.message}")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._worker, engine.generate, request)
        future.add_done_callback(self._record)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            request.cancel.set()
            raise
        except Exception as exc:  # a model that fails mid-generation must not fail the server
            log.exception("generation failed")
            raise GenerationFailed(f"generation failed: {exc}") from exc

    def _record(self, future: asyncio.Future[GenerationResult]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        status = self.status
        status.generations += 1
        status.cancelled += result.finish_reason == "cancelled"
        status.last_latency_ms = round(result.seconds * 1000, 1)
        status.last_finish_reason = result.finish_reason
        status.last_generated_tokens = result.generated_tokens

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self._engine is not None:
            self._engine.close()
        if self._chat_engine is not None:
            self._chat_engine.close()


def _chat_stops(engine: Engine) -> tuple[str, ...]:
    """The end-of-turn tokens of the engine's chat template, if it reports them."""
    stops = getattr(engine, "chat_stop_tokens", None)
    return tuple(stops()) if callable(stops) else ()
