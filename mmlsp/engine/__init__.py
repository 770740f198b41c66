"""Model backends behind one interface (``Engine``), and the host that runs them."""

from mmlsp.engine.base import (
    Engine,
    EngineError,
    EngineInfo,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.host import EngineHost, LoadSpec, Status

__all__ = [
    "Engine",
    "EngineError",
    "EngineHost",
    "EngineInfo",
    "GenerationFailed",
    "GenerationRequest",
    "GenerationResult",
    "LoadSpec",
    "Status",
]
