"""Next-edit suggestions on real edit sequences: mmlsp's next-edit path against a plain
completion at the cursor, same model, same cases.

The cases come from a git history (this repository's by default): for a commit that
modifies a Python file, the file's diff hunks (``git log -p -U0``, so one hunk is one
contiguous change) are taken in order as the edits of one editing session. Case *k*
of that file is the moment after hunk *k*:

* the document: the old file with hunks 1..k applied;
* the edit history: hunks max(1, k-2)..k, recorded one by one through
  ``mmlsp.context.history.EditHistory`` (the server's own record; a clock step of 10 s
  keeps each hunk its own entry), most recent first, as ``Inputs.history`` takes it;
* the cursor: the end of hunk k (the end of its last new line; for a deletion, the
  start of the line after it);
* the truth: hunk k+1 when it lies inside the editable region around the cursor
  (``build_request``'s region, the lines the model may rewrite), else nothing (a
  "no change nearby" case; so is k = the last hunk).

Hunks over ``--max-hunk-lines`` lines or ``--max-hunk-chars`` characters (a side) make
no case (nor do cases whose history holds one); nor does a next hunk that changes
whitespace only (the pipeline never shows those). Cases are deduplicated, at most
``--per-file`` come from one commit's file, and they are drawn with ``--seed``: half
(``--no-change-share``) "no change nearby", the rest with a change.

Methods, one loaded model:

* **next-edit**: ``mmlsp.next_edit.predict`` with the format ``choose_format`` picks
  for the model (or ``--format``), the document's syntax tree and the history;
* **completion**: ``mmlsp.complete.complete`` at the cursor (the FIM completion path,
  prefix-only for models without FIM tokens), its suggestion taken as an insertion
  at the cursor;
* **no edit**: the reference that never proposes anything (no model call).

Scores, per method: *exact* (change cases): the predicted region equals the next
version's region character for character; *edit sim.* (change cases): 1 - Levenshtein
distance / the longer length, between the predicted region and the next version's
region (the region is the whole editable region, so "no edit" already scores high: it
is the floor); *noise*: share of no-change cases where it proposed something;
*right*: exact on change cases plus silent on no-change cases, over all; *shown*:
share of all cases where it proposed something; latency p50/p95 in ms.

    python -m bench.next_edit --model builtin:gemma-3-270m --cases 30

Prints a Markdown table and writes it into the "## Next-edit suggestions" section of
BENCHMARKS.md (one block per model; ``--no-write`` prints only); ``--json FILE`` saves
every case and answer.
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
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.report import bench_model, hardware, put_block, slug  # noqa: E402
from mmlsp.config import DTYPES, Settings, default_cache_dir  # noqa: E402
from mmlsp.context.history import Edit, EditHistory  # noqa: E402
from mmlsp.next_edit import Inputs, build_request  # noqa: E402
from mmlsp.prompt.next_edit import FORMATS, choose_format  # noqa: E402
from mmlsp.syntax import SyntaxDocument  # noqa: E402

HEADING = "## Next-edit suggestions"
METHODS = ("next-edit", "completion", "no edit")
# A step of the history's clock between two hunks: more than its coalescing window.
CLOCK_STEP_S = 10.0
HISTORY_HUNKS = 3
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


# -- edit sequences from git --------------------------------------------------------------


@dataclass(frozen=True)
class Hunk:
    """One contiguous change: old lines ``[old, old + old_count)`` became new lines
    ``[new, new + new_count)`` (0-based, in the old and the new file)."""

    old: int
    old_count: int
    new: int
    new_count: int


@dataclass(frozen=True)
class FileChange:
    commit: str
    path: str
    old_blob: str
    new_blob: str
    hunks: tuple[Hunk, ...]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def parse_hunk(header: str) -> Hunk:
    """A ``-U0`` hunk header as 0-based lines (an empty side names the line before)."""
    m = _HUNK.match(header)
    if m is None:
        raise ValueError(f"not a hunk header: {header!r}")
    a, b = int(m[1]), 1 if m[2] is None else int(m[2])
    c, d = int(m[3]), 1 if m[4] is None else int(m[4])
    return Hunk(a if b == 0 else a - 1, b, c if d == 0 else c - 1, d)


def file_changes(repo: Path, commits: int, rev: str = "HEAD") -> list[FileChange]:
    """Every modified ``*.py`` file of the last ``commits`` non-merge commits up to
    ``rev`` (newest first), with its ``-U0`` hunks."""
    out = git(
        repo, "log", rev, "-n", str(commits), "--no-merges", "--format=commit %H", "-p", "-U0",
        "--full-index", "--no-renames", "--diff-filter=M", "--no-color", "--no-ext-diff",
        "--", "*.py",
    )  # fmt: skip
    changes: list[FileChange] = []
    commit = path = old = new = ""
    hunks: list[Hunk] = []

    def flush() -> None:
        if path and old and new and hunks:
            changes.append(FileChange(commit, path, old, new, tuple(hunks)))

    for line in out.splitlines():
        if line.startswith("commit ") and len(line) == 47:
            flush()
            commit, path, old, new, hunks = line[7:], "", "", "", []
        elif line.startswith("diff --git "):
            flush()
            path, old, new, hunks = "", "", "", []
        elif line.startswith("index ") and ".." in line:
            old, new = line.split()[1].split("..")
        elif line.startswith("+++ b/"):
            path = line[6:]
        elif line.startswith("@@ "):
            hunks.append(parse_hunk(line))
    flush()
    return changes


class Blobs:
    """File contents by blob id, from one ``git cat-file --batch`` process."""

    def __init__(self, repo: Path) -> None:
        self._proc = subprocess.Popen(
            ["git", "-C", str(repo), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._cache: dict[str, str | None] = {}

    def text(self, sha: str) -> str | None:
        if sha not in self._cache:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(sha.encode() + b"\n")
            self._proc.stdin.flush()
            header = self._proc.stdout.readline().split()
            if len(header) < 3 or header[1] != b"blob":
                self._cache[sha] = None
            else:
                data = self._proc.stdout.read(int(header[2]) + 1)[:-1]
                try:
                    self._cache[sha] = data.decode("utf-8")
                except UnicodeDecodeError:
                    self._cache[sha] = None
        return self._cache[sha]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait()


def split_lines(text: str) -> list[str]:
    """Lines split at ``\\n`` only (as git counts them), each keeping its break."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def apply_hunks(old: list[str], new: list[str], hunks: tuple[Hunk, ...], k: int) -> list[str]:
    """The old file's lines with the first ``k`` hunks applied."""
    out: list[str] = []
    pos = 0
    for j, h in enumerate(hunks):
        out += old[pos : h.old]
        out += new[h.new : h.new + h.new_count] if j < k else old[h.old : h.old + h.old_count]
        pos = h.old + h.old_count
    return out + old[pos:]


