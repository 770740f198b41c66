"""Model load progress as the editor's bar shows it: its percentage never goes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmlsp.config import Settings
from mmlsp.engine import EngineHost, LoadSpec
from mmlsp.engine.base import Engine, EngineInfo


def load(
    model: str, cache: Path, host: EngineHost | None = None, dtype: str = "auto"
) -> list[tuple[str, int | None]]:
    """Every progress report of one load, in order."""
    host = host or EngineHost()
    reports: list[tuple[str, int | None]] = []
    settings = Settings(model=model, cache_dir=str(cache), device="cpu", dtype=dtype)
    spec = LoadSpec.from_settings(settings)
    try:
        host.load(spec, lambda message, pct: reports.append((message, pct)))
        status = host.wait_ready()
        assert status.state == "ready", status
    finally:
        host.shutdown()
    return reports


def percentages(reports: list[tuple[str, int | None]]) -> list[int]:
    return [pct for _message, pct in reports if pct is not None]


def test_gguf_on_llama_cpp_load_goes_forward(tiny_gguf, tmp_path):
    pytest.importorskip("llama_cpp")
    reports = load(str(tiny_gguf), tmp_path)
    pcts = percentages(reports)
    assert pcts == sorted(pcts), reports
    assert "(llama.cpp)" in reports[0][0]


def test_tiny_model_load_goes_forward(tiny_model_dir, tmp_path):
    reports = load(str(tiny_model_dir), tmp_path)
    pcts = percentages(reports)
    assert pcts == sorted(pcts), reports
    assert [m for m, _ in reports][:2] == ["loading tokenizer", "loading weights"]


def test_gguf_conversion_then_load_goes_forward(tiny_gguf, tmp_path):
    """On torch (dtype set: llama.cpp would run the GGUF as it is), the first start
    converts the GGUF (5-40%), then loads what it wrote (50% on)."""
    first = load(str(tiny_gguf), tmp_path, dtype="float32")
    messages = [m for m, _ in first]
    assert messages[0].startswith("converting") and "caching converted weights" in messages
    pcts = percentages(first)
    assert pcts == sorted(pcts), first
    assert dict(first)["loading tokenizer"] > dict(first)["caching converted weights"]
    # Later starts read the cache: no conversion, still forward.
    again = load(str(tiny_gguf), tmp_path, dtype="float32")
    assert not any(m.startswith("converting") for m, _ in again)
    assert percentages(again) == sorted(percentages(again)), again


class _Backwards(Engine):
    """Reports its steps out of order, as a backend might."""

    def __init__(self, progress):
        self.info = EngineInfo(model="fake", device="cpu", dtype="none", backend="local")
        for message, pct in [("a", 40), ("b", 10), ("c", None), ("d", 60), ("e", 50)]:
            progress(message, pct)

    def generate(self, request):  # pragma: no cover - never called
        raise AssertionError

    def count_tokens(self, text):  # pragma: no cover - never called
        return len(text)

    def vocabulary(self):
        return frozenset()


def test_any_engine_s_progress_is_kept_monotonic(tmp_path):
    host = EngineHost(factory=lambda _m, _d, _c, progress, **_kw: _Backwards(progress))
    reports = load("fake", tmp_path, host)
    assert reports == [("a", 40), ("b", 40), ("c", None), ("d", 60), ("e", 60)]
