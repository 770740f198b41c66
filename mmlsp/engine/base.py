"""The engine interface: what every backend (in-process or remote) must offer.

A backend turns one prompt into text. It knows nothing of documents or LSP: the
caller builds the prompt and says when to stop, through ``GenerationRequest``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, final

from mmlsp.engine.templates import Choice, TemplateEvidence, choose_template

FinishReason = Literal["eos", "length", "stop", "cancelled", "deadline"]


class EngineError(RuntimeError):
    """A failure the user should read: a model that won't load, a backend that is down."""


class GenerationFailed(EngineError):
    """The model was loaded but raised while generating."""


ErrorKind = Literal[
    "unreachable", "tls", "timeout", "auth", "model", "endpoint", "unsupported",
    "server", "dropped", "slow", "protocol",
]  # fmt: skip


class BackendError(EngineError):
    """A remote backend failed a request: an expected event with a fixed, readable
    message per cause and place, so that showing it "once" works; ``first`` is False
    while the same failure repeats."""

    def __init__(self, message: str, kind: ErrorKind, first: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.first = first


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
    # Engines that keep prompt KV caches reuse the one under this key (the document
    # URI); None: no reuse. Output is the same either way, only faster.
    cache_key: str | None = None
    # Prompt-lookup draft length per step (0: off); verified, so greedy output holds.
    prompt_lookup: int = 0
    # Draft length per step from the tokens the last request under ``cache_key``
    # generated (0: off); verified like prompt lookup, so greedy output holds.
    reuse_draft: int = 0
    # Token healing: the prompt's last this many characters are a partial word that the
    # answer may go on with (0: none). An engine that heals backs its prompt up over
    # the tokens they end in and makes the first tokens spell them again
    # (``healing.py``); one that does not ignores it. Either way the text returned is
    # what follows the prompt.
    heal: int = 0

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
    # Prompt tokens whose KV came from a kept cache, and those run through the model.
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    # Draft tokens proposed (prompt lookup and reuse drafts), and those confirmed.
    draft_tokens: int = 0
    accepted_draft_tokens: int = 0
    # The log-probability of each generated token (EOS excluded) and the length of the
    # text decoded through it, for the model's confidence in what is shown; empty
    # where the backend does not report them.
    token_logprobs: tuple[float, ...] = ()
    token_ends: tuple[int, ...] = ()


class ChatPrompt(str):
    """A rendered chat prompt that keeps its messages.

    ``Engine.render_chat`` may return one: it is used as the prompt text everywhere a
    string is expected, while a backend that takes messages (an OpenAI-compatible
    server's ``/v1/chat/completions``) sends ``messages`` and lets the server apply
    the model's chat template.
    """

    messages: tuple[dict[str, str], ...]

    def __new__(cls, text: str, messages: list[dict[str, str]]) -> ChatPrompt:
        prompt = super().__new__(cls, text)
        prompt.messages = tuple(dict(m) for m in messages)
        return prompt


@dataclass(frozen=True)
class CacheUsage:
    """Prompt KV caches an engine keeps between requests: entries and their bytes."""

    entries: int = 0
    nbytes: int = 0


@dataclass(frozen=True)
class EngineInfo:
    model: str
    device: str
    dtype: str
    backend: str
    # How the in-process engine decodes (local.DECODE_MODES); "" for remote backends.
    decode: str = ""
    # Why this backend runs the model (the engine choice, factory.choose_engine).
    reason: str = ""


class Engine(ABC):
    """One loaded model: everything the host and the features may ask of a backend.

    Three methods are required; every other has a default that suits an in-process
    model without extras. The host never probes for optional methods.
    """

    info: EngineInfo
    # How the host runs requests. False: ``generate`` on the host's one worker thread,
    # one at a time. True: ``agenerate`` awaited on the event loop, up to
    # ``max_concurrency`` at once (a remote server batches them).
    asynchronous: ClassVar[bool] = False
    max_concurrency: int = 1
    # Problems found while loading that do not stop the engine (a remote server that
    # is down right now, a model it does not list); the host shows them once.
    warnings: Sequence[str] = ()
    # First-time work (page the weights in, compile the decode step) done once after
    # loading, before any user request, on the thread that will run ``generate``;
    # None: nothing to do. Engines that need it define a ``warm_up(self)`` method.
    warm_up: Callable[[], None] | None = None

    @abstractmethod
    def vocabulary(self) -> Collection[str]:
        """Token strings, for detecting the FIM template from special tokens."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes in this model's tokenizer."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate greedily until EOS, ``max_new_tokens``, a stop, cancel or deadline.

        Blocks; the host calls it from its worker thread (``asynchronous`` False).
        """

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        """``generate`` on the caller's event loop; cancelling the task stops it.

        The host calls it for ``asynchronous`` engines, which override it; this
        default runs ``generate`` on a thread of its own.
        """
        return await asyncio.to_thread(self.generate, request)

    # -- prompts ------------------------------------------------------------------------
    def template_evidence(self) -> TemplateEvidence:
        """What the FIM template is chosen from: by default the tokenizer's vocabulary."""
        return TemplateEvidence(self.vocabulary())

    @final
    def choose_template(self, setting: str) -> Choice:
        """The FIM template for the ``fimTemplate`` setting, and where the choice came
        from (``templates.choose_template``, over ``template_evidence``)."""
        return choose_template(setting, self.template_evidence())

    def set_stop_tokens(self, tokens: Collection[str]) -> None:  # noqa: B027 - optional hook
        """End every generation at these special tokens (the FIM template's and the
        chat turn's end tokens); engines that cannot ignore them."""

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The prompt for a chat (``role``/``content`` messages), primed for the answer.

        Backends with a chat template override this. The default is a plain-text
        instruction format that base models follow reasonably well; callers stop
        generation at ``PLAIN_CHAT_MARKERS`` so a base model does not write the
        next turn itself.
        """
        return render_plain_chat(messages)

    def chat_stop_tokens(self) -> tuple[str, ...]:
        """The special tokens that end an assistant turn in the chat template, if any."""
        return ()

    # -- prompt caches (``GenerationRequest.cache_key``) --------------------------------
    @property
    def keeps_prompt_caches(self) -> bool:
        """Whether requests under a ``cache_key`` reuse the KV of the key's last prompt
        (what makes warming a document's prompt worth doing)."""
        return False

    def forget(self, cache_key: str) -> None:  # noqa: B027 - optional hook
        """Drop what is kept under ``cache_key`` (its document was closed)."""

    def cache_usage(self) -> CacheUsage:
        """What the kept prompt caches hold, for the status."""
        return CacheUsage()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release memory held by the model."""


# Turn markers of the plain-text chat format (Alpaca style); a model that writes one
# has finished its answer and started inventing the next turn.
PLAIN_CHAT_MARKERS = ("### Instruction:", "### Response:")


def render_plain_chat(messages: list[dict[str, str]]) -> str:
    """Plain-text chat prompt for models without a chat template."""
    parts: list[str] = []
    for message in messages:
        role, content = message.get("role", "user"), message.get("content", "").strip()
        if role == "system":
            parts.append(content)
        elif role == "assistant":
            parts.append(f"{PLAIN_CHAT_MARKERS[1]}\n{content}")
        else:
            parts.append(f"{PLAIN_CHAT_MARKERS[0]}\n{content}")
    parts.append(f"{PLAIN_CHAT_MARKERS[1]}\n")
    return "\n\n".join(parts)