def hunk_line(hunks: tuple[Hunk, ...], j: int, k: int) -> int:
    """Where hunk ``j`` (0-based) starts in the file with the first ``k`` hunks
    applied: its new position when applied, else its old one shifted by the others."""
    if j < k:
        return hunks[j].new
    return hunks[j].old + sum(h.new_count - h.old_count for h in hunks[:k])


@dataclass
class Case:
    id: str
    commit: str
    path: str
    hunk: int  # hunks 1..hunk applied
    text: str  # the document before the next hunk
    cursor: int  # code point offset
    cursor_line: int
    history: list[Edit]  # most recent first
    region: tuple[int, int]  # editable region, lines [start, end) of ``text``
    lo: int  # the region's code point span in ``text``
    hi: int
    changed: bool  # the next hunk lies in the region
    expected: str  # the document the right answer leads to (``text`` when unchanged)
    next_hunk_line: int | None = None  # where the next hunk starts in ``text``, if any

    def region_of(self, document: str) -> str:
        """``document``'s text in the region (``document`` differs from ``text`` only
        inside it)."""
        return document[self.lo : len(document) - (len(self.text) - self.hi)]

    @property
    def expected_region(self) -> str:
        return self.region_of(self.expected)


def _small(h: Hunk, old: list[str], new: list[str], max_lines: int, max_chars: int) -> bool:
    if h.old_count > max_lines or h.new_count > max_lines:
        return False
    gone = sum(len(x) for x in old[h.old : h.old + h.old_count])
    added = sum(len(x) for x in new[h.new : h.new + h.new_count])
    return gone <= max_chars and added <= max_chars


