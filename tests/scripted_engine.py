"""A scripted test double for the model: it replays canned replies and records prompts.

Used where a test needs exact model output (a broken fix, a fenced reply, a review in a
given format); the tiny random model covers the real plumbing end to end.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from mmlsp.engine import Engine, EngineHost, EngineInfo, GenerationRequest, GenerationResult
from mmlsp.engine.host import LoadSpec


class ScriptedEngine(Engine):
    """Answers each ``generate`` with the next scripted reply ("" once they run out),
    after ``seconds`` (a model that slow, which stops at once when cancelled)."""

    def __init__(
        self, replies: Iterable[str] = (), device: str = "cpu", seconds: float = 0.0
    ) -> None:
        self.replies = list(replies)
        self.seconds = seconds
        self.prompts: list[str] = []
        self.info = EngineInfo(model="scripted", device=device, dtype="none", backend="local")

    def vocabulary(self) -> Collection[str]:
        return frozenset()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.prompts.append(request.prompt)
        if self.seconds and request.cancel.wait(self.seconds):
            return GenerationResult("", "cancelled", len(request.prompt.split()), 0, 0.0)
        text = self.replies.pop(0) if self.replies else ""
        cut = request.stop_at(text)
        reason = "eos"
        if cut is not None:
            text, reason = text[:cut], "stop"
        return GenerationResult(
            text, reason, len(request.prompt.split()), len(text.split()), self.seconds
        )


def scripted_host(engine: ScriptedEngine, tmp_path: Path) -> EngineHost:
    """An EngineHost whose model is ``engine``, loaded and ready."""
    host = EngineHost(factory=lambda *_args: engine)
    host.load(LoadSpec("scripted", "cpu", "none", str(tmp_path)))
    status = host.wait_ready(10)
    assert status.state == "ready", status
    return host
