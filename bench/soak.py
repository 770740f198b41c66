"""Soak: replay edits and requests against one real server for N minutes, watch its health.

Records, once per sample interval: the server's RSS, open file descriptors, threads,
the numeric counters of ``mmlsp/status``, and the p95 request latency of the
interval. Fails (exit 1) if memory keeps growing: the RSS slope over the second half
of the run is above ``--max-slope-mb-per-min`` and the second half grew by more
than ``--max-growth-mb``, or the server still holds handled messages at the end.

With ``--hostile``, the server's workspace is full of hostile entries (links to
/dev/zero and out of the root, a FIFO, huge and sparse files, see ``bench.hostile``),
its initializationOptions try to redirect it, and every ``--hostile-every`` seconds
one of ``bench.hostile``'s cases that share a server (malformed framing, invalid
params, null answers, redirecting settings, odd text) runs between the typing; the
soak also fails when one of them is not handled or the server does not survive it.
The first run of a hostile case may grow the heap once for good (a 200k-line document
leaves a larger arena behind), so with ``--hostile`` the memory trend is judged only
over the samples after every case has run once; a run too short for that reports the
memory trend as not judged, and the leak verdict comes from a plain soak.

    python -m bench.soak --minutes 60                 # an hour, with the tiny model
    python -m bench.soak --minutes 30 --hostile       # hostile input mixed in
    python -m bench.soak --minutes 2 --model DIR      # any model
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import hostile
from bench.hostile import LOCAL, Group, Server, insert

SOURCES = ["textwrap.py", "shlex.py", "fnmatch.py", "bisect.py", "heapq.py"]
# Messages the server may still be handling at a sample (the status request itself).
MAX_HANDLING = 2


def _proc(pid: int) -> dict[str, float]:
    proc = Path(f"/proc/{pid}")
    fields = dict(
        line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line
    )
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(list((proc / "fd").iterdir())),
        "threads": int(fields["Threads"]),
    }


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _type_some(
    server: Server, rng: random.Random, uri: str, text: str, version: int, latencies: list[float]
) -> tuple[str, int]:
    """Type a few characters at a random line end, asking for a suggestion each time."""
    lines = text.split("\n")
    line = rng.randrange(len(lines))
    col = len(lines[line])
    for char in rng.choice(["x = ", "return self.", "if value:", "# note", "(a, b)"]):
        version += 1
        server.change(uri, version, [insert(line, col, char)])
        lines[line] = lines[line][:col] + char + lines[line][col:]
        col += 1
        start = time.perf_counter()
        server.inline(uri, line, col, timeout=120)
        latencies.append((time.perf_counter() - start) * 1000)
    return "\n".join(lines), version


def _cycle(
    server: Server,
    rng: random.Random,
    docs: dict[str, tuple[str, int]],
    originals: dict[str, str],
    latencies: list[float],
) -> None:
    uri = rng.choice(sorted(originals))
    if uri not in docs:
        server.open(uri, originals[uri])
        docs[uri] = (originals[uri], 1)
    text, version = docs[uri]
    roll = rng.random()
    if roll < 0.1:  # close it; reopened from scratch later
        server.close_doc(uri)
        del docs[uri]
    elif roll < 0.2:  # the editor reloads the file
        version += 1
        server.change(uri, version, [{"text": originals[uri]}])
        docs[uri] = (originals[uri], version)
    else:
        docs[uri] = _type_some(server, rng, uri, text, version, latencies)


class Hostile:
    """The hostile cases mixed into the soak, one every ``every`` seconds, in a shuffled
    round; their outcomes are counted per sample interval."""

    def __init__(self, group: Group, rng: random.Random, every: float) -> None:
        self.group, self.rng, self.every = group, rng, every
        self.queue: list[hostile.Case] = []
        self.next_at = time.monotonic() + every
        self.ran = self.failed = 0
        self.rounds = 0  # full rounds done: every case ran ``rounds`` times
        self.worst_status_s = 0.0
        self.failures: list[str] = []

    def maybe_run(self) -> None:
        if time.monotonic() < self.next_at:
            return
        if not self.queue:
            self.rounds += self.ran > 0
            self.queue = list(self.group.cases)
            self.rng.shuffle(self.queue)
        outcome = hostile.run_case(self.group, self.queue.pop())
        self.ran += 1
        self.worst_status_s = max(self.worst_status_s, outcome.probe.worst_s)
        if not outcome.ok:
            self.failed += 1
            self.failures.append(hostile.describe(outcome))
            print(hostile.describe(outcome), file=sys.stderr, flush=True)
        self.next_at = time.monotonic() + self.every


def run(
    minutes: float,
    model: Path,
    sample_seconds: float,
    seed: int,
    hostile_every: float | None = None,
) -> list[dict[str, Any]]:
    """Samples of the server's health; ``hostile_every``: mix in hostile cases."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    originals = {f"file:///soak/{name}": (stdlib / name).read_text() for name in SOURCES}
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="mmlsp-soak-"))
    mix: Hostile | None = None
    group: Group | None = None
    if hostile_every is None:
        server = Server(["--model", str(model)], work / "cache")
    else:
        root = work / "workspace" / "root"
        hostile.prepare_workspace(root, root.parent / "outside", hostile.CASES)
        cases = [c for c in hostile.CASES if c.group == LOCAL]
        group = Group(LOCAL, cases, model, work, root=root)
        server = group.start()
        mix = Hostile(group, rng, hostile_every)
    samples: list[dict[str, Any]] = []
    docs: dict[str, tuple[str, int]] = {}
    start = time.monotonic()
    try:
        while time.monotonic() - start < minutes * 60:
            latencies: list[float] = []
            window_end = time.monotonic() + sample_seconds
            while time.monotonic() < window_end:
                if mix is not None:
                    mix.maybe_run()
                    if group is not None and group.server is not server:  # restarted
                        server, docs = group.server, {}
                _cycle(server, rng, docs, originals, latencies)
            counters = {
                k: v
                for k, v in server.status().items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            elapsed = time.monotonic() - start
            sample = {
                "minute": round(elapsed / 60, 3),
                **_proc(server.proc.pid),
                "requests": len(latencies),
                "p95_ms": round(_p95(latencies), 1),
                "open_docs": len(docs),
                **counters,
            }
            if mix is not None:
                sample.update(
                    hostile_cases=mix.ran,
                    hostile_rounds=mix.rounds,
                    hostile_failed=mix.failed,
                    hostile_worst_status_ms=round(mix.worst_status_s * 1000, 1),
                )
            samples.append(sample)
            print(json.dumps(sample), flush=True)
    finally:
        if group is not None:
            group.close()
        else:
            server.close()
        shutil.rmtree(work, ignore_errors=True)  # the hostile workspace holds 24 MB
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--model", type=Path, help="model dir (default: build the tiny test model)")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--max-slope-mb-per-min", type=float, default=5.0)
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hostile", action="store_true", help="mix in bench.hostile's cases")
    parser.add_argument("--hostile-every", type=float, default=20.0, help="seconds between them")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args(argv)
    model = args.model
    if model is None:
        from tests.tiny_model import build_tiny_model

        model = build_tiny_model(Path(tempfile.mkdtemp(prefix="mmlsp-tiny-")))
    every = args.hostile_every if args.hostile else None
    samples = run(args.minutes, model, args.sample_seconds, args.seed, every)
    if args.json:
        args.json.write_text(json.dumps(samples, indent=1))
    failure = verdict(samples, args.max_slope_mb_per_min, args.max_growth_mb)
    if samples:
        print(summary(samples))
    if failure:
        print(f"soak: FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, MB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in points) / den


def judged(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples the memory trend is judged on: the second half of the run, and with
    hostile cases mixed in only those after every case has run once (empty if none)."""
    half = [s for s in samples if s["minute"] >= samples[-1]["minute"] / 2]
    if "hostile_rounds" not in samples[-1]:
        return half
    return [s for s in half if s["hostile_rounds"] >= 1]


def rss_trend(samples: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(slope in MB/min, growth in MB) of RSS over the judged samples, None when fewer
    than three samples can be judged."""
    window = judged(samples)
    if len(window) < 3:
        return None
    rss_slope = slope([(s["minute"], s["rss_mb"]) for s in window])
    return rss_slope, window[-1]["rss_mb"] - window[0]["rss_mb"]


def verdict(samples: list[dict[str, Any]], max_slope: float, max_growth: float) -> str | None:
    """Why the soak failed, or None when the server stayed healthy."""
    if not samples:
        return "no samples"
    trend = rss_trend(samples)
    if trend is not None and trend[0] > max_slope and trend[1] > max_growth:
        return "memory keeps growing"
    # Every request was answered before each sample, so nothing should still be held:
    # this catches a per-message leak (pygls' notification futures) in any duration.
    if (held := samples[-1].get("handling", 0)) > MAX_HANDLING:
        return f"the server still holds {held} handled messages"
    if failed := samples[-1].get("hostile_failed", 0):
        return f"{failed} of {samples[-1]['hostile_cases']} hostile cases failed"
    return None


def summary(samples: list[dict[str, Any]]) -> str:
    trend = rss_trend(samples)
    requests = sum(s["requests"] for s in samples)
    memory = (
        "memory trend not judged (no full round of hostile cases yet)"
        if trend is None
        else f"judged slope {trend[0]:+.2f} MB/min (growth {trend[1]:+.1f} MB)"
    )
    return (
        f"soak: {samples[-1]['minute']:.1f} min, {requests} completion requests, RSS "
        f"{samples[0]['rss_mb']:.0f} -> {samples[-1]['rss_mb']:.0f} MB, {memory}, "
        f"fds {samples[0]['fds']} -> "
        f"{samples[-1]['fds']}, threads {samples[0]['threads']} -> {samples[-1]['threads']}, "
        f"p95 {max(s['p95_ms'] for s in samples):.0f} ms (worst interval)"
        + (
            f", {last['hostile_cases']} hostile cases, {last['hostile_failed']} failed, "
            f"worst mmlsp/status {last['hostile_worst_status_ms']:.0f} ms"
            if "hostile_cases" in (last := samples[-1])
            else ""
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