def make_case(
    change: FileChange,
    old_text: str,
    new_text: str,
    k: int,
    *,
    max_lines: int = 8,
    max_chars: int = 600,
) -> Case | None:
    """Case ``k`` (1-based: hunks 1..k applied) of one file change, or None when a hunk
    it needs is too large, the next hunk changes whitespace only, or the hunks do not
    rebuild the new file."""
    hunks = change.hunks
    old, new = split_lines(old_text), split_lines(new_text)
    if "".join(apply_hunks(old, new, hunks, len(hunks))) != new_text:
        return None  # not the diff of these two blobs (cannot happen with git's output)
    first = max(0, k - HISTORY_HUNKS)
    needed = hunks[first : k + 1]
    if not all(_small(h, old, new, max_lines, max_chars) for h in needed):
        return None
    versions = ["".join(apply_hunks(old, new, hunks, j)) for j in range(first, k + 2)]
    text = versions[k - first]
    uri = f"file:///repo/{change.path}"
    clock = iter(range(10**6))
    history = EditHistory(clock=lambda: next(clock) * CLOCK_STEP_S)
    for before, after in zip(versions[: k - first], versions[1 : k - first + 1], strict=True):
        history.record(uri, before, after)
    h = hunks[k - 1]
    line = hunk_line(hunks, k - 1, k)
    lines = split_lines(text)
    starts = [0]
    for x in lines:
        starts.append(starts[-1] + len(x))
    if h.new_count:
        last = line + h.new_count - 1
        cursor = starts[last] + len(lines[last].rstrip("\n"))
    else:
        cursor = starts[min(line, len(lines))]
    # The region as predict() finds it: with the document's tree.
    syntax = SyntaxDocument(text, "python")
    inputs = Inputs(uri=uri, path=change.path, syntax_doc=syntax, language="python")
    request, region, lo, _ = build_request(text, cursor, inputs, Settings(), len)
    hi = lo + len(request.region)
    changed, expected, nxt = False, text, None
    if k < len(hunks):
        nh = hunks[k]
        nxt = hunk_line(hunks, k, k)
        if region.start <= nxt and nxt + nh.old_count <= region.end:
            after = versions[-1]
            if "".join(after.split()) == "".join(text.split()):
                return None  # whitespace only: never shown, never scored
            changed, expected = True, after
    return Case(
        id=f"{change.commit[:10]}:{change.path}#{k}",
        commit=change.commit,
        path=change.path,
        hunk=k,
        text=text,
        cursor=cursor,
        cursor_line=text.count("\n", 0, cursor),
        history=history.recent(4000),
        region=(region.start, region.end),
        lo=lo,
        hi=hi,
        changed=changed,
        expected=expected,
        next_hunk_line=nxt,
    )


def select_cases(
    repo: Path,
    commits: int,
    count: int,
    seed: int,
    *,
    no_change_share: float = 0.5,
    per_file: int = 2,
    max_lines: int = 8,
    max_chars: int = 600,
    max_file_chars: int = 200_000,
    rev: str = "HEAD",
) -> list[Case]:
    """``count`` cases from the last ``commits`` commits of ``repo``: every (file
    change, k) candidate in a seeded shuffle, taken in order (deduplicated, at most
    ``per_file`` per file change) until the quota of each kind is met; a kind that
    runs out leaves its place to the other. Returned in the shuffle's order."""
    changes = file_changes(repo, commits, rev)
    rng = random.Random(seed)
    candidates = [(i, k) for i, c in enumerate(changes) for k in range(1, len(c.hunks) + 1)]
    rng.shuffle(candidates)
    quiet_quota = round(count * no_change_share)
    quota = {True: count - quiet_quota, False: quiet_quota}
    taken: dict[bool, list[Case]] = {True: [], False: []}
    spare: dict[bool, list[Case]] = {True: [], False: []}
    seen: set[tuple[str, int, str]] = set()
    per: Counter[int] = Counter()
    blobs = Blobs(repo)
    texts: dict[int, tuple[str, str] | None] = {}
    try:
        for i, k in candidates:
            if all(len(taken[kind]) >= quota[kind] for kind in quota):
                break
            if per[i] >= per_file:
                continue
            change = changes[i]
            if i not in texts:
                old, new = blobs.text(change.old_blob), blobs.text(change.new_blob)
                ok = old is not None and new is not None and len(old) <= max_file_chars
                texts[i] = (old, new) if ok else None  # type: ignore[assignment]
            pair = texts[i]
            if pair is None:
                continue
            case = make_case(change, *pair, k, max_lines=max_lines, max_chars=max_chars)
            if case is None:
                continue
            key = (case.text[case.lo : case.hi], case.cursor - case.lo, case.expected_region)
            if key in seen:
                continue
            seen.add(key)
            per[i] += 1
            (taken if len(taken[case.changed]) < quota[case.changed] else spare)[
                case.changed
            ].append(case)
    finally:
        blobs.close()
    for kind in (True, False):  # fill a kind's shortfall from the other's spares
        other = not kind
        while len(taken[other]) < quota[other] and spare[kind]:
            taken[kind].append(spare[kind].pop(0))
    chosen = {id(c) for kind in taken for c in taken[kind]}
    ordered = [c for kind in (True, False) for c in taken[kind]]
    rng.shuffle(ordered)
    assert len(chosen) == len(ordered)
    return ordered


