"""One engine the host holds, and the one path that loads, replaces and retires it.

The host has two slots: the main model, which serves completions (and chat, unless
``chatModel`` names another model), and the separate chat model. Both load through
``EngineSlot.load`` on the host's one loader thread, so two models are never
converted at once; a load superseded by a newer one is dropped when it finishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal

from mmlsp.engine.base import Engine, EngineError
from mmlsp.engine.spec import LoadSpec
from mmlsp.engine.templates import check_setting
from mmlsp.prompt.fim import FimTemplate

log = logging.getLogger(__name__)

State = Literal["idle", "loading", "ready", "failed"]
Progress = Callable[[str, int | None], None]
Done = Callable[["Status"], None]


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
    # Why that backend runs the model (e.g. llama.cpp for a GGUF file on the CPU).
    backend_reason: str | None = None
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


class EngineSlot:
    """The engine for one role, its status and, for completions, its FIM template.

    ``completion``: the slot serves completions, so it chooses a FIM template, and a
    reload keeps the old engine serving until the new one is ready. A chat slot
    chooses none, and gives its engine up as soon as its model changes.
    """

    def __init__(
        self,
        name: str,
        make: Callable[[LoadSpec, Progress], Engine],
        loader: Executor,
        retire: Callable[[Engine], None],
        *,
        completion: bool,
    ) -> None:
        self.name = name  # "model", "chat model": for messages
        self.completion = completion
        self._make = make
        self._loader = loader
        self._retire = retire
        self._lock = threading.Lock()
        self._generation = 0
        self.spec: LoadSpec | None = None
        self.engine: Engine | None = None
        self.template: FimTemplate | None = None
        self.status = Status()
        self.ready = threading.Event()

    def load(self, spec: LoadSpec | None, progress: Progress, done: Done) -> bool:
        """Start loading ``spec`` in the background unless it is already loaded or
        loading; None: hold no engine. Returns whether a load was started."""
        with self._lock:
            if spec == self.spec:
                return False
            self.spec = spec
            self._generation += 1
            generation = self._generation
            self.ready.clear()
            self.status = (
                Status(state="loading", model=spec.model, message="loading") if spec else Status()
            )
            old = None
            if not self.completion or spec is None:
                old, self.engine = self.engine, None
        if old is not None:
            self._loader.submit(self._retire, old)  # off the event loop: it may wait
        if spec is None:
            return False
        self._loader.submit(self._load, spec, generation, progress, done)
        return True

    def _load(self, spec: LoadSpec, generation: int, progress: Progress, done: Done) -> None:
        start = time.monotonic()
        engine: Engine | None = None
        template: FimTemplate | None = None
        try:
            if self.completion:
                check_setting(spec.fim_template)  # before the slow part
            engine = self._make(spec, progress)
            stops = engine.chat_stop_tokens()
            fields: dict[str, Any] = {}
            if self.completion:
                template, source = engine.choose_template(spec.fim_template)
                fields = {
                    "template": template.name if template else "none (prefix only)",
                    "template_source": source,
                }
                # The chat turn's end token too: this engine also serves chat requests
                # unless chatModel names another model.
                stops = (*(template.stop if template else ()), *stops)
            if stops:
                engine.set_stop_tokens(stops)
            status = ready_status(spec, engine, start, **fields)
        except Exception as exc:  # any load failure must leave the server up
            if not isinstance(exc, EngineError):
                log.exception("%s load failed", self.name)
            status = Status(state="failed", model=spec.model, message=f"{exc}")
            template = None
        with self._lock:
            if generation != self._generation:  # a newer load superseded this one
                if engine is not None:
                    engine.close()
                return
            old, self.engine = self.engine, (engine if status.state == "ready" else None)
            self.template = template
            self.status = status
            self.ready.set()
        if old is not None and old is not engine:
            self._retire(old)
        done(status)


def ready_status(spec: LoadSpec, engine: Engine, start: float, **fields: Any) -> Status:
    """The status of a freshly loaded engine; ``fields`` add the template's."""
    return Status(
        state="ready",
        model=spec.model,
        device=engine.info.device,
        dtype=engine.info.dtype,
        decode=engine.info.decode or None,
        backend=engine.info.backend,
        backend_reason=engine.info.reason or None,
        # Load-time problems a remote engine found (server down, model not listed).
        warning="; ".join(engine.warnings) if engine.warnings else None,
        message="ready",
        load_seconds=round(time.monotonic() - start, 2),
        **fields,
    )
