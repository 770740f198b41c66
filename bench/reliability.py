"""The reliability report: fuzzing, odd documents, injected faults, the adversarial
suite and a soak, in one run.

    python -m bench.reliability --fuzz 400 --soak-minutes 5
    python -m bench.reliability --fuzz 400 --soak-json soak.json   # a soak run before

Runs the real server through the test suite's fuzz, odd-document and fault tests
(pytest, with a JUnit XML report to count them), through every case of
``bench.hostile`` (the adversarial suite: cases tried, survived, handled as expected
and the worst ``mmlsp/status`` response time while each ran, per class) and through
``bench.soak`` (with ``--hostile`` input mixed in unless ``--no-soak-hostile``), then
writes the ``## Reliability`` section of ``BENCHMARKS.md``: messages fuzzed,
sequences, crashes, odd documents handled, faults injected and survived, the
adversarial table, soak duration and memory slope. ``--soak-json`` takes the samples
of a soak already run (``bench.soak --json``) instead of running one.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench import hostile
from bench.report import replace_section
from bench.soak import rss_trend, verdict

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Reliability"

# Test selections: what each row of the table counts.
ODD_DOCUMENTS = "tests/test_odd_documents.py"
# Faults: a model that does not load or fails while generating, a backend that fails.
FAULT_TESTS = [
    "tests/test_odd_documents.py::test_generation_that_raises_is_reported_and_the_server_keeps_serving",
    "tests/test_odd_documents.py::test_corrupt_gguf_is_a_clear_error",
    "tests/test_odd_documents.py::test_model_too_big_for_memory_is_a_clear_error",
    "tests/test_e2e_settings.py::test_model_that_fails_to_load_keeps_syntax_features",
    "tests/test_e2e_settings.py::test_bad_setting_values_are_reported_and_defaults_kept",
    "tests/test_openai_faults.py",
]


def pytest_run(args: list[str], env: dict[str, str]) -> tuple[list[tuple[str, str]], str]:
    """Run pytest; return (test name, outcome) pairs and the captured output."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "report.xml"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
             f"--junitxml={xml}", *args],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        results = []
        if xml.exists():
            for case in ET.parse(xml).iter("testcase"):
                outcome = "passed"
                for tag in ("failure", "error", "skipped"):
                    if case.find(tag) is not None:
                        outcome = tag
                results.append((case.get("name", "?"), outcome))
    return results, proc.stdout + proc.stderr


def count(results: list[tuple[str, str]], outcome: str) -> int:
    return sum(1 for _, o in results if o == outcome)


def existing(paths: list[str]) -> list[str]:
    return [p for p in paths if (ROOT / p.split("::")[0]).exists()]


