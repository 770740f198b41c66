"""Model backends behind one contract (``base.Engine``), and the host that runs them.

``local.LocalEngine`` runs a model in this process; ``openai.OpenAIEngine`` talks to
an OpenAI-compatible inference server (imported only when that backend is chosen).
"""

from mmlsp.engine.base import (
    BackendError,
    CacheUsage,
    ChatPrompt,
    Engine,
    EngineError,
    EngineInfo,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.host import EngineHost
from mmlsp.engine.slot import Status
from mmlsp.engine.spec import LoadSpec

__all__ = [
    "BackendError",
    "CacheUsage",
    "ChatPrompt",
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
