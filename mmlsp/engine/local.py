"""In-process engine: a causal LM run by torch + transformers on this machine.

Runs on CUDA when there is one (bf16, or fp16 on older GPUs) and otherwise on the
CPU in fp32. Generation is greedy through ``model.generate`` with a stopping
criterion that applies the caller's streaming stops, cancellation and deadline after
every token, so superseded work ends at the next token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from mmlsp.engine.base import (
    Engine,
    EngineError,
    EngineInfo,
    FinishReason,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.loading import Progress, load_tokenizer_and_model, resolve

log = logging.getLogger(__name__)


def pick_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise EngineError("device 'cuda' was requested but torch sees no CUDA GPU")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def pick_dtype(device: str) -> Any:
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class _Stops:
    """A transformers StoppingCriteria that decodes new tokens and asks the request."""

    def __init__(self, request: GenerationRequest, tokenizer: Any, prompt_len: int) -> None:
        self.request = request
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.reason: FinishReason | None = None
        self.cut: int | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stop = False
        if (reason := self.request.interrupted()) is not None:
            self.reason, stop = reason, True
        else:
            text = self.tokenizer.decode(input_ids[0, self.prompt_len :], skip_special_tokens=True)
            cut = self.request.stop_at(text)
            if cut is not None:
                self.reason, self.cut, stop = "stop", cut, True
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class LocalEngine(Engine):
    def __init__(
        self,
        model_spec: str,
        *,
        device: str = "auto",
        cache_dir: Path,
        extra_stop_tokens: Collection[str] = (),
        progress: Progress = lambda _msg, _pct: None,
    ) -> None:
        import torch

        self._torch = torch
        source = resolve(model_spec)
        device = pick_device(device)
        dtype = pick_dtype(device)
        self.tokenizer, model = load_tokenizer_and_model(
            source, dtype=dtype, cache_dir=cache_dir, progress=progress
        )
        progress(f"moving model to {device}", 80)
        try:
            self.model = model.to(device).eval()
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            raise EngineError(f"could not place model on {device}: {exc}") from exc
        self.device = device
        self._vocab = frozenset(self.tokenizer.get_vocab())
        self.info = EngineInfo(
            model=model_spec,
            device=device,
            dtype=str(dtype).removeprefix("torch."),
            backend="local",
        )
        self.set_stop_tokens(extra_stop_tokens)

    def set_stop_tokens(self, tokens: Collection[str]) -> None:
        """End generation on EOS and on these special tokens (a FIM template's stops)."""
        ids = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[token] for token in tokens if token in vocab)
        self._eos_ids = sorted(ids)

    def vocabulary(self) -> Collection[str]:
        return self._vocab

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, request: GenerationRequest) -> GenerationResult:
        torch = self._torch
        start = time.monotonic()
        inputs = self.tokenizer(request.prompt, return_tensors="pt").to(self.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        if (reason := request.interrupted()) is not None:
            return GenerationResult("", reason, prompt_len, 0, time.monotonic() - start)
        stops = _Stops(request, self.tokenizer, prompt_len)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self._eos_ids[0] if self._eos_ids else 0
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=request.max_new_tokens,
                do_sample=False,
                eos_token_id=self._eos_ids or None,
                pad_token_id=pad_id,
                stopping_criteria=[stops],
            )
        new_ids = output[0, prompt_len:]
        # Drop the EOS or stop token itself before decoding.
        if len(new_ids) and int(new_ids[-1]) in self._eos_ids:
            eos_hit, new_ids = True, new_ids[:-1]
        else:
            eos_hit = False
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        reason: FinishReason
        if stops.reason is not None:
            reason = stops.reason
            if stops.cut is not None:
                text = text[: stops.cut]
        elif eos_hit:
            reason = "eos"
        else:
            reason = "length"
        return GenerationResult(
            text=text,
            finish_reason=reason,
            prompt_tokens=prompt_len,
            generated_tokens=int(len(output[0]) - prompt_len),
            seconds=time.monotonic() - start,
        )

    def close(self) -> None:
        self.model = None
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
