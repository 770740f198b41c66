"""bench/latency.py and bench/dtypes.py run end to end on the tiny model and report
every measure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str, out: Path) -> str:
    """Run ``bench/<script>`` writing to ``out``; the report it wrote."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_text(encoding="utf-8")


def test_latency_benchmark_runs_on_the_tiny_model(tmp_path: Path) -> None:
    plot = tmp_path / "cdf.png"
    args = ["--chars", "6", "--reps", "1", "--overhead-reps", "2", "--lookup", "2"]
    args += ["--pace-ms", "20", "--plot", str(plot)]
    report = run_bench("latency.py", *args, out=tmp_path / "BENCH.md")
    assert "<!-- latency:tiny -->" in report
    for row in (
        "keystroke → suggestion p50 (ms)",
        "keystroke → suggestion p95 (ms)",
        "keystrokes served without a model call",
        "prompt tokens prefilled per model call (median)",
        "reuse on vs the same prompt cold",
        "first request after the model is ready vs the same request again",
        "reuse drafts on vs off",
        "LSP request vs direct engine call",
        "prompt lookup, 2 draft tokens",
        "decode per token after the first (ms)",
        "memory floor",
    ):
        assert row in report
    # Both replays answered keystrokes through the real server.
    assert "keystrokes answered with a suggestion | 0/" not in report
    # Prompt lookup and reuse drafts left greedy output unchanged.
    assert re.search(r"prompt lookup, 2 draft tokens \|[^\n]*identical 1/1", report)
    assert re.search(r"reuse drafts on vs off[^\n]*identical 1/1", report)
    # The overhead row compares the same request: same outcome, prompt and new tokens.
    assert "NOT the same work" not in report


def test_ratio_at_floor_adds_the_same_decode_to_both_calls() -> None:
    from bench.latency import ratio_at_floor

    # 10 ms prefill cold, 1 ms follow-up; 11 tokens at 2 ms: 20 ms of decode each.
    assert ratio_at_floor(10.0, 1.0, 11, 2.0) == (1.0 + 20.0) / (10.0 + 20.0)
    assert ratio_at_floor(10.0, 1.0, 1, 2.0) == 0.1  # one token: prefill alone
    assert ratio_at_floor(10.0, 1.0, 0, 2.0) == 0.1


def test_paired_ratio_sets_each_follow_up_against_its_own_cold_call() -> None:
    from bench.latency import paired

    # Per prompt 0.1, 0.3 and 0.91; the ratio of the medians would read 9 / 11.
    assert paired([1.0, 9.0, 10.0], [10.0, 30.0, 11.0]) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        paired([1.0], [1.0, 2.0])


def test_read_bandwidth_is_measured_on_the_cpu() -> None:
    from bench.latency import read_bandwidth_gbs

    assert 0.1 < read_bandwidth_gbs("cpu", mib=64, reps=2) < 10_000


def test_dtype_benchmark_compares_each_dtype_with_float32(tmp_path: Path) -> None:
    args = ["--tokens", "300", "--threads", "1"]
    report = run_bench("dtypes.py", *args, out=tmp_path / "BENCH.md")
    assert "## Dtypes" in report and "<!-- dtypes:tiny -->" in report
    assert "| float32 | 100.0% |" in report  # the reference agrees with itself
    rows = {
        line.split("|")[1].strip(): line
        for line in report.splitlines()[1:]
        if line.startswith("| ") and "%" in line
    }
    assert set(rows) == {"float32", "bfloat16", "int8"}
    # Rounding moves a few greedy choices of the random-weight model, never most.
    for dtype in ("bfloat16", "int8"):
        agreement = float(rows[dtype].split("|")[2].strip().rstrip("%"))
        assert 80 < agreement <= 100, rows[dtype]
