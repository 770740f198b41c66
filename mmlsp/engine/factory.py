"""Making an engine from a ``LoadSpec``: the backends' constructors, as the host calls
them (its factories can be replaced, e.g. by a test double)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmlsp.engine.base import Engine
from mmlsp.engine.spec import LoadSpec, RemoteSpec

Progress = Callable[[str, int | None], None]


# Makes an in-process engine: (model, device, cache_dir, progress, **extra). The keyword
# arguments (``local_extras``) are passed only when not the default, so simple
# factories need not take them.
EngineFactory = Callable[..., Engine]
RemoteFactory = Callable[[LoadSpec, Progress], Engine]


def local_engine_factory(
    model: str,
    device: str,
    cache_dir: Path,
    progress: Progress,
    trust_remote_code: bool = False,
    decode_mode: str = "auto",
    dtype: str = "auto",
) -> Engine:
    from mmlsp.engine.local import LocalEngine

    return LocalEngine(
        model,
        device=device,
        cache_dir=cache_dir,
        progress=progress,
        trust_remote_code=trust_remote_code,
        decode_mode=decode_mode,
        dtype=dtype,
    )


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
