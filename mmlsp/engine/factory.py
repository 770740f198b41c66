"""Making an engine from a ``LoadSpec``: the backends' constructors, as the host calls
them (its factories can be replaced, e.g. by a test double), and the choice of the
in-process engine (``choose_engine``): llama.cpp for a GGUF model on the CPU, torch +
transformers for everything else."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mmlsp.config import BUILTIN_CHAT_MODEL, BUILTIN_MODEL
from mmlsp.engine.base import Engine
from mmlsp.engine.spec import LoadSpec, RemoteSpec

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mmlsp[cpu]' (or llama-cpp-python==0.3.36)"

Progress = Callable[[str, int | None], None]


# Makes an in-process engine: (model, device, cache_dir, progress, **extra). The keyword
# arguments (``local_extras``) are passed only when not the default, so simple
# factories need not take them.
EngineFactory = Callable[..., Engine]
RemoteFactory = Callable[[LoadSpec, Progress], Engine]


@dataclass(frozen=True)
class EngineChoice:
    """Which in-process engine runs a model, why (for the status), and a message for
    the user when a faster engine was wanted but is missing."""

    kind: Literal["torch", "llamacpp"]
    reason: str
    warning: str = ""


def is_gguf(model: str) -> bool:
    """Whether the ``model`` setting names a GGUF file (the builtin models are GGUF)."""
    return model in (BUILTIN_MODEL, BUILTIN_CHAT_MODEL) or model.lower().endswith(".gguf")


def choose_engine(
    model: str,
    device: str,
    *,
    cuda: bool,
    llama_cpp: bool,
    dtype: str = "auto",
    decode_mode: str = "auto",
) -> EngineChoice:
    """The in-process engine for a model on a device. Pure: the caller says whether
    there is a CUDA GPU and whether llama-cpp-python imports.

    llama.cpp runs GGUF files on the CPU with their quantized kernels: twice the speed
    of torch on the weights dequantized to float32, no conversion and a fraction of
    the memory (BENCHMARKS.md, "llama.cpp engine"). Torch keeps CUDA, models that are
    not GGUF, and the torch-only settings (dtype, decodeMode).
    """
    if not is_gguf(model):
        return EngineChoice("torch", "not a GGUF file: torch + transformers")
    if device == "cuda" or (device == "auto" and cuda):
        return EngineChoice("torch", "a CUDA GPU: torch + transformers")
    if dtype != "auto" or decode_mode != "auto":
        setting = "dtype" if dtype != "auto" else "decodeMode"
        return EngineChoice("torch", f"{setting} is set, a torch setting: torch + transformers")
    if not llama_cpp:
        return EngineChoice(
            "torch",
            "GGUF on the CPU without llama-cpp-python: torch on float32 weights",
            warning="llama-cpp-python is not installed, so the GGUF model is converted to "
            "float32 and runs on torch: about half the speed, a slow first start and "
            f"several times the memory. For llama.cpp on the CPU: {INSTALL_HINT}",
        )
    return EngineChoice("llamacpp", "GGUF on the CPU: llama.cpp's quantized kernels")


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU; without an NVIDIA driver, False without importing
    torch (the llama.cpp engine never needs it)."""
    if not os.path.exists("/proc/driver/nvidia/version") and not os.environ.get(
        "CUDA_VISIBLE_DEVICES"
    ):
        return False
    import torch

    return bool(torch.cuda.is_available())


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def local_engine_factory(
    model: str,
    device: str,
    cache_dir: Path,
    progress: Progress,
    trust_remote_code: bool = False,
    decode_mode: str = "auto",
    dtype: str = "auto",
) -> Engine:
    choice = choose_engine(
        model,
        device,
        cuda=device != "cpu" and cuda_available(),
        llama_cpp=is_gguf(model) and llama_cpp_available(),
        dtype=dtype,
        decode_mode=decode_mode,
    )
    log.info("in-process engine: %s (%s)", choice.kind, choice.reason)
    if choice.kind == "llamacpp":
        from mmlsp.engine.llamacpp import LlamaCppEngine

        try:
            return LlamaCppEngine(model, progress=progress, reason=choice.reason)
        except ImportError as exc:  # installed but its native library will not load
            choice = EngineChoice(
                "torch",
                "llama-cpp-python failed to import: torch on float32 weights",
                warning=f"llama-cpp-python failed to import ({exc}); the GGUF model runs "
                f"on torch instead. Reinstall it: {INSTALL_HINT}",
            )
    from mmlsp.engine.local import LocalEngine

    engine = LocalEngine(
        model,
        device=device,
        cache_dir=cache_dir,
        progress=progress,
        trust_remote_code=trust_remote_code,
        decode_mode=decode_mode,
        dtype=dtype,
    )
    engine.info = dataclasses.replace(engine.info, reason=choice.reason)
    if choice.warning:
        log.warning("%s", choice.warning)
        engine.warnings = (*engine.warnings, choice.warning)
    return engine


def local_extras(spec: LoadSpec) -> dict[str, Any]:
    """The keyword arguments for ``EngineFactory``: those that are not the default."""
    extra: dict[str, Any] = {"trust_remote_code": True} if spec.trust_remote_code else {}
    if spec.decode_mode != "auto":
        extra["decode_mode"] = spec.decode_mode
    if spec.dtype != "auto":
        extra["dtype"] = spec.dtype
    return extra


def openai_engine_factory(spec: LoadSpec, progress: Progress) -> Engine:
    from mmlsp.engine.openai import OpenAIEngine

    return OpenAIEngine(RemoteSpec.from_load_spec(spec), progress)


def monotonic(progress: Progress) -> Progress:
    """``progress`` whose percentage never goes back: a step that reports less than one
    before it keeps the highest percentage so far (a bar must not move backwards)."""
    highest = 0

    def report(message: str, pct: int | None) -> None:
        nonlocal highest
        if pct is not None:
            pct = highest = max(highest, pct)
        progress(message, pct)

    return report
