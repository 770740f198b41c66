"""In-process engine: a causal LM run by torch + transformers on this machine.

Runs on CUDA when there is one (bf16, or fp16 on older GPUs, SDPA attention) and
otherwise on the CPU in fp32. Generation is our own greedy loop over ``model(...)``:
it keeps each document's KV cache (``kvcache.PrefixCache``) and prefills only the
tokens after the prefix shared with the last prompt, verifies drafts (``lookup.py``:
the document's last generation, and prompt lookup when asked), and applies the
caller's streaming stops, cancellation and deadline after every token, so
superseded work ends at the next token.

Decode modes (``DECODE_MODES``): "dynamic" grows a ``DynamicCache`` per document;
"static" keeps one preallocated ``StaticCache`` for the engine, so every decode step
has the same shapes and addresses; "compiled" runs the one-token decode step through
``torch.compile``, compiled once at load: on CUDA over the static cache (CUDA graphs,
mode "reduce-overhead"), on the CPU over the documents' dynamic caches, with dynamic
shapes. "auto" is "compiled" on CUDA for models whose layers are all full attention,
else "dynamic". Prefill and draft verification always run eagerly.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mmlsp.engine import chat_template
from mmlsp.engine.base import (
    CacheUsage,
    Engine,
    EngineError,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.decode import Run
from mmlsp.engine.healing import TokenTexts, heal, token_texts
from mmlsp.engine.kvcache import PrefixCache, Reuse, crop
from mmlsp.engine.loading import (
    Progress,
    is_out_of_memory,
    load_tokenizer_and_model,
    out_of_memory_message,
    resolve,
)
from mmlsp.engine.modes import (
    compiled_on_static_cache,
    pick_decode_mode,
    pick_device,
    pick_dtype,
    plain_cache_ok,
    sliding_window,
    text_config,
)
from mmlsp.engine.tokens import PromptEncoder
from mmlsp.text.positions import scrub_surrogates

log = logging.getLogger(__name__)


# Positions in the static cache: prompt plus generation, capped by the model's limit.
# A request that needs more runs on a dynamic cache instead.
STATIC_CACHE_TOKENS = 4096
# The static cache's PrefixCache key: one cache for the engine, whatever the document.
STATIC_KEY = "\0static"

# Token counts remembered, by text: the windows of a few open documents (~1 MB at most;
# each keystroke adds its cursor line, so more would only hold stale ones).
COUNT_CACHE_LINES = 4096


class LocalEngine(Engine):
    def __init__(
        self,
        model_spec: str,
        *,
        device: str = "auto",
        cache_dir: Path,
        extra_stop_tokens: Collection[str] = (),
        progress: Progress = lambda _msg, _pct: None,
        trust_remote_code: bool = False,
        decode_mode: str = "auto",
        dtype: str = "auto",
    ) -> None:
        import torch

        self._torch = torch
        source = resolve(model_spec)
        device = pick_device(device)
        torch_dtype = pick_dtype(device, dtype)
        self.tokenizer, model = load_tokenizer_and_model(
            source,
            dtype=torch_dtype,
            cache_dir=cache_dir,
            progress=progress,
            trust_remote_code=trust_remote_code,
        )
        progress(f"moving model to {device}", 80)
        try:
            self.model = model.to(device).eval()
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if is_out_of_memory(exc):
                raise EngineError(out_of_memory_message(model_spec, exc)) from exc
            raise EngineError(f"could not place model on {device}: {exc}") from exc
        # Quantized on the thread that generates (warm_up, or the first request): torch
        # ops on the loading thread would give it an OpenMP team of its own, and with
        # more OpenMP threads than cores Gemma-3-270M decoded 47 ms a token, not 29.
        self._int8_pending = dtype == "int8"
        if self._int8_pending:
            progress("quantizing the weights to int8", 85)
        self.device = device
        self._vocab = frozenset(self.tokenizer.get_vocab())
        # Context fitting counts the window line by line on every keystroke, and only
        # the cursor's line changes between two: remembered counts make that ~free.
        self._count = functools.lru_cache(maxsize=COUNT_CACHE_LINES)(self._count_uncached)
        # And the prompt's ids: only the pieces that changed are tokenized again.
        self.prompt_encoder = PromptEncoder(self.tokenizer)
        self.set_stop_tokens(extra_stop_tokens)
        self._token_texts: TokenTexts | None = None  # for token healing, made once
        self._healing_ok = True
        # KV caches of recent prompts by document, for prefix reuse (see kvcache.py).
        self.prefix_cache = PrefixCache()
        self._reusable = plain_cache_ok(self.model.config)
        forward_params = inspect.signature(self.model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in forward_params
        # The KV cache argument and output: `cache` in transformers 5.x releases that
        # deprecate `past_key_values` (it goes in 5.40), `past_key_values` before them.
        self._cache_name = "cache" if "cache" in forward_params else "past_key_values"
        mode = pick_decode_mode(decode_mode, device, self.model.config)
        self._static: Any = None  # the engine's one StaticCache ("static", "compiled" on CUDA)
        self._static_tokens = 0
        self._decode_step: Any = None  # the compiled one-token forward ("compiled")
        if mode == "static" or (mode == "compiled" and compiled_on_static_cache(device)):
            self._prepare_static()
        if mode == "compiled":
            mode = self._compile_step(progress)
        self.info = EngineInfo(
            model=model_spec,
            device=device,
            dtype="int8" if dtype == "int8" else str(torch_dtype).removeprefix("torch."),
            backend="local",
            decode=mode,
        )

    def _quantize(self) -> None:
        """Make the weights int8 (dtype "int8"), once."""
        if not self._int8_pending or self.model is None:
            return  # every request passes here: nothing more than the check
        from mmlsp.engine.quantize import native_bfloat16, quantize_linears

        self._int8_pending = False
        if not native_bfloat16():
            log.warning("this CPU has no native bfloat16: dtype int8 may be slower than float32")
        started = time.monotonic()
        count = quantize_linears(self.model)
        log.info("int8: %d linear layers quantized in %.1f s", count, time.monotonic() - started)

    def set_stop_tokens(self, tokens: Collection[str]) -> None:
        """End generation on EOS and on these special tokens (a FIM template's stops)."""
        ids = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[token] for token in tokens if token in vocab)
        self._eos_ids = sorted(ids)

    @property
    def eos_ids(self) -> list[int]:
        """The token ids that end a generation (EOS and the stop tokens)."""
        return self._eos_ids

    def vocabulary(self) -> Collection[str]:
        return self._vocab

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def _count_uncached(self, text: str) -> int:
        return len(self.tokenizer(scrub_surrogates(text), add_special_tokens=False)["input_ids"])

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Greedy decoding over ``model(...)`` with a kept KV cache.

        Our own loop rather than ``model.generate``: it prefills only the tokens after
        the prefix shared with the document's last prompt, checks stops, cancellation
        and the deadline after every token (and between prefill chunks), verifies
        prompt-lookup drafts, and leaves the cache in a state that can be kept.
        """
        start = time.monotonic()
        self._quantize()
        ids = self.prompt_encoder.encode(request.prompt)
        if (reason := request.interrupted()) is not None or not ids:
            return GenerationResult("", reason or "length", len(ids), 0, time.monotonic() - start)
        texts = self.token_texts() if request.heal > 0 else None
        ids, constraint = heal(ids, texts, request.prompt, request.heal)
        # The static cache fits the prompt and every token this request may add.
        need = len(ids) + request.max_new_tokens + request.prompt_lookup + 1
        need += len(constraint.text) if constraint is not None else 0
        static = self._static is not None and need <= self._static_tokens
        key = request.cache_key if self._reusable else None
        if static:
            key = STATIC_KEY if key is not None else None
        reuse = self.prefix_cache.take(key, ids) if key is not None else Reuse(None, 0)
        run = Run(self, request, ids, reuse, static=static, constraint=constraint)
        with self._torch.inference_mode():
            try:
                text, reason = run.decode()
            finally:
                if key is not None and run.cache is not None:
                    self.prefix_cache.put(key, run.fed, run.cache)
        return GenerationResult(
            text=text,
            finish_reason=reason,
            prompt_tokens=len(ids),
            generated_tokens=run.produced,
            seconds=time.monotonic() - start,
            reused_tokens=reuse.reused,
            prefilled_tokens=run.prefilled,
            draft_tokens=run.drafted,
            accepted_draft_tokens=run.accepted,
            token_logprobs=tuple(run.logprobs),
            token_ends=tuple(run.ends),
        )

    def token_texts(self) -> TokenTexts | None:
        """Every token's bytes, for token healing, computed once (``warm_up`` does it,
        else the first request that heals; 1.4 s for Gemma-3's 262k tokens); None
        when this tokenizer's could not be read (no healing then)."""
        if self._token_texts is None and self._healing_ok:
            try:
                self._token_texts = token_texts(self.tokenizer)
            except Exception as exc:  # an unusual tokenizer: complete without healing
                log.warning("token healing off: could not read the token texts (%s)", exc)
                self._healing_ok = False
        return self._token_texts

    def forward(
        self, tokens: list[int], cache: Any, keep: int, decode: bool = False
    ) -> tuple[Any, Any]:
        """Run ``tokens`` after what ``cache`` holds; the last ``keep`` logits and the cache.

        ``decode``: one token after others, which the compiled step runs when it has one.
        """
        torch = self._torch
        if self.model is None:  # closed by a reload or shutdown while generating
            raise EngineError("the model was unloaded during generation")
        input_ids = torch.tensor([tokens], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {"logits_to_keep": keep} if self._logits_to_keep else {}
        kwargs[self._cache_name] = cache
        # On CUDA the step was compiled for the static cache; on the CPU for any dynamic one.
        fits = self._static is None or cache is self._static
        if decode and self._decode_step is not None and fits:
            try:
                out = self._decode_step(input_ids=input_ids, use_cache=True, **kwargs)
            except Exception as exc:  # e.g. a graph that cannot be recorded on this GPU
                log.warning("compiled decode step failed (%s); decoding eagerly from now on", exc)
                self._decode_eagerly()
                raise EngineError(f"compiled decode step failed: {exc}") from exc
            # Copied out: a CUDA graph reuses its output buffer on the next replay.
            return out.logits[0, -keep:].clone(), getattr(out, self._cache_name)
        out = self.model(input_ids=input_ids, use_cache=True, **kwargs)
        return out.logits[0, -keep:], getattr(out, self._cache_name)

    def fresh_cache(self, static: bool = False) -> Any:
        """An empty cache: the engine's static one when asked, else a plain croppable
        ``DynamicCache`` where the model allows it."""
        if static and self._static is not None:
            crop(self._static, 0)
            return self._static
        if not self._reusable:
            return None  # the model builds its own kind
        from transformers import DynamicCache

        return DynamicCache()

    def _prepare_static(self) -> None:
        """Allocate the engine's one static cache."""
        from transformers import StaticCache

        limit = getattr(text_config(self.model.config), "max_position_embeddings", 0)
        self._static_tokens = min(STATIC_CACHE_TOKENS, limit or STATIC_CACHE_TOKENS)
        self._static = StaticCache(config=self.model.config, max_cache_len=self._static_tokens)

    def _compile_step(self, progress: Progress) -> str:
        """Wrap the decode step in ``torch.compile`` (compiled by ``warm_up``, on the
        thread that will decode); the mode that runs."""
        progress("compiling the decode step (a minute on the first start)", 90)
        static = self._static is not None
        # CUDA graphs replay the whole step with one launch; elsewhere inductor's kernels,
        # with the cache length symbolic so that one graph serves every length.
        compile_mode = "reduce-overhead" if self.device == "cuda" else "default"
        try:
            self._decode_step = self._torch.compile(
                self.model, mode=compile_mode, dynamic=not static
            )
        except Exception as exc:  # no compiler: eager still works
            log.warning("could not compile the decode step (%s); decoding eagerly", exc)
            return self._eager_mode
        return "compiled"

    @property
    def _eager_mode(self) -> str:
        """The mode left when the compiled step is dropped."""
        return "static" if self._static is not None else "dynamic"

    def _decode_eagerly(self) -> None:
        self._decode_step = None
        self.info = dataclasses.replace(self.info, decode=self._eager_mode)

    def warm_up(self) -> None:
        """Run the model once now, so that no user request pays for first-time work.

        Eagerly, one short generation: Gemma-3-270M's first call on the CPU took 1982
        ms against 1090 for the next (float32 weights paged in, kernels set up). With
        a compiled step, compile it and record its graphs. Call it on the thread that
        will generate: CUDA graph trees are kept per thread, so graphs recorded on
        another thread would be recorded again on the first request. Falls back to
        eager decoding rather than failing. Quantizes the weights first (dtype
        "int8"), for the same reason: this is the generating thread.
        """
        self._quantize()
        started = time.monotonic()
        self.token_texts()
        if self._decode_step is None:
            try:
                self.generate(GenerationRequest(" ".join(["warm"] * 8), 2))
            except Exception as exc:  # the first request will say what is wrong
                log.warning("warm-up generation failed: %s", exc)
            log.info("model warmed up in %.2f s", time.monotonic() - started)
            return
        # Over dynamic caches, sliding-window masks branch on the length passing the
        # window: one graph either side (Gemma-3 recompiled on its first real prompt).
        window = sliding_window(self.model.config) if self._static is None else 0
        try:
            for words in [8, *([window + 8] if window else [])]:
                warm = GenerationRequest(" ".join(["warm"] * words), 4, cache_key=STATIC_KEY)
                self.generate(warm)  # compiles, then records the graphs
                self.generate(warm)
        except Exception as exc:  # an unsupported op, a failed capture
            if self._decode_step is not None:  # else forward() has logged and fallen back
                log.warning("could not compile the decode step (%s); decoding eagerly", exc)
            self._decode_eagerly()
        finally:
            self.prefix_cache.clear()
        log.info("decode step ready (%s) in %.1f s", self.info.decode, time.monotonic() - started)

    @property
    def keeps_prompt_caches(self) -> bool:
        return True

    def forget(self, cache_key: str) -> None:
        self.prefix_cache.drop(cache_key)

    def cache_usage(self) -> CacheUsage:
        return CacheUsage(len(self.prefix_cache), self.prefix_cache.nbytes)

    def close(self) -> None:
        self.model = None
        if self.device == "cuda":
            self._torch.cuda.empty_cache()

    # -- chat (instruction) prompts, for code actions, hover and review ----------------
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The tokenizer's chat template when it has one, else the plain-text fallback."""
        return chat_template.render_chat(self.tokenizer, messages)

    def chat_stop_tokens(self) -> tuple[str, ...]:
        return chat_template.chat_stop_tokens(self.tokenizer)
