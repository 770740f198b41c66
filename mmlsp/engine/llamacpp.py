"""In-process llama.cpp engine: a GGUF model run by llama.cpp's CPU kernels, through
llama-cpp-python's low-level API (ctypes over libllama), on this machine.

Why in process and not a supervised ``llama-server``: the same kernels, without an
HTTP hop, a JSON stream and a second process to start, watch and restart; and with
the low-level API mmlsp keeps its own decoding loop, so every feature of the torch
engine holds: a KV sequence per document (``n_seq_max`` streams of one context,
trimmed to the prefix shared with the document's last prompt, so only what changed
is prefilled), the caller's streaming stops, cancellation and deadline checked
after every token (and between prefill chunks), and drafts (the document's last
generation, prompt lookup) verified in one batch, keeping only what greedy decoding
would have produced. The measurements behind this choice are in BENCHMARKS.md.

Token healing (``healing.py``) as in the torch engine: the prompt is backed up over
the partial word at the cursor (a shorter prompt: the document's sequence is still
trimmed to the shared prefix), its first tokens are the greedy choice among those
that spell that word again, one a step without drafts, and the text returned starts
at the cursor.

Sliding-window layers (Gemma 3) normally keep only their window, which could not be
trimmed back; ``swa_full`` keeps every position so a sequence trims exactly.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmlsp.engine import chat_template
from mmlsp.engine.base import (
    CacheUsage,
    Engine,
    EngineError,
    EngineInfo,
    FinishReason,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.greedy import GreedyRun
from mmlsp.engine.healing import Constraint, TokenTexts, best_allowed, heal
from mmlsp.engine.kvcache import common_prefix
from mmlsp.engine.loading import Progress, resolve
from mmlsp.engine.lookup import accepted, continuation_draft, ngram_draft
from mmlsp.text.positions import scrub_surrogates

log = logging.getLogger(__name__)

# Documents whose KV sequence is kept (as kvcache.DEFAULT_MAX_ENTRIES for torch).
MAX_DOCUMENTS = 4
# Positions per document's sequence: the prompt (prefix 1500 + suffix 500 + other
# files 500 tokens by default) plus what is generated and drafted, capped by the model.
CONTEXT_PER_DOCUMENT = 4096
# Prompt tokens per llama_decode call while prefilling: cancellation and the deadline
# are checked between chunks. Also the batch size, so the logits buffer holds as many
# rows (262k-token vocabularies make every row 1 MiB).
PREFILL_CHUNK = 128
# As decode.PREVIOUS_TOKENS: reuse drafts come from the last this many tokens the
# sequence held after the shared prefix.
PREVIOUS_TOKENS = 512
COUNT_CACHE_LINES = 4096


def default_threads() -> int:
    """Threads for llama.cpp: OMP_NUM_THREADS where set (the CPU thread count torch
    reads too), else one fewer than the cores this process may run on.

    One core is left to the server's own threads (the LSP loop, parsing) and the
    editor: llama.cpp's threads wait for each other at every layer, so one of them
    descheduled stalls all. On the 2-core benchmark machine, busy with other work, the
    built-in model wrote 49 tokens in 2.3 s on one thread and in 15.5 s on two.
    """
    with contextlib.suppress(ValueError):
        if (wanted := int(os.environ.get("OMP_NUM_THREADS", "0"))) > 0:
            return wanted
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@dataclass
class _Sequence:
    """One document's KV sequence: its llama.cpp seq id and the token at each position."""

    seq: int
    tokens: list[int] = field(default_factory=list)


# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error (5 continues the last line); its
# warnings are about its own choices (the full-size SWA cache asked for here): info.
_NATIVE_LEVELS = {3: logging.INFO, 4: logging.WARNING}
_native_log = logging.getLogger("mmlsp.engine.llamacpp.native")


def _route_native_logs(llama_cpp: Any) -> None:
    """Send libllama's log lines to mmlsp's log (debug, warnings as warnings), never to
    stdout or stderr: stdout carries the LSP stream."""
    if getattr(_route_native_logs, "callback", None) is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", "replace").rstrip()
        if line:
            _native_log.log(_NATIVE_LEVELS.get(level, logging.DEBUG), "%s", line)

    _route_native_logs.callback = callback  # type: ignore[attr-defined]  # kept alive
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


