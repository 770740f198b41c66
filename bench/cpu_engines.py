"""CPU engines benchmark: the built-in GGUF model on the llama.cpp engine, on the torch
engine, and served by a plain llama.cpp server through mmlsp's openai backend, in one
run on the same typing replay (bench/latency.py's, latency features on).

    python bench/cpu_engines.py                     # 30 characters, 1 thread each
    python bench/cpu_engines.py --chars 60 --threads 2

Each configuration starts the real server over stdio and retypes the same function
body; the table gives keystroke -> suggestion p50/p95, the shown rate, the first
request after load, the server's start (spawn to ready, and the load its status
reports), and the peak resident memory of the processes that hold the model (the
mmlsp server, plus the llama.cpp server where one runs). Writes the "## CPU engines"
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    DEFAULT_FILE,
    DEFAULT_FUNCTION,
    FEATURES_ON,
    Replay,
    make_script,
    parse_args,
    pct,
    peak_rss_mib,
    replay,
    stdlib,
)
from bench.report import hardware, replace_section  # noqa: E402
from mmlsp.config import BUILTIN_MODEL, default_cache_dir  # noqa: E402

HEADING = "## CPU engines: llama.cpp in process, torch, llama.cpp server"


def configurations(threads: int) -> list[tuple[str, list[str]]]:
    """(label, bench/latency.py arguments) of each engine measured."""
    common = ["--model", BUILTIN_MODEL, "--device", "cpu", "--threads", str(threads)]
    return [
        ("llama.cpp engine (in process, new)", common),
        # dtype set: a torch setting, so the same GGUF runs on torch (float32 weights).
        ("torch engine (float32 from the GGUF)", [*common, "--dtype", "float32"]),
        ("mmlsp + llama.cpp server (openai backend)", [*common, "--llama-server"]),
    ]


async def measure(label: str, argv: list[str], chars: int, pace_ms: float) -> Replay:
    args = parse_args([*argv, "--chars", str(chars), "--pace-ms", str(pace_ms), "--no-write"])
    args.cache_dir = default_cache_dir()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the servers
    path = Path(args.file) if Path(args.file).is_file() else stdlib(args.file)
    script = make_script(path, args.function, args.chars)
    server = None
    started = time.perf_counter()
    if args.llama_server:
        from tests.llama_server import LlamaServer, builtin_gguf

        log_path = Path(tempfile.mkdtemp(prefix="mmlsp-llama-")) / "server.log"
        server = LlamaServer(builtin_gguf(), log_path, threads=args.threads)
        args.base_url, args.model = server.base_url, "auto"
    server_ready_s = time.perf_counter() - started
    try:
        out = await replay(args, script, "on", FEATURES_ON)
        if server is not None:
            # The model lives in the llama.cpp server: its start and memory count too.
            out.ready_s += server_ready_s
            extra = peak_rss_mib(server.process.pid) or 0.0
            out.peak_rss_mib = (out.peak_rss_mib or 0.0) + extra
            out.backend = f"openai -> llama.cpp server ({extra:.0f} MiB of the memory)"
    finally:
        if server is not None:
            server.stop()
    print(
        f"{label}: p50 {pct(out.latencies_ms, 0.5):.0f} ms, backend {out.backend}, "
        f"latencies {[round(x) for x in out.latencies_ms]}, outcomes {out.outcomes}",
        file=sys.stderr,
    )
    return out


def table(rows: list[tuple[str, Replay]]) -> str:
    def cell(value: float | None, unit: str, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:.{digits}f} {unit}".strip()

    lines = [
        "| | " + " | ".join(label for label, _ in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]

    def row(name: str, values: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(values) + " |")

    row("keystroke → suggestion p50", [cell(pct(r.latencies_ms, 0.5), "ms") for _, r in rows])
    row("keystroke → suggestion p95", [cell(pct(r.latencies_ms, 0.95), "ms") for _, r in rows])
    row("keystrokes answered with a suggestion", [
        f"{r.answered}/{r.keystrokes}" for _, r in rows
    ])  # fmt: skip
    row("shown rate (pauses ending with a suggestion)", [
        f"{r.shown}/{r.pauses} ({r.shown_rate:.0%})" for _, r in rows
    ])  # fmt: skip
    row("first request after load", [cell(r.first_ms, "ms") for _, r in rows])
    row("start: spawn → model ready", [cell(r.ready_s, "s", 1) for _, r in rows])
    row("load (the server's status)", [cell(r.load_s, "s", 1) for _, r in rows])
    row("peak resident memory", [cell(r.peak_rss_mib, "MiB") for _, r in rows])
    row("engine (status backend)", [r.backend for _, r in rows])
    base = pct(rows[0][1].latencies_ms, 0.5)
    row("p50 relative to the llama.cpp engine", [
        f"{pct(r.latencies_ms, 0.5) / base:.2f}x" if base else "n/a" for _, r in rows
    ])  # fmt: skip
    return "\n".join(lines)


async def main_async(ns: argparse.Namespace) -> None:
    rows: list[tuple[str, Replay]] = []
    for label, argv in configurations(ns.threads):
        rows.append((label, await measure(label, argv, ns.chars, ns.pace_ms)))
    load = os.getloadavg()
    body = (
        f"`python bench/cpu_engines.py --chars {ns.chars} --threads {ns.threads}` — "
        f"retyped {ns.chars} chars of `{DEFAULT_FILE}:{DEFAULT_FUNCTION}` at "
        f"{ns.pace_ms:.0f} ms a keystroke (each answer awaited), latency features on, "
        f"{hardware('cpu', ns.threads)} (OMP_NUM_THREADS={ns.threads}: the llama.cpp "
        "engine's, torch's and the llama.cpp server's threads alike), at most 32 new "
        "tokens, the same Gemma-3-270M Q4_K_M file in every column. Load average after "
        f"the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(the machine is shared: compare columns of one run, not runs).\n\n" + table(rows)
    )
    print(body)
    if not ns.no_write:
        replace_section(ns.out, HEADING, INTRO + body)


INTRO = """Which engine should run a GGUF model on the CPU. The same typing replay as
"Latency" (bench/latency.py: the real server over stdio, each keystroke's request
awaited, latency features on) against three setups of the built-in model: the
in-process llama.cpp engine (`mmlsp/engine/llamacpp.py`, chosen by default for a GGUF
on the CPU), the torch engine on the same file dequantized to float32 (what runs
without llama-cpp-python; its one-time conversion is cached beforehand and not
counted), and a plain llama.cpp server (llama-cpp-python's, its prompt cache on)
behind mmlsp's openai backend. The torch column's start excludes the 2-minute first
conversion. Memory: the peak resident set of the processes holding the model.

"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chars", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pace-ms", type=float, default=80.0)
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