# -- scoring ------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    """Edit distance; the common prefix and suffix, which do not change it, are cut
    first (the regions mostly agree)."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    a, b = a[n:], b[n:]
    m = 0
    while m < min(len(a), len(b)) and a[-1 - m] == b[-1 - m]:
        m += 1
    a, b = a[: len(a) - m], b[: len(b) - m]
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similarity(a: str, b: str) -> float:
    """1 - Levenshtein distance / the longer length (1.0 for two empty strings)."""
    if not a and not b:
        return 1.0
    return 1 - levenshtein(a, b) / max(len(a), len(b))


@dataclass
class Answer:
    method: str
    shown: bool  # proposed a change
    region: str  # the predicted region
    exact: bool = False
    similarity: float = 0.0
    ms: float = 0.0
    reason: str | None = None  # why nothing was proposed
    edits: list[dict[str, Any]] = field(default_factory=list)


def judge(case: Case, method: str, document: str, ms: float, reason: str | None) -> Answer:
    shown = document != case.text
    region = case.region_of(document)
    truth = case.expected_region
    return Answer(
        method,
        shown,
        region,
        exact=region == truth,
        similarity=similarity(region, truth),
        ms=ms,
        reason=None if shown else (reason or "nothing"),
    )


# -- the methods --------------------------------------------------------------------------


async def next_edit_answer(case: Case, settings: Settings, host: Any, fmt: str) -> Answer:
    from mmlsp.next_edit import predict

    inputs = Inputs(
        uri=f"file:///repo/{case.path}",
        path=case.path,
        history=case.history,
        syntax_doc=SyntaxDocument(case.text, "python"),
        language="python",
        cache_key="next-edit",
        format=fmt,
    )
    started = time.monotonic()
    prediction = await predict(case.text, case.cursor, settings, host, inputs)
    ms = (time.monotonic() - started) * 1000
    document = prediction.target if prediction.edits and prediction.target else case.text
    answer = judge(case, "next-edit", document, ms, prediction.reason)
    answer.edits = [asdict(e) for e in prediction.edits]
    return answer


async def completion_answer(case: Case, settings: Settings, host: Any) -> Answer:
    from mmlsp.complete import complete

    started = time.monotonic()
    outcome = await complete(
        case.text,
        case.cursor,
        settings,
        host,
        cache_key="completion",
        syntax_doc=SyntaxDocument(case.text, "python"),
        language="python",
    )
    ms = (time.monotonic() - started) * 1000
    document = case.text
    if (c := outcome.completion) is not None and c.text:
        end = min(case.cursor + c.replace_chars, case.hi)
        document = case.text[: case.cursor] + c.text + case.text[end:]
    answer = judge(case, "completion", document, ms, outcome.empty_reason)
    if document != case.text:
        answer.edits = [{"start": case.cursor, "end": end, "text": c.text}]  # type: ignore[union-attr]
    return answer