class GgufChatTokenizer:
    """What ``chat_template`` asks of a tokenizer, read from a GGUF file: its Jinja chat
    template (``tokenizer.chat_template``), special tokens and tokenization."""

    def __init__(self, engine: LlamaCppEngine, template: str | None) -> None:
        self._engine = engine
        self.chat_template = template
        self.bos_token = engine.token_text(engine.bos_id) if engine.bos_id >= 0 else None
        self.eos_token = engine.token_text(engine.eos_id) if engine.eos_id >= 0 else None
        self.bos_token_id = engine.bos_id if engine.bos_id >= 0 else None

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": self._engine.tokenize(text)}

    def get_added_vocab(self) -> dict[str, int]:
        return dict(self._engine.special_ids)

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert not tokenize and self.chat_template
        return _jinja_template(self.chat_template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )


@functools.lru_cache(maxsize=4)
def _jinja_template(source: str) -> Any:
    """A chat template compiled in a sandbox, with the helpers templates expect (as
    Hugging Face tokenizers render them)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: time.strftime(fmt)
    return env.from_string(source)


class LlamaCppEngine(Engine):
    """A GGUF model on llama.cpp's CPU kernels, one KV sequence per document."""

    def __init__(
        self,
        model_spec: str,
        *,
        progress: Progress = lambda _msg, _pct: None,
        reason: str = "",
        threads: int | None = None,
        max_documents: int = MAX_DOCUMENTS,
        context_per_document: int = CONTEXT_PER_DOCUMENT,
        repack: bool = False,
        flash_attention: bool = False,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._llama = llama_cpp
        _route_native_logs(llama_cpp)
        source = resolve(model_spec)
        if not source.gguf_file:
            raise EngineError(f"the llama.cpp engine runs GGUF files; {model_spec!r} is not one")
        path = Path(source.location) / source.gguf_file
        progress(f"loading {path.name} (llama.cpp)", 20)
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0
        # Repacked weights run batches through other kernels than single tokens, so a
        # prompt prefilled in chunks and one reused from the cache gave different greedy
        # text after a few dozen tokens; the plain layout computes every row alike.
        model_params.use_extra_bufts = repack
        try:
            self._model = _internals.LlamaModel(
                path_model=str(path), params=model_params, verbose=False
            )
        except (ValueError, OSError) as exc:
            raise EngineError(f"could not read GGUF file {path} (llama.cpp: {exc})") from exc
        self._vocab = self._model.vocab
        train = self._model.n_ctx_train()
        self.context_per_document = (
            min(context_per_document, train) if train > 0 else context_per_document
        )
        self.max_documents = max(1, max_documents)
        self.threads = threads or default_threads()
        progress("allocating the KV cache (llama.cpp)", 60)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.context_per_document * (self.max_documents + 1)
        params.n_batch = params.n_ubatch = PREFILL_CHUNK
        # One more sequence than documents: requests without a cache key (one-off chat)
        # run on their own and never evict a document's.
        params.n_seq_max = self.max_documents + 1
        params.kv_unified = False  # a stream per document: attention spans its own only
        params.swa_full = True  # sliding-window layers keep every position: exact trims
        params.n_threads = params.n_threads_batch = self.threads
        params.no_perf = True
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if flash_attention
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        except ValueError as exc:
            self._model.close()
            raise EngineError(f"llama.cpp could not create a context for {path}: {exc}") from exc
        self._memory = self._ctx.memory
        self._batch = llama_cpp.llama_batch_init(PREFILL_CHUNK, 0, 1)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.bos_id = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos_id = int(llama_cpp.llama_vocab_eos(self._vocab))
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        progress("reading the vocabulary", 80)
        texts = [self.token_text(i) for i in range(self.n_vocab)]
        special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        self.special_ids = {
            text: i
            for i, text in enumerate(texts)
            if text and llama_cpp.llama_vocab_get_attr(self._vocab, i) & special
        }
        self._end_of_generation = {
            i for i in self.special_ids.values() if llama_cpp.llama_vocab_is_eog(self._vocab, i)
        }
        if self.eos_id >= 0:
            self._end_of_generation.add(self.eos_id)
        self._eos_ids = set(self._end_of_generation)
        self._vocabulary = frozenset(texts)
        self._pieces: dict[int, bytes] = {}
        self._token_texts: TokenTexts | None = None  # for token healing, made once
        self._count = functools.lru_cache(maxsize=COUNT_CACHE_LINES)(self._count_uncached)
        metadata = self._model.metadata()
        self.chat_tokenizer = GgufChatTokenizer(self, metadata.get("tokenizer.chat_template"))
        # Document sequences, oldest first; the seq ids not in use.
        self._sequences: OrderedDict[str, _Sequence] = OrderedDict()
        self._free = list(range(self.max_documents))
        self._scratch = _Sequence(self.max_documents)
        self._bytes_per_token = 0  # KV bytes a position takes, measured by warm_up
        self._lock = threading.Lock()  # one generation at a time (the host's worker)
        self._forgotten: set[str] = set()  # documents closed meanwhile
        self._closed = False
        self.info = EngineInfo(
            model=model_spec,
            device="cpu",
            dtype=_file_type(self._model),
            backend="llamacpp",
            decode=f"llama.cpp, {self.threads} thread{'s' if self.threads != 1 else ''}",
            reason=reason,
        )

    # -- tokens -------------------------------------------------------------------------
    def token_text(self, token: int) -> str:
        text = self._llama.llama_vocab_get_text(self._vocab, token)
        return text.decode("utf-8", "replace") if text else ""

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        data = scrub_surrogates(text).encode("utf-8")
        return list(self._model.tokenize(data, add_bos=add_bos and self._add_bos, special=True))

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buffer = ctypes.create_string_buffer(256)
            n = self._llama.llama_token_to_piece(self._vocab, token, buffer, 256, 0, False)
            piece = self._pieces[token] = buffer.raw[: max(0, n)]
        return piece

    def token_texts(self) -> TokenTexts:
        """Every token's bytes as ``detokenize`` writes them, for token healing, read
        once (``warm_up`` does it, else the first request that heals); None for
        control tokens (BOS, FIM markers), which are never healed over nor spelled."""
        if self._token_texts is None:
            llama = self._llama
            control = (
                llama.LLAMA_TOKEN_ATTR_CONTROL
                | llama.LLAMA_TOKEN_ATTR_UNKNOWN
                | llama.LLAMA_TOKEN_ATTR_UNUSED
            )
            self._token_texts = TokenTexts(
                [
                    None
                    if llama.llama_vocab_get_attr(self._vocab, i) & control
                    else self._piece(i) or None
                    for i in range(self.n_vocab)
                ]
            )
        return self._token_texts

    def detokenize(self, tokens: list[int]) -> str:
        """The text of generated tokens, special tokens left out; a character whose
        bytes are not all generated yet is left out until they are."""
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", "ignore")

    def vocabulary(self) -> Collection[str]:
        return self._vocabulary

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def _count_uncached(self, text: str) -> int:
        return len(self.tokenize(text, add_bos=False))

    def set_stop_tokens(self, tokens: Collection[str]) -> None:
        """End generation at EOS, the model's end-of-generation tokens and these."""
        self._eos_ids = self._end_of_generation | {
            self.special_ids[t] for t in tokens if t in self.special_ids
        }

    @property
    def eos_ids(self) -> set[int]:
        return self._eos_ids

    # -- sequences ----------------------------------------------------------------------
    def _take(self, key: str | None, ids: list[int]) -> tuple[_Sequence, int, list[int]]:
        """The sequence for ``key`` trimmed to its common prefix with ``ids`` (at least
        the last prompt token is left to run); how many positions it kept; and the
        tokens the trim dropped (a draft source)."""
        if key is None:
            self._clear(self._scratch)
            return self._scratch, 0, []
        sequence = self._sequences.pop(key, None)
        if sequence is None:
            if not self._free:
                _, evicted = self._sequences.popitem(last=False)
                self._free.append(evicted.seq)
            sequence = _Sequence(self._free.pop())
            self._clear(sequence)
            return sequence, 0, []
        keep = max(0, min(common_prefix(sequence.tokens, ids), len(ids) - 1))
        previous = sequence.tokens[keep:]
        if not self._trim(sequence, keep):
            self._clear(sequence)
            return sequence, 0, []
        return sequence, keep, previous

    def _give_back(self, key: str | None, sequence: _Sequence) -> None:
        if key is not None:
            self._sequences[key] = sequence

    def _trim(self, sequence: _Sequence, length: int) -> bool:
        if length < len(sequence.tokens):
            if not self._llama.llama_memory_seq_rm(self._memory, sequence.seq, length, -1):
                return False
            del sequence.tokens[length:]
        return True

    def _clear(self, sequence: _Sequence) -> None:
        self._llama.llama_memory_seq_rm(self._memory, sequence.seq, -1, -1)
        sequence.tokens.clear()

    def _feed(
        self,
        sequence: _Sequence,
        tokens: list[int],
        outputs: int,
        constraint: Constraint | None = None,
    ) -> tuple[list[int], list[float]]:
        """Run ``tokens`` after what ``sequence`` holds; the greedy next token after
        each of the last ``outputs`` of them, and its log-probability. With a healing
        ``constraint`` (one output): the greedy token among those it allows."""
        import numpy as np

        llama, batch = self._llama, self._batch
        start = len(sequence.tokens)
        n = len(tokens)
        batch.n_tokens = n
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = sequence.seq
            batch.logits[i] = i >= n - outputs
        code = llama.llama_decode(self._ctx.ctx, batch)
        if code != 0:
            # The positions may be partly written: start this sequence afresh next time.
            self._clear(sequence)
            raise EngineError(f"llama.cpp failed to run {n} tokens (llama_decode: {code})")
        sequence.tokens.extend(tokens)
        rows = np.ctypeslib.as_array(llama.llama_get_logits(self._ctx.ctx), (outputs, self.n_vocab))
        if constraint is not None:
            best = np.array([best_allowed(row, constraint) for row in rows])
        else:
            best = rows.argmax(axis=1)
        top = rows[np.arange(outputs), best]
        # log softmax of the chosen logit: top - logsumexp(row), shifted by the top.
        logprobs = -np.log(np.exp(rows - top[:, None]).sum(axis=1))
        return [int(t) for t in best], [float(lp) for lp in logprobs]

    # -- generation ---------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> GenerationResult:
        start = time.monotonic()
        if self._closed:
            raise EngineError("the model was unloaded")
        ids = self.tokenize(request.prompt)
        if (reason := request.interrupted()) is not None or not ids:
            return GenerationResult("", reason or "length", len(ids), 0, time.monotonic() - start)
        texts = self.token_texts() if request.heal > 0 else None
        ids, constraint = heal(ids, texts, request.prompt, request.heal)
        room = (
            self.context_per_document
            - request.max_new_tokens
            - max(request.prompt_lookup, request.reuse_draft)
            - (len(constraint.text) if constraint is not None else 0)
            - 1
        )
        if len(ids) > room:
            raise EngineError(
                f"the prompt takes {len(ids)} tokens and llama.cpp holds "
                f"{self.context_per_document} per document with {request.max_new_tokens} "
                "to generate; lower prefixTokens/suffixTokens"
            )
        with self._lock:
            if request.cache_key is not None:
                self._forgotten.discard(request.cache_key)  # open again
            self._drop_forgotten()
            sequence, reused, previous = self._take(request.cache_key, ids)
            run = _Run(self, request, ids, sequence, previous, constraint)
            try:
                text, finish = run.decode()
            finally:
                self._give_back(request.cache_key, sequence)
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(ids),
            generated_tokens=run.produced,
            seconds=time.monotonic() - start,
            reused_tokens=reused,
            prefilled_tokens=run.prefilled,
            draft_tokens=run.drafted,
            accepted_draft_tokens=run.accepted,
            token_logprobs=tuple(run.logprobs),
            token_ends=tuple(run.ends),
        )

    def warm_up(self) -> None:
        """Page the weights in and set the threads up before the first user request."""
        started = time.monotonic()
        try:
            self.generate(GenerationRequest(" ".join(["warm"] * 8), 2))
            self.token_texts()  # read before the first completion inside a word
            # The warm-up's tokens are still in the scratch sequence: size one position.
            if held := len(self._scratch.tokens):
                size = self._llama.llama_state_seq_get_size(self._ctx.ctx, self._scratch.seq)
                self._bytes_per_token = int(size) // held
        except Exception as exc:  # the first request will say what is wrong
            log.warning("warm-up generation failed: %s", exc)
        log.info("llama.cpp model warmed up in %.2f s", time.monotonic() - started)

    # -- prompt caches ------------------------------------------------------------------
    @property
    def keeps_prompt_caches(self) -> bool:
        return True

    def forget(self, cache_key: str) -> None:
        """Drop the document's sequence; while a generation runs (the host calls this
        from its event loop, which must not wait), at the start of the next one."""
        self._forgotten.add(cache_key)
        if self._lock.acquire(blocking=False):
            try:
                self._drop_forgotten()
            finally:
                self._lock.release()

    def _drop_forgotten(self) -> None:
        while self._forgotten:
            sequence = self._sequences.pop(self._forgotten.pop(), None)
            if sequence is not None:
                self._clear(sequence)
                self._free.append(sequence.seq)

    def cache_usage(self) -> CacheUsage:
        """Documents kept and the bytes their positions take, counted here: the status
        asks from the event loop while a generation may be running on the context."""
        held = sum(len(sequence.tokens) for sequence in list(self._sequences.values()))
        return CacheUsage(len(self._sequences), held * self._bytes_per_token)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._llama.llama_batch_free(self._batch)
            self._ctx.close()
            self._model.close()

    # -- chat ---------------------------------------------------------------------------
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The GGUF's chat template when it has one, else the plain-text format."""
        return chat_template.render_chat(self.chat_tokenizer, messages)

    def chat_stop_tokens(self) -> tuple[str, ...]:
        return chat_template.chat_stop_tokens(self.chat_tokenizer)