def soak_failure(stderr: str) -> str:
    """The soak's own reason for failing (its last "soak: FAILED" line)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("soak: FAILED")]
    return lines[-1].removeprefix("soak: ") if lines else "FAILED (see bench.soak's output)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=200, help="fuzzed LSP sequences")
    parser.add_argument("--soak-minutes", type=float, default=3.0)
    parser.add_argument(
        "--soak-hostile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mix bench.hostile's cases into the soak (bench.soak --hostile)",
    )
    parser.add_argument("--soak-json", type=Path, help="samples of a soak already run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    started = time.monotonic()

    fuzz_env = dict(env, MMLSP_FUZZ_EXAMPLES=str(args.fuzz))
    fuzz, out = pytest_run(["tests/test_fuzz_lsp.py"], fuzz_env)
    totals_match = re.search(r"fuzz totals: (\{.*?\})", out)
    totals = ast.literal_eval(totals_match.group(1)) if totals_match else {}
    fuzz_ok = bool(fuzz) and count(fuzz, "passed") == len(fuzz)

    odd, _ = pytest_run([ODD_DOCUMENTS], env)
    faults, _ = pytest_run(existing(FAULT_TESTS), env)

    with tempfile.TemporaryDirectory(prefix="mmlsp-hostile-") as tmp:
        adversarial = hostile.run_cases(
            hostile.CASES,
            hostile.tiny_model(),
            Path(tmp),
            lambda outcome: print(hostile.describe(outcome), flush=True),
        )

    if args.soak_json is not None:
        samples = json.loads(args.soak_json.read_text())
        soak_failed = verdict(samples, 5.0, 50.0)  # bench.soak's default limits
        hostile_soak = "hostile_cases" in (samples[-1] if samples else {})
        minutes = samples[-1]["minute"] if samples else 0
        soak_command = (
            f"samples of an earlier `python -m bench.soak --minutes {minutes:.0f}"
            f"{' --hostile' * hostile_soak}` run (`--soak-json`)"
        )
    else:
        hostile_flag = ["--hostile"] if args.soak_hostile else []
        with tempfile.TemporaryDirectory() as tmp:
            samples_file = Path(tmp) / "soak.json"
            soak = subprocess.run(
                [sys.executable, "-m", "bench.soak", "--minutes", str(args.soak_minutes),
                 *hostile_flag, "--json", str(samples_file)],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )  # fmt: skip
            samples = json.loads(samples_file.read_text()) if samples_file.exists() else []
        soak_failed = soak_failure(soak.stderr) if soak.returncode else None
        hostile_soak = args.soak_hostile
        soak_command = (
            f"`python -m bench.soak --minutes {args.soak_minutes:g}{' --hostile' * hostile_soak}`"
        )
    trend = rss_trend(samples) if samples else None
    slope = trend[0] if trend else None
    last = samples[-1] if samples else {}

    rows = [
        ("LSP messages fuzzed (hypothesis, real server over stdio)", totals.get("messages", "?")),
        ("fuzzed sequences", totals.get("sequences", "?")),
        ("requests among them, each answered or errored", totals.get("requests", "?")),
        ("crashes or text divergences", 0 if fuzz_ok else f"FAILED ({count(fuzz, 'failure')})"),
        (
            "odd documents and cases handled in bounded time",
            f"{count(odd, 'passed')} of {len(odd)} ({ODD_DOCUMENTS})",
        ),
        ("faults injected and survived", f"{count(faults, 'passed')} of {len(faults)}"),
        (
            "soak" + (", hostile input mixed in" if hostile_soak else ""),
            f"{samples[-1]['minute']:.1f} min, {sum(s['requests'] for s in samples)} requests"
            + (
                f", {last['hostile_cases']} hostile cases ({last['hostile_failed']} failed), "
                f"worst mmlsp/status during them {last['hostile_worst_status_ms']:.0f} ms"
                if "hostile_cases" in last
                else ""
            )
            if samples
            else "did not run",
        ),
        (
            "soak RSS, first and last sample",
            f"{samples[0]['rss_mb']:.0f} MB -> {samples[-1]['rss_mb']:.0f} MB" if samples else "?",
        ),
        (
            "soak RSS slope, second half" + (" after one round of every case" * hostile_soak),
            f"{slope:+.2f} MB/min" if slope is not None else "not judged (run too short)",
        ),
        (
            "soak open files, threads, messages being handled: first and last sample",
            "; ".join(
                f"{samples[0].get(k, '?')} -> {samples[-1].get(k, '?')}"
                for k in ("fds", "threads", "handling")
            )
            if samples
            else "?",
        ),
        ("soak verdict", "pass" if soak_failed is None else soak_failed),
    ]
    classes = hostile.summary(adversarial)
    slowest = sorted(adversarial, key=lambda o: o.probe.worst_s, reverse=True)[:3]
    failed = [o for o in adversarial if not o.ok]
    fault_names = ", ".join(f"`{name}`" for name, o in faults if o == "passed")
    section = "\n".join(
        [
            SECTION,
            "",
            f"`python -m bench.reliability {' '.join(argv if argv is not None else sys.argv[1:])}`"
            f" on {platform.machine()}, {os.cpu_count()} CPUs, "
            f"{time.strftime('%Y-%m-%d')}, the tiny test model, "
            f"{(time.monotonic() - started) / 60:.1f} min in all.",
            "",
            "| measure | result |",
            "|---|---|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
            f"Soak: {soak_command}.",
            "",
            f"Faults covered: {fault_names}.",
            "",
            "### Adversarial suite",
            "",
            "Every case of `bench.hostile` (also `tests/test_adversarial.py`) against the real "
            "server over stdio, `mmlsp/status` sent every "
            f"{hostile.PROBE_EVERY_S * 1000:.0f} ms while each case ran. Survived: alive, "
            "status answered, every probe answered, a sentinel document's text exact. Handled: "
            "the case got what a user should get (an answer or -32602, the edit applied once, "
            "no traffic to a redirected address, nothing read from outside the workspace...).",
            "",
            "| class | cases tried | survived | handled as expected | worst `mmlsp/status` |",
            "|---|---|---|---|---|",
            *(
                f"| {klass} | {tried} | {survived} | {handled} | {worst * 1000:.0f} ms |"
                for klass, tried, survived, handled, worst in classes
            ),
            "",
            "Slowest `mmlsp/status` answers: "
            + "; ".join(f"{o.case.id} ({o.probe.worst_s * 1000:.0f} ms)" for o in slowest)
            + ".",
            *(f"Note: {o.case.id}: {o.note}." for o in adversarial if o.note),
            *(f"FAILED: {hostile.describe(o)}" for o in failed),
            "",
        ]
    )
    print(section)
    if not args.no_write:
        replace_section(BENCHMARKS, SECTION, section.removeprefix(SECTION))
    return 0 if fuzz_ok and soak_failed is None and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
