"""Model backends behind one interface (``Engine``), and the host that runs them."""

from mmlsp.engine.base import (
    Engine,
    EngineError,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.host import EngineHost, LoadSpec, Status

__all__ = [
    "Engine",
    "EngineError",
    "EngineHost",
    "EngineInfo",
    "GenerationRequest",
    "GenerationResult",
    "LoadSpec",
    "Status",
]
