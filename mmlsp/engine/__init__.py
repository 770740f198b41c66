"""Model backends behind one interface (``Engine``), and the host that runs them.

``local.LocalEngine`` runs a model in this process; ``openai.OpenAIEngine`` talks to
an OpenAI-compatible inference server (imported only when that backend is chosen).
"""

from mmlsp.engine.base import (
    ChatPrompt,
    Engine,
    EngineError,
    EngineInfo,
    GenerationFailed,
    GenerationRequest,
    GenerationResult,
)
from mmlsp.engine.host import EngineHost, LoadSpec, Status

__all__ = [
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
