"""Vision-language models: a prompt that carries images, and the in-process engine.

The contract is the ``Engine`` one: a ``VisionPrompt`` is the prompt text (for logs and
counts) that also keeps the chat's messages, whose content is a list of parts, text
and images, in the order the model is to see them, and the decoded images
(``context.images.LoadedImage``) that the image parts stand for. Backends read it as:

* ``LocalVisionEngine`` (here): the model's processor (``AutoProcessor``) renders the
  messages with the model's chat template and turns the images into pixel values;
  ``AutoModelForImageTextToText`` generates greedily, on the host's generation thread
  like the chat model, stopping at EOS, ``max_new_tokens``, the caller's stop, cancel
  or deadline (checked after every token);
* ``openai.OpenAIEngine``: the messages go to ``/v1/chat/completions`` with each image
  as an ``image_url`` part holding a base64 ``data:`` URL (vLLM, SGLang, llama.cpp's
  server accept them), so an image leaves the machine only for a configured server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from mmlsp.engine.base import (
    Engine,
    EngineError,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    render_plain_chat,
)
from mmlsp.engine.loading import _from_pretrained, is_out_of_memory, out_of_memory_message, resolve
from mmlsp.engine.modes import pick_device, pick_dtype

if TYPE_CHECKING:
    from mmlsp.context.images import LoadedImage

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]
# A message: role, and content that is text or a list of parts ({"type": "text",
# "text": ...} or {"type": "image"}), as transformers' processors' chat templates take.
Message = dict[str, Any]


class VisionPrompt(str):
    """A chat with images: its plain-text rendering, the messages and the images (one
    per ``{"type": "image"}`` part, in order)."""

    messages: tuple[Message, ...]
    images: tuple[LoadedImage, ...]

    def __new__(cls, messages: Sequence[Message], images: Sequence[LoadedImage]) -> VisionPrompt:
        parts = sum(
            1
            for m in messages
            if isinstance(m.get("content"), list)
            for p in m["content"]
            if p.get("type") == "image"
        )
        if parts != len(images):
            raise ValueError(f"{parts} image parts but {len(images)} images")
        prompt = super().__new__(cls, render_plain_chat([flatten(m) for m in messages]))
        prompt.messages = tuple(dict(m) for m in messages)
        prompt.images = tuple(images)
        return prompt

    def map_text(self, fix: Callable[[str], str]) -> VisionPrompt:
        """The same prompt with ``fix`` applied to every text (e.g. scrubbing)."""
        messages = []
        for m in self.messages:
            content = m.get("content", "")
            if isinstance(content, list):
                content = [
                    {**p, "text": fix(p["text"])} if p.get("type") == "text" else dict(p)
                    for p in content
                ]
            else:
                content = fix(str(content))
            messages.append({**m, "content": content})
        return VisionPrompt(messages, self.images)

    def openai_messages(self) -> list[dict[str, Any]]:
        """The messages for ``/v1/chat/completions``: images as ``image_url`` parts."""
        images = iter(self.images)
        out: list[dict[str, Any]] = []
        for m in self.messages:
            content = m.get("content", "")
            if isinstance(content, list):
                parts: list[dict[str, Any]] = []
                for p in content:
                    if p.get("type") == "image":
                        url = next(images).data_url()
                        parts.append({"type": "image_url", "image_url": {"url": url}})
                    else:
                        parts.append({"type": "text", "text": p.get("text", "")})
                content = parts
            out.append({"role": m.get("role", "user"), "content": content})
        return out


def flatten(message: Message) -> dict[str, str]:
    """A message as plain text: its text parts, with "[image]" for each image."""
    content = message.get("content", "")
    if isinstance(content, list):
        content = "\n".join(
            "[image]" if p.get("type") == "image" else str(p.get("text", "")) for p in content
        )
    return {"role": str(message.get("role", "user")), "content": str(content)}


def user_message(text: str, images: int = 1) -> Message:
    """One user turn: ``images`` image parts, then the text."""
    return {"role": "user", "content": [*({"type": "image"} for _ in range(images)),
                                        {"type": "text", "text": text}]}  # fmt: skip


class LocalVisionEngine(Engine):
    """A vision-language model in this process, through transformers' auto classes."""

    def __init__(
        self,
        model_spec: str,
        *,
        device: str = "auto",
        progress: Progress = lambda _m, _p: None,
        trust_remote_code: bool = False,
        dtype: str = "auto",
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self._torch = torch
        source = resolve(model_spec)
        if source.gguf_file:
            raise EngineError(
                "visionModel must be a transformers model (a Hugging Face id or a directory), "
                "not a GGUF file"
            )
        device = pick_device(device)
        torch_dtype = pick_dtype(device, "auto" if dtype == "int8" else dtype)
        progress("loading the vision model's processor", 10)
        try:
            self.processor = _from_pretrained(
                AutoProcessor, source, trust_remote_code=trust_remote_code
            )
            progress("loading the vision model", 30)
            model = _from_pretrained(
                AutoModelForImageTextToText,
                source,
                dtype=torch_dtype,
                trust_remote_code=trust_remote_code,
            )
            self.model = model.to(device).eval()
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if is_out_of_memory(exc):
                raise EngineError(out_of_memory_message(model_spec, exc)) from exc
            raise EngineError(f"could not load vision model {model_spec!r}: {exc}") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise EngineError(f"could not load vision model {model_spec!r}: {exc}") from exc
        tokenizer: Any = getattr(self.processor, "tokenizer", None)
        if tokenizer is None:
            raise EngineError(f"vision model {model_spec!r} has a processor without a tokenizer")
        self.tokenizer = tokenizer
        self.device = device
        self._stops: tuple[str, ...] = ()
        self.info = EngineInfo(
            model=model_spec,
            device=device,
            dtype=str(torch_dtype).removeprefix("torch."),
            backend="local",
        )

    # -- Engine interface ---------------------------------------------------------------
    def vocabulary(self) -> Collection[str]:
        return self.tokenizer.get_vocab().keys()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def set_stop_tokens(self, tokens: Collection[str]) -> None:
        self._stops = tuple(tokens)

    def chat_stop_tokens(self) -> tuple[str, ...]:
        eos = self.tokenizer.eos_token
        return (eos,) if isinstance(eos, str) and eos else ()

    def generate(self, request: GenerationRequest) -> GenerationResult:
        start = time.monotonic()
        if (reason := request.interrupted()) is not None:
            return GenerationResult("", reason, 0, 0, 0.0)
        prompt = request.prompt
        if isinstance(prompt, VisionPrompt):
            messages, images = list(prompt.messages), [i.image for i in prompt.images]
        else:
            messages, images = [user_message(str(prompt), images=0)], []
        torch = self._torch
        text = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        inputs = self.processor(text=[text], images=images or None, return_tensors="pt").to(
            self.device
        )
        if "pixel_values" in inputs and self.model.dtype.is_floating_point:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt_len = int(inputs["input_ids"].shape[1])
        stopper = _Stopper(request, self.tokenizer, prompt_len, self._stops)
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    **inputs,
                    max_new_tokens=request.max_new_tokens,
                    do_sample=False,
                    stopping_criteria=[stopper],
                )
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if is_out_of_memory(exc):
                raise EngineError(out_of_memory_message(self.info.model, exc)) from exc
            raise
        new = out[0, prompt_len:]
        generated = int(new.shape[0])
        text_out = self.tokenizer.decode(new, skip_special_tokens=True)
        finish = stopper.reason
        if finish is None:
            finish = "length" if generated >= request.max_new_tokens else "eos"
        cut = request.stop_at(text_out)
        if cut is not None:
            text_out, finish = text_out[:cut], "stop"
        return GenerationResult(
            text=text_out,
            finish_reason=finish,
            prompt_tokens=prompt_len,
            generated_tokens=generated,
            seconds=time.monotonic() - start,
            prefilled_tokens=prompt_len,
        )

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


class _Stopper:
    """A transformers stopping criterion: the caller's stop, cancel and deadline."""

    def __init__(
        self, request: GenerationRequest, tokenizer: Any, prompt_len: int, stops: Sequence[str]
    ) -> None:
        self.request = request
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stops = [s for s in stops if s]
        self.reason: Any = None

    def __call__(self, input_ids: Any, scores: Any, **_kwargs: Any) -> Any:
        import torch

        done = False
        new = input_ids[0, self.prompt_len :]
        if (reason := self.request.interrupted()) is not None:
            self.reason, done = reason, True
        elif self.stops and any(s in self.tokenizer.decode(new) for s in self.stops):
            done = True  # a turn's end token; "eos" as far as the caller cares
        elif self.request.stop_at(self.tokenizer.decode(new, skip_special_tokens=True)) is not None:
            self.reason, done = "stop", True
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def local_vision_factory(
    model: str,
    device: str,
    progress: Progress,
    trust_remote_code: bool = False,
    dtype: str = "auto",
) -> Engine:
    return LocalVisionEngine(
        model, device=device, progress=progress, trust_remote_code=trust_remote_code, dtype=dtype
    )