# -- report -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q * (len(ordered) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def table(cases: list[Case], answers: dict[str, list[Answer]], fmt: str) -> str:
    changed = [i for i, c in enumerate(cases) if c.changed]
    quiet = [i for i, c in enumerate(cases) if not c.changed]
    lines = [
        f"| method | cases | exact ({len(changed)} changes) | edit sim. (changes) "
        f"| noise ({len(quiet)} no-change) | right (all) | shown | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def share(hits: int, n: int) -> str:
        return f"{hits}/{n} ({100 * hits / n:.0f}%)" if n else "—"

    for method in METHODS:
        rows = answers.get(method)
        if not rows:
            continue
        exact = sum(rows[i].exact for i in changed)
        noisy = sum(rows[i].shown for i in quiet)
        sim = statistics.mean(rows[i].similarity for i in changed) if changed else float("nan")
        right = exact + len(quiet) - noisy
        timed = [r.ms for r in rows] if method != "no edit" else []
        p50 = f"{percentile(timed, 0.5):.0f}" if timed else "—"
        p95 = f"{percentile(timed, 0.95):.0f}" if timed else "—"
        name = f"next-edit ({fmt})" if method == "next-edit" else method
        lines.append(
            f"| {name} | {len(rows)} | {share(exact, len(changed))} | {sim:.3f} "
            f"| {share(noisy, len(quiet))} | {share(right, len(rows))} "
            f"| {share(sum(r.shown for r in rows), len(rows))} | {p50} | {p95} |"
        )
    return "\n".join(lines)


def reasons(answers: dict[str, list[Answer]]) -> str:
    """Why each model method proposed nothing, counted."""
    parts = []
    for method in ("next-edit", "completion"):
        counts = Counter(a.reason for a in answers.get(method, []) if not a.shown)
        if counts:
            listed = ", ".join(f"{why}: {n}" for why, n in counts.most_common())
            parts.append(f"{method}: {listed}")
    return "; ".join(parts)


INTRO = """Produced by `python -m bench.next_edit` (see README, "Benchmarks"): real edit
sequences from this repository's git history, mmlsp's next-edit path against a plain
completion at the cursor."""


# -- running ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:gemma-3-270m", help="any --model value, or 'tiny'")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="the engine's dtype")
    p.add_argument(
        "--format", default="auto", choices=("auto", *FORMATS), help="next-edit prompt format"
    )
    p.add_argument("--repo", type=Path, default=ROOT, help="git repository to take edits from")
    p.add_argument("--commits", type=int, default=300, help="the last N non-merge commits")
    p.add_argument("--rev", default="HEAD", help="the newest commit to take (pins the cases)")
    p.add_argument("--cases", "--max-cases", dest="cases", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-change-share", type=float, default=0.5, help="share of 'no change nearby' cases"
    )
    p.add_argument("--per-file", type=int, default=2, help="cases per commit and file, at most")
    p.add_argument("--max-hunk-lines", type=int, default=8, help="lines a hunk side, at most")
    p.add_argument("--max-hunk-chars", type=int, default=600, help="chars a hunk side, at most")
    p.add_argument(
        "--time-budget-ms",
        type=int,
        default=60_000,
        help="each request's hard limit (both methods); generous: this measures quality",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="start no case after this many minutes of answering; report those done (0: all)",
    )
    p.add_argument("--methods", default="next-edit,completion", help="comma-separated")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="write every case and answer here")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--tag", default="", help="names this run's block beside the model's")
    return p.parse_args(argv)


def load_host(args: argparse.Namespace) -> tuple[Any, str]:
    from mmlsp.engine import EngineHost, LoadSpec

    args.model, label = bench_model(args.model)
    settings = Settings(
        model=args.model, device=args.device, cache_dir=str(args.cache_dir), dtype=args.dtype
    )
    host = EngineHost()
    host.load(LoadSpec.from_settings(settings))
    status = host.wait_ready(1800)
    if status.state != "ready":
        raise SystemExit(f"model failed to load: {status.message}")
    return host, label


