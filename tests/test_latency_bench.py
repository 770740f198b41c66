"""bench/latency.py runs end to end on the tiny model and reports every measure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_latency_benchmark_runs_on_the_tiny_model(tmp_path: Path) -> None:
    out = tmp_path / "BENCH.md"
    plot = tmp_path / "cdf.png"
    args = ["--chars", "6", "--reps", "1", "--overhead-reps", "2", "--lookup", "2"]
    args += ["--pace-ms", "20"]
    result = subprocess.run(
        [sys.executable, "bench/latency.py", *args, "--out", str(out), "--plot", str(plot)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text(encoding="utf-8")
    assert "<!-- latency:tiny -->" in report
    for row in (
        "keystroke → suggestion p50 (ms)",
        "keystroke → suggestion p95 (ms)",
        "keystrokes served without a model call",
        "prompt tokens prefilled per model call (median)",
        "reuse on vs the same prompt cold",
        "LSP request vs direct engine call",
        "prompt lookup, 2 draft tokens",
    ):
        assert row in report
    # Both replays answered keystrokes through the real server.
    assert "keystrokes answered with a suggestion | 0/" not in report
    assert "identical 1/1" in report  # prompt lookup left greedy output unchanged
    # The overhead row compares the same request: same outcome, prompt and new tokens.
    assert "NOT the same work" not in report
