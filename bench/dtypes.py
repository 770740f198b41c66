"""How much a cheaper dtype changes the model: next-token agreement with float32.

Loads the model through the engine (the path users take, GGUF conversion included),
once in float32 and once per dtype asked for, and feeds each the same real Python
source (stdlib modules, as the latency bench types) token by token in chunks, teacher
forced. For every position it compares the dtype's greedy next token with float32's
and the probability it gives the true next token. Reports, per dtype: top-1
agreement with float32 (where greedy decoding would first part ways), the mean
negative log-likelihood of the true tokens against float32's, and the bytes the
weights take in memory.

    python bench/dtypes.py --model builtin:gemma-3-270m --dtypes bfloat16 int8

Prints a Markdown table and writes it into the "## Dtypes" section of BENCHMARKS.md
(one block per model).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.report import bench_model, hardware, put_block, slug  # noqa: E402
from mmlsp.config import DTYPES, default_cache_dir  # noqa: E402
from mmlsp.engine.loading import resolve  # noqa: E402
from mmlsp.engine.local import LocalEngine  # noqa: E402

HEADING = "## Dtypes"
INTRO = (
    'Produced by `python bench/dtypes.py` (see README, "Benchmarks"): each dtype\'s '
    "greedy next token against float32's, teacher forced on the same stdlib source."
)
MODULES = ("fnmatch", "textwrap", "shlex", "difflib")
CHUNK = 256  # tokens per forward pass: the engine's prefill chunk


@dataclass
class Pass:
    greedy: Any  # [n] token ids
    nll: float  # mean negative log-likelihood of the true next tokens
    weight_bytes: int


def source_text() -> str:
    return "".join(inspect.getsource(importlib.import_module(m)) for m in MODULES)


def teacher_forced(engine: LocalEngine, ids: list[int]) -> Pass:
    import torch

    engine.warm_up()  # int8 quantizes here, as in the server
    cache, greedy, nll = engine.fresh_cache(), [], 0.0
    with torch.inference_mode():
        for at in range(0, len(ids) - 1, CHUNK):
            chunk = ids[at : at + CHUNK]
            logits, cache = engine.forward(chunk, cache, len(chunk))
            logp = torch.log_softmax(logits.float(), dim=-1)
            targets = torch.tensor(ids[at + 1 : at + 1 + len(chunk)])
            logp = logp[: len(targets)]
            greedy.append(logp.argmax(dim=-1))
            nll -= logp.gather(1, targets[:, None]).sum().item()
    model = engine.model
    tensors = [*model.parameters(), *model.buffers()]
    weight_bytes = sum(t.numel() * t.element_size() for t in tensors)
    return Pass(torch.cat(greedy), nll / (len(ids) - 1), weight_bytes)


def measure(model: str, dtypes: list[str], tokens: int, cache_dir: Path) -> tuple[list[dict], int]:
    """One row per dtype, float32's first; and how many tokens were fed."""
    rows: list[dict] = []
    reference: Pass | None = None
    ids: list[int] = []
    for dtype in ["float32", *dtypes]:
        engine = LocalEngine(model, device="cpu", cache_dir=cache_dir, dtype=dtype)
        try:
            if not ids:
                ids = engine.tokenizer(source_text())["input_ids"][:tokens]
            result = teacher_forced(engine, ids)
        finally:
            engine.close()
        reference = reference or result
        agree = (result.greedy == reference.greedy).float().mean().item()
        rows.append(
            {"dtype": dtype, "agree": agree, "nll": result.nll, "bytes": result.weight_bytes}
        )
        print(f"{dtype}: agreement {agree:.4f}, nll {result.nll:.4f}", file=sys.stderr)
    return rows, len(ids)


def table(rows: list[dict], tokens: int) -> str:
    lines = [
        f"| dtype | top-1 agreement with float32 ({tokens} tokens) | NLL of the true tokens "
        "(nats) | weights in memory (MB) |",
        "|---|---|---|---|",
    ]
    base = rows[0]["nll"]
    for r in rows:
        delta = "" if r is rows[0] else f" ({r['nll'] - base:+.4f})"
        lines.append(
            f"| {r['dtype']} | {r['agree']:.1%} | {r['nll']:.4f}{delta} | {r['bytes'] / 1e6:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="'tiny' (test model) or any --model value")
    p.add_argument("--dtypes", nargs="+", default=["bfloat16", "int8"], choices=DTYPES[2:])
    p.add_argument("--tokens", type=int, default=2048, help="source tokens to feed")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="print only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, label = bench_model(args.model)
    resolve(model)  # a clear error before any loading
    rows, fed = measure(model, args.dtypes, args.tokens, args.cache_dir)
    command = "python bench/dtypes.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = (
        f"### {label}\n\n`{command.strip()}` — {hardware('cpu', args.threads)}, "
        f"{dt.date.today()}.\n\n{table(rows, fed)}"
    )
    print(body)
    if not args.no_write:
        put_block(args.out, HEADING, "dtypes", slug(args.model), body, INTRO)


if __name__ == "__main__":
    main()
