"""How the in-process model runs: its device and dtype, and the decode mode its layers
allow (which KV caches can be kept, cropped or preallocated for it).
"""

from __future__ import annotations

import logging
from typing import Any

from mmlsp.config import DECODE_MODES, DTYPES
from mmlsp.engine.base import EngineError

log = logging.getLogger(__name__)


def pick_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise EngineError("device 'cuda' was requested but torch sees no CUDA GPU")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def pick_dtype(device: str, requested: str = "auto") -> Any:
    """The torch dtype for ``requested`` (config.DTYPES) on ``device``."""
    import torch

    if requested not in DTYPES:
        raise EngineError(f"unknown dtype {requested!r}; use one of {DTYPES}")
    if requested == "int8":
        if device != "cpu":
            raise EngineError("dtype 'int8' is for the CPU; on a GPU use 'auto' (bfloat16)")
        return torch.bfloat16  # int8 weights, bfloat16 arithmetic (quantize.py)
    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # float32 on the CPU: exact prefix reuse, and no CPU is slow at it.
    return torch.float32


def text_config(config: Any) -> Any:
    """The decoder's own config (multimodal models nest it)."""
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def layer_types(config: Any) -> tuple[str, ...]:
    """The attention kind of each decoder layer, where the config lists them."""
    return tuple(getattr(text_config(config), "layer_types", None) or ())


def plain_cache_ok(config: Any) -> bool:
    """Whether a plain ``DynamicCache()`` (full layers, croppable) serves this model.

    True for models whose layers are all full or sliding-window attention: a full
    layer holds every position, and the sliding layers' mask comes from the config.
    Recurrent, linear-attention or KV-sharing models keep their own cache classes.
    """
    if getattr(text_config(config), "num_kv_shared_layers", 0):
        return False
    return all(kind in ("full_attention", "sliding_attention") for kind in layer_types(config))


def sliding_window(config: Any) -> int:
    """The window of the model's sliding-attention layers; 0 without any."""
    if "sliding_attention" not in layer_types(config):
        return 0
    return int(getattr(text_config(config), "sliding_window", 0) or 0)


def static_cache_ok(config: Any) -> bool:
    """Whether a ``StaticCache`` can be cropped for this model: every layer full attention."""
    kinds = layer_types(config)
    return plain_cache_ok(config) and all(kind == "full_attention" for kind in kinds)


def compiled_on_static_cache(device: str) -> bool:
    """Whether "compiled" decodes over the engine's static cache on ``device``.

    On CUDA, yes: graphs replay fixed shapes at fixed addresses. On the CPU the step
    is compiled with dynamic shapes over each document's ``DynamicCache`` instead: a
    static cache's attention spans all its positions, and on the tiny model that made
    a cold call 56 ms against 28.
    """
    return device == "cuda"


def pick_decode_mode(requested: str, device: str, config: Any) -> str:
    """The decode mode that runs: ``requested``, or "dynamic" where it cannot."""
    if requested not in DECODE_MODES:
        raise EngineError(f"unknown decode mode {requested!r}; use one of {DECODE_MODES}")
    if requested == "auto":
        return "compiled" if device == "cuda" and static_cache_ok(config) else "dynamic"
    if requested == "compiled" and not compiled_on_static_cache(device):
        if plain_cache_ok(config):
            return requested
        log.warning("decode mode 'compiled' needs a plain KV cache; using dynamic")
        return "dynamic"
    if requested != "dynamic" and not static_cache_ok(config):
        log.warning("decode mode %r needs full-attention layers only; using dynamic", requested)
        return "dynamic"
    return requested