async def run(
    args: argparse.Namespace, cases: list[Case], host: Any, fmt: str
) -> dict[str, list[Answer]]:
    settings = Settings(
        cache_dir=str(args.cache_dir),
        time_budget_ms=args.time_budget_ms,
        next_edit_time_budget_ms=args.time_budget_ms,
    )
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    answers: dict[str, list[Answer]] = {m: [] for m in (*methods, "no edit")}
    started = time.monotonic()
    for n, case in enumerate(cases, 1):
        if args.max_minutes and time.monotonic() - started > args.max_minutes * 60:
            print(f"--max-minutes reached: {n - 1} cases answered", file=sys.stderr)
            del cases[n - 1 :]  # the report covers the answered cases only
            break
        said = []
        if "next-edit" in methods:
            a = await next_edit_answer(case, settings, host, fmt)
            answers["next-edit"].append(a)
            said.append(f"next-edit {_verdict(case, a)} {a.ms:.0f} ms")
        if "completion" in methods:
            a = await completion_answer(case, settings, host)
            answers["completion"].append(a)
            said.append(f"completion {_verdict(case, a)} {a.ms:.0f} ms")
        answers["no edit"].append(judge(case, "no edit", case.text, 0.0, "never proposes"))
        kind = "change" if case.changed else "no change"
        print(
            f"[{n}/{len(cases)} {time.monotonic() - started:.0f}s] {case.id} ({kind}): "
            + "; ".join(said),
            file=sys.stderr,
            flush=True,
        )
    return answers


def _verdict(case: Case, a: Answer) -> str:
    if not a.shown:
        return f"silent ({a.reason})"
    if not case.changed:
        return "noise"
    return "exact" if a.exact else f"sim {a.similarity:.2f}"


def main(argv: list[str] | None = None) -> tuple[list[Case], dict[str, list[Answer]], str]:
    args = parse_args(argv)
    args.cache_dir = default_cache_dir()
    picked = time.monotonic()
    cases = select_cases(
        args.repo,
        args.commits,
        args.cases,
        args.seed,
        no_change_share=args.no_change_share,
        per_file=args.per_file,
        max_lines=args.max_hunk_lines,
        max_chars=args.max_hunk_chars,
        rev=args.rev,
    )
    head = git(args.repo, "rev-parse", "--short=10", args.rev).strip()
    changed = sum(c.changed for c in cases)
    print(
        f"{len(cases)} cases ({changed} with a change nearby) from the last {args.commits} "
        f"commits of {args.repo} in {time.monotonic() - picked:.1f}s",
        file=sys.stderr,
    )
    if not cases:
        raise SystemExit("no cases: is the repository's history there (not a shallow clone)?")
    import torch

    torch.set_num_threads(args.threads)
    loaded = time.monotonic()
    host, label = load_host(args)
    try:
        engine = host.engine
        evidence = engine.template_evidence()
        fmt, why = choose_format(
            args.format, evidence.model_name or engine.info.model, evidence.vocabulary
        )
        print(
            f"model loaded in {time.monotonic() - loaded:.1f}s; next-edit format {fmt} ({why})",
            file=sys.stderr,
        )
        started = time.monotonic()
        answers = asyncio.run(run(args, cases, host, fmt))
        minutes = (time.monotonic() - started) / 60
        changed = sum(c.changed for c in cases)
    finally:
        host.shutdown()
    if args.json:
        payload = [
            {
                **{
                    k: v
                    for k, v in asdict(case).items()
                    if k not in ("text", "expected", "history")
                },
                "history": [e.diff for e in case.history],
                "region_text": case.text[case.lo : case.hi],
                "expected_region": case.expected_region,
                "answers": {m: asdict(rows[i]) for m, rows in answers.items()},
            }
            for i, case in enumerate(cases)
        ]
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    command = " ".join(
        ["python", "-m", "bench.next_edit", *(argv if argv is not None else sys.argv[1:])]
    )
    if args.tag:
        label = f"{label} ({args.tag})"
    body = (
        f"### {label}\n\n"
        f"`{command}` — {len(cases)} cases ({changed} with the next hunk in the region, "
        f"{len(cases) - changed} with no change nearby) from the last {args.commits} commits "
        f"up to {head}, "
        f"seed {args.seed}; next-edit format `{fmt}`; {dt.date.today().isoformat()}, "
        f"{hardware(args.device, args.threads)}; {minutes:.1f} min.\n\n"
        f"{table(cases, answers, fmt)}\n\n"
        f"Nothing proposed, why: {reasons(answers) or 'always proposed'}.\n"
    )
    print(body)
    if not args.no_write:
        put_block(args.out, HEADING, "next-edit", slug(label), body, INTRO)
    return cases, answers, body


if __name__ == "__main__":
    main()