def _file_type(model: Any) -> str:
    """The weights' quantization as llama.cpp describes the model ("Q4_K - Medium")."""
    desc = model.desc()  # e.g. "gemma3 270M Q4_K - Medium"
    parts = desc.split(" ", 2)
    return parts[2] if len(parts) == 3 else "gguf"


class _Run(GreedyRun):
    """One greedy generation on a sequence: prefill what it lacks, then decode token by
    token, or draft by draft where a draft was verified. The sequence's tokens stay
    exactly what its KV holds, however the run ends."""

    def __init__(
        self,
        engine: LlamaCppEngine,
        request: GenerationRequest,
        ids: list[int],
        sequence: _Sequence,
        previous: list[int],
        constraint: Constraint | None = None,
    ) -> None:
        self.engine = engine
        self.constraint = constraint
        self.request = request
        self.ids = ids
        self.sequence = sequence
        self.previous = previous
        self.previous_at = max(0, len(previous) - PREVIOUS_TOKENS)
        self._start_taking()
        self.prefilled = 0
        self.drafted = 0
        self.accepted = 0

    def _prefill(self) -> int | None:
        """The greedy token after the prompt, or None when interrupted first."""
        rest = self.ids[len(self.sequence.tokens) :]
        token = None
        for at in range(0, len(rest), PREFILL_CHUNK):
            if at and self.request.interrupted() is not None:
                return None
            chunk = rest[at : at + PREFILL_CHUNK]
            last = at + PREFILL_CHUNK >= len(rest)
            tokens, self.pending_logprobs = self.engine._feed(
                self.sequence, chunk, 1, self.constraint if last and self.healing else None
            )
            token = tokens[0]
            self.prefilled += len(chunk)
        return token

    def _draft(self, last: int) -> list[int]:
        """As decode.Run._draft: the document's last generation first, prompt lookup
        when that has nothing."""
        request = self.request
        budget = min(request.max_new_tokens - self._counted() - 1, PREFILL_CHUNK - 1)
        fed = self.sequence.tokens
        if request.reuse_draft and self.previous:
            draft, self.previous_at = continuation_draft(
                self.previous, [*fed[-2:], last], min(request.reuse_draft, budget), self.previous_at
            )
            if draft:
                return draft
        if request.prompt_lookup:
            return ngram_draft([*fed, last], min(request.prompt_lookup, budget))
        return []

    def _step(self) -> list[int]:
        last = self.generated[-1]
        if self.healing:
            return self._feed_healing(last)
        draft = self._draft(last)
        greedy, self.pending_logprobs = self.engine._feed(
            self.sequence, [last, *draft], len(draft) + 1
        )
        if not draft:
            return greedy
        ok = accepted(draft, greedy)
        self.drafted += len(draft)
        self.accepted += ok
        keep = len(self.sequence.tokens) - (len(draft) - ok)
        if not self.engine._trim(self.sequence, keep):
            raise EngineError("llama.cpp could not drop a rejected draft")
        return greedy[: ok + 1]

    def _feed_healing(self, last: int) -> list[int]:
        """One step while the healed text is spelled: the best token it allows."""
        greedy, self.pending_logprobs = self.engine._feed(self.sequence, [last], 1, self.constraint)
        return greedy

    def _eos_ids(self) -> Collection[int]:
        return self.engine.eos_ids

    def _detokenize(self, ids: list[int]) -> str:
        return self.engine.detokenize(ids)

    def decode(self) -> tuple[str, FinishReason]:
        first = self._prefill()
        if first is None:
            return "", self.request.interrupted() or "cancelled"
        return self.take([first])
