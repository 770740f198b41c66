"""The engine interface: what every backend (in-process or remote) must offer.

A backend turns one prompt into text. It knows nothing of documents or LSP: the
caller builds the prompt and says when to stop, through ``GenerationRequest``.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["eos", "length", "stop", "cancelled", "deadline"]


class EngineError(RuntimeError):
    """A failure the user should read: a model that won't load, a backend that is down."""


@dataclass
class GenerationRequest:
    prompt: str
    max_new_tokens: int
    # Called with the text generated so far; returns the index to cut it at when
    # generation should end there, else None. Checked after every token.
    stop_at: Callable[[str], int | None] = lambda _text: None
    cancel: threading.Event = field(default_factory=threading.Event)
    # time.monotonic() value after which generation stops with what it has.
    deadline: float | None = None

    def interrupted(self) -> FinishReason | None:
        if self.cancel.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "deadline"
        return None


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    generated_tokens: int
    seconds: float


@dataclass(frozen=True)
class EngineInfo:
    model: str
    device: str
    dtype: str
    backend: str


class Engine(ABC):
    """One loaded model. ``generate`` blocks and is called from a worker thread."""

    info: EngineInfo

    @abstractmethod
    def vocabulary(self) -> Collection[str]:
        """Token strings, for detecting the FIM template from special tokens."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes in this model's tokenizer."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate greedily until EOS, ``max_new_tokens``, a stop, cancel or deadline."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release memory held by the model."""
