"""Latency benchmark: replay real typing through the real LSP server over stdio.

Takes a real Python file (a stdlib module), deletes a function's body and retypes it
character by character at a set pace, sending ``didChange`` and
``inlineCompletion`` (and ``$/cancelRequest`` for the request each keystroke
supersedes) exactly as an editor does, once with the latency features on (KV prefix
reuse, typed-ahead reuse, in-flight reuse, speculative next) and once with them off.
Then, in this process on the same model, it times model calls directly: a cold call
versus a follow-up after one typed character, prompt-lookup drafting, and the LSP
path versus a direct engine call.

    python bench/latency.py                              # tiny test model (built in seconds)
    python bench/latency.py --model builtin:gemma-3-270m --chars 40 --reps 2
    # the same model file served by llama.cpp (llama-cpp-python), started here:
    python bench/latency.py --backend openai --llama-server --chars 40 --reps 2
    # any running OpenAI-compatible server (vLLM, SGLang, llama.cpp):
    python bench/latency.py --backend openai --base-url http://gpu-box:8000/v1 --model auto

With ``--backend openai`` the direct rows time calls to the server through the
openai engine; the in-process-only rows (one-token model calls, prompt lookup) are
left out, and "prefilled" counts come from the server where it reports them.

Writes the "## Latency" section of BENCHMARKS.md and bench/latency_cdf.png.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from lsprotocol import types  # noqa: E402

from bench.report import bench_model, hardware, put_block, slug  # noqa: E402
from mmlsp.complete import generate_completion, prepare_prompt  # noqa: E402
from mmlsp.config import (  # noqa: E402
    DECODE_MODES,
    DTYPES,
    TYPING_PAUSE_S,
    Settings,
    default_cache_dir,
)
from mmlsp.engine import EngineHost, GenerationRequest, LoadSpec  # noqa: E402
from mmlsp.syntax import SyntaxDocument  # noqa: E402
from mmlsp.text.positions import position_at  # noqa: E402
from tests.lsp_helpers import change_doc, lsp_session, open_doc, status, wait_for_state  # noqa: E402

URI = "file:///bench/typing.py"
FEATURES_ON = {"kvReuse": True, "typeahead": True}
FEATURES_OFF = {"kvReuse": False, "typeahead": False}
SERVED = ("typeahead", "inflight", "speculative")
# Characters after which the typist pauses (a word ends).
PAUSE_AFTER = frozenset(" \n(.,:=")
MODEL_WORK = ("model", "empty", "inflight", "speculative")  # outcomes a model call is behind
# Short enough that the whole file fits the prompt budget; --file/--function pick others.
DEFAULT_FILE, DEFAULT_FUNCTION = "fnmatch.py", "translate"


# -- the typing script ------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    path: Path
    function: str
    start: str  # the file with the body deleted, up to the cursor
    body: str  # what gets retyped
    end: str  # the rest of the file


def make_script(path: Path, function: str, chars: int) -> Script:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    node = next(
        (
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function
        ),
        None,
    )
    if node is None:
        raise SystemExit(f"no function {function!r} in {path}")
    lines = source.splitlines(keepends=True)
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        first = node.body[1] if len(node.body) > 1 else first  # keep the docstring
    start_line, end_line = first.lineno - 1, node.body[-1].end_lineno or first.lineno
    indent = lines[start_line][: len(lines[start_line]) - len(lines[start_line].lstrip())]
    body = "".join(lines[start_line:end_line])[len(indent) :].rstrip("\n")
    body = body[:chars] if chars else body
    start = "".join(lines[:start_line]) + indent
    end = "\n" + "".join(lines[end_line:])
    return Script(path, function, start, body, end)


def stdlib(name: str) -> Path:
    return Path(sysconfig.get_paths()["stdlib"]) / name


# -- replay through the LSP server ---------------------------------------------------


@dataclass
class Replay:
    name: str
    latencies_ms: list[float] = field(default_factory=list)  # keystroke -> suggestion shown
    keystrokes: int = 0
    answered: int = 0  # keystrokes whose own request returned a suggestion
    outcomes: dict[str, int] = field(default_factory=dict)
    prefilled: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)  # new tokens per model call
    served_ms: list[float] = field(default_factory=list)  # server time for typed-ahead hits
    lsp_call_ms: list[float] = field(default_factory=list)
    # (outcome, prompt tokens, generated tokens) behind each of those calls, from the server.
    lsp_call_work: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    # The first request after the model is ready, and the same request right after.
    first_ms: float = 0.0
    again_ms: float = 0.0
    # Pauses in typing (after a word), those that ended with a suggestion on screen
    # within the pause, and why the others did not.
    pauses: int = 0
    shown: int = 0
    empty_reasons: dict[str, int] = field(default_factory=dict)
    # The server's start: spawn to model ready (s), the load as its status reports it
    # (s), which engine ran and why, and its peak resident memory (MiB, VmHWM).
    ready_s: float = 0.0
    load_s: float | None = None
    backend: str = ""
    backend_reason: str = ""
    peak_rss_mib: float | None = None

    @property
    def shown_rate(self) -> float:
        return self.shown / self.pauses if self.pauses else float("nan")


def plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def inline_params(line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line, character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def replay(args: argparse.Namespace, script: Script, name: str, options: dict) -> Replay:
    out = Replay(name)
    init = {**base_options(args), **options}
    spawned = time.perf_counter()
    async with lsp_session(server_flags(args), args.cache_dir, init) as client:
        ready = await wait_for_state(client)
        if ready["state"] != "ready":
            raise SystemExit(f"model failed to load: {ready}")
        out.ready_s = time.perf_counter() - spawned
        out.load_s = ready.get("load_seconds")
        out.backend = ready.get("backend") or ""
        out.backend_reason = ready.get("backend_reason") or ""
        text = script.start + script.end
        open_doc(client, URI, text)
        cursor = len(script.start)
        # Warm-up: one request at the start, as when the user opens the function; timed,
        # and again, for what a first request costs more (with the features off, the
        # second is the same work).
        line, col = position_at(text, cursor)
        for attr in ("first_ms", "again_ms"):
            sent = time.perf_counter()
            await client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(line, col)
            )
            setattr(out, attr, (time.perf_counter() - sent) * 1000)
        pending: dict[str, asyncio.Future] = {}
        loop = asyncio.get_running_loop()
        version = 1

        # Per keystroke: whether a suggestion came, and after how long (ms).
        answers: dict[int, tuple[bool, float]] = {}
        pause_at: dict[int, tuple[int, int]] = {}  # pause keystrokes: their cursor

        async def request(key: int, sent: float, msg_id: str, line: int, col: int) -> None:
            try:
                result = await pending[msg_id]
            except Exception:  # cancelled: superseded by the next keystroke
                return
            answers[key] = (bool(result is not None and result.items), (loop.time() - sent) * 1000)
            if result is not None and result.items:
                out.answered += 1
                out.latencies_ms.append((loop.time() - sent) * 1000)

        tasks = []
        previous: str | None = None
        for i, char in enumerate(script.body):
            before = script.body[i - 1] if i else ""
            # The typist stops after a word (not within runs of indentation).
            is_pause = args.pause_ms > 0 and char in PAUSE_AFTER and before.strip() != ""
            version += 1
            sent = loop.time()
            line, col = position_at(text, cursor)
            change_doc(client, URI, version, char, (line, col))
            text = text[:cursor] + char + text[cursor:]
            cursor += 1
            line, col = position_at(text, cursor)
            msg_id = f"{name}-{i}"
            if previous is not None and not args.wait:
                client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=previous))
            pending[msg_id] = asyncio.ensure_future(
                client.protocol.send_request_async(
                    types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(line, col), msg_id=msg_id
                )
            )
            task = asyncio.ensure_future(request(i, sent, msg_id, line, col))
            tasks.append(task)
            previous = msg_id
            out.keystrokes += 1
            if is_pause:
                pause_at[i] = (line, col)
            gap_ms = max(args.pace_ms, args.pause_ms) if is_pause else args.pace_ms
            pace = asyncio.sleep(gap_ms / 1000)
            if args.wait:  # the typist reads each suggestion before the next key
                await asyncio.gather(pace, asyncio.wait_for(task, 600))
            else:
                await pace
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
        stats = plain((await status(client))["completion"])
        recent = stats["recent"][-out.keystrokes :]
        if args.verbose:
            for i, record in enumerate(recent):
                print(f"{name} {i} {json.dumps(record)}", file=sys.stderr)
        reasons = {(r["line"], r["character"]): r.get("reason") for r in recent}
        for i, where in pause_at.items():
            out.pauses += 1
            items, ms = answers.get(i, (False, float("inf")))
            if items and ms <= args.pause_ms:
                out.shown += 1
                continue
            reason = "too slow" if items or i not in answers else (reasons.get(where) or "?")
            out.empty_reasons[reason] = out.empty_reasons.get(reason, 0) + 1
        for record in recent:
            out.outcomes[record["outcome"]] = out.outcomes.get(record["outcome"], 0) + 1
            # Every model call: an empty answer's work counts too.
            if record["outcome"] in MODEL_WORK and record["prefilled"]:
                out.prefilled.append(record["prefilled"])
                out.reused.append(record["reused"])
                out.generated.append(record["generated"] or 0)
            if record["outcome"] == "typeahead":
                out.served_ms.append(record["ms"])
        # LSP path: the same request, repeated at the final state (nothing typed since).
        if name == "off":
            # Past the typing pause, so the adaptive debounce does not hold the requests:
            # this row times the request path, not the wait for the user's next key.
            await asyncio.sleep(TYPING_PAUSE_S + 0.1)
            line, col = position_at(text, cursor)
            for _ in range(args.overhead_reps):
                start = time.perf_counter()
                await client.protocol.send_request_async(
                    types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(line, col)
                )
                out.lsp_call_ms.append((time.perf_counter() - start) * 1000)
            records = plain((await status(client))["completion"])["recent"][-args.overhead_reps :]
            out.lsp_call_work = [
                (r["outcome"], r["prompt_tokens"], r["generated"]) for r in records
            ]
        server = getattr(client, "_server", None)  # pygls's asyncio subprocess
        out.peak_rss_mib = peak_rss_mib(server.pid) if server is not None else None
    return out


def peak_rss_mib(pid: int) -> float | None:
    """The peak resident memory of process ``pid`` so far (Linux VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def base_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        "device": args.device,
        "maxNewTokens": args.max_new_tokens,
        "maxNewTokensMultiline": args.max_new_tokens,
        "timeBudgetMs": args.time_budget_ms,
        "decodeMode": args.decode_mode,
        "dtype": args.dtype,
    }
    return options


def server_flags(args: argparse.Namespace) -> list[str]:
    """The server's command line: the model, and a remote backend (only the user's own
    launch may set one)."""
    flags = ["--model", args.model]
    if args.backend == "openai":
        flags += ["--backend", "openai", "--base-url", args.base_url]
    return flags


def load_spec(args: argparse.Namespace) -> LoadSpec:
    """What the server loads for ``base_options``, built the way the server builds it."""
    backend = {"backend": "openai", "base_url": args.base_url} if args.backend == "openai" else {}
    settings = Settings(
        model=args.model,
        device=args.device,
        cache_dir=str(args.cache_dir),
        decode_mode=args.decode_mode,
        dtype=args.dtype,
        **backend,
    )
    return LoadSpec.from_settings(settings)


def clear_cache(engine: Any) -> None:
    """Forget kept prompt KV caches and tokenized prompt pieces, so the next call is
    cold (in-process only; a server keeps its own)."""
    if (cache := getattr(engine, "prefix_cache", None)) is not None:
        cache.clear()
    if (pieces := getattr(engine, "prompt_encoder", None)) is not None:
        pieces.clear()


# -- direct engine measurements --------------------------------------------------------


@dataclass
class Direct:
    cold_ms: list[float] = field(default_factory=list)
    follow_ms: list[float] = field(default_factory=list)  # one char typed, reuse on
    follow_off_ms: list[float] = field(default_factory=list)  # one char typed, reuse off
    # The follow-up again (after its cold call), reuse on but reuse drafts off.
    follow_nodraft_ms: list[float] = field(default_factory=list)
    follow_same: int = 0  # follow-ups whose text is the same with reuse drafts on and off
    follow_drafted: int = 0  # reuse-draft tokens proposed in the follow-ups, and accepted
    follow_accepted: int = 0
    cold_first_ms: list[float] = field(default_factory=list)  # first token only (prefill)
    follow_first_ms: list[float] = field(default_factory=list)
    cold_prefill: list[int] = field(default_factory=list)
    follow_prefill: list[int] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)  # as the LSP overhead baseline
    engine_work: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    engine_cold_ms: list[float] = field(default_factory=list)  # model only, one token
    engine_follow_ms: list[float] = field(default_factory=list)
    follow_generated: list[int] = field(default_factory=list)  # new tokens, follow-ups
    decode_ms: list[float] = field(default_factory=list)  # per token, after the first
    weight_bytes: int = 0
    read_gbs: float = 0.0  # the device's memory read bandwidth
    lookup: dict[int, dict[str, Any]] = field(default_factory=dict)


async def direct(args: argparse.Namespace, script: Script) -> Direct:
    """Time model calls in this process, every one on the host's generation thread.

    As in the server: torch work on a second thread gives OpenMP a second team, and
    with more OpenMP threads than cores libgomp stops spinning between parallel
    regions, for good. Gemma decoded 55 ms a token on one thread and 76 once a second
    thread had generated too (2 cores), so nothing here runs torch on this thread
    until the host is shut down.
    """
    host = EngineHost()
    host.load(load_spec(args))
    ready = host.wait_ready(1800)
    if ready.state != "ready":
        raise SystemExit(f"model failed to load: {ready}")
    engine = host.engine
    settings = replace(
        Settings(),
        max_new_tokens=args.max_new_tokens,
        max_new_tokens_multiline=args.max_new_tokens,
        time_budget_ms=args.time_budget_ms,
    )
    one = replace(settings, max_new_tokens=1, max_new_tokens_multiline=1)
    out = Direct()
    body = script.body
    # Direct engine call at the replay's final state: the LSP overhead baseline. First,
    # after one untimed call, as the server's were timed on a warm engine (measured
    # after the rest below, the same call ran 25% slower than in a fresh process).
    final = script.start + body + script.end
    off = len(script.start) + len(body)
    off_settings = replace(settings, kv_reuse=False)
    # With the syntax tree the server keeps, so both paths make the same shape decision.
    tree = SyntaxDocument(final, "python")
    await generate_completion(final, off, off_settings, host, syntax_doc=tree)
    for _ in range(args.overhead_reps):
        t = time.perf_counter()
        got, r = await generate_completion(final, off, off_settings, host, syntax_doc=tree)
        out.engine_ms.append((time.perf_counter() - t) * 1000)
        # As the server records it: the outcome and the model's tokens behind it.
        tokens = (r.prompt_tokens, r.generated_tokens) if r else (None, None)
        out.engine_work.append(("model" if got else "empty", *tokens))
    points = [round(k * (len(body) - 1) / max(1, args.reps)) for k in range(args.reps)]
    for at in points:
        text0 = script.start + body[:at] + script.end
        off0 = len(script.start) + at
        text1 = script.start + body[: at + 1] + script.end
        followed = []
        for opts, cold_list, follow_list in (
            (settings, out.cold_ms, out.follow_ms),
            (replace(settings, reuse_draft_tokens=0), [], out.follow_nodraft_ms),
        ):
            clear_cache(engine)
            t = time.perf_counter()
            _, r0 = await generate_completion(text0, off0, opts, host, cache_key="d")
            cold_list.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            got, r1 = await generate_completion(text1, off0 + 1, opts, host, cache_key="d")
            follow_list.append((time.perf_counter() - t) * 1000)
            followed.append((got, r0, r1))
        (got, r0, r1), (got_nodraft, *_) = followed
        out.cold_prefill.append(r0.prefilled_tokens)
        out.follow_prefill.append(r1.prefilled_tokens)
        out.follow_generated.append(r1.generated_tokens)
        out.follow_same += got == got_nodraft
        out.follow_drafted += r1.draft_tokens
        out.follow_accepted += r1.accepted_draft_tokens
        t = time.perf_counter()
        await generate_completion(text1, off0 + 1, settings, host)
        out.follow_off_ms.append((time.perf_counter() - t) * 1000)
        clear_cache(engine)
        t = time.perf_counter()
        await generate_completion(text0, off0, one, host, cache_key="p")
        out.cold_first_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        await generate_completion(text1, off0 + 1, one, host, cache_key="p")
        out.follow_first_ms.append((time.perf_counter() - t) * 1000)
        if args.backend != "local":
            continue  # the one-token rows time the in-process model alone
        # The model alone (no context building or post-processing): prefill + 1 token.
        p0 = prompt_for(host, settings, text0, off0)
        p1 = prompt_for(host, settings, text1, off0 + 1)
        clear_cache(engine)
        t = time.perf_counter()
        await host.generate(GenerationRequest(p0, 1, cache_key="e"))
        out.engine_cold_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        await host.generate(GenerationRequest(p1, 1, cache_key="e"))
        out.engine_follow_ms.append((time.perf_counter() - t) * 1000)
        # Decode speed: the follow-up again, to max_new_tokens, less its one-token time
        # (both prefill one token from the kept cache, so no prefill noise is left).
        t = time.perf_counter()
        r_n = await host.generate(GenerationRequest(p1, args.max_new_tokens, cache_key="e"))
        if r_n.generated_tokens > 1 and r_n.prefilled_tokens == 1:
            spent = (time.perf_counter() - t) * 1000 - out.engine_follow_ms[-1]
            out.decode_ms.append(spent / (r_n.generated_tokens - 1))
    if args.backend == "local":
        out.weight_bytes = decode_bytes(engine.model)
    # Prompt lookup: same prompts, drafts on and off; identical output is required.
    for draft in args.lookup if args.backend == "local" else ():
        same, times = 0, []
        for at in points:
            text0 = script.start + body[:at] + script.end
            off0 = len(script.start) + at
            t = time.perf_counter()
            plain_text, r_plain = await generate_completion(text0, off0, settings, host)
            base = time.perf_counter() - t
            drafted = replace(settings, prompt_lookup_tokens=draft)
            t = time.perf_counter()
            draft_text, r_draft = await generate_completion(text0, off0, drafted, host)
            times.append(((time.perf_counter() - t), base, r_draft))
            same += plain_text == draft_text
        out.lookup[draft] = {
            "identical": f"{same}/{len(points)}",
            "ratio": paired([d for d, *_ in times], [b for _, b, _ in times]),
            "accepted": sum(r.accepted_draft_tokens for *_, r in times),
            "drafted": sum(r.draft_tokens for *_, r in times),
        }
    device = getattr(engine, "device", "cpu")
    host.shutdown()
    if out.weight_bytes:
        out.read_gbs = read_bandwidth_gbs(device)  # torch on this thread: only now
    return out


def decode_bytes(model: Any) -> int:
    """Bytes of weights one decoded token reads: every parameter and buffer (int8
    weights are buffers), less an input embedding that the output head does not
    share, of which a token reads one row."""
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    embedding = model.get_input_embeddings().weight
    if getattr(model.get_output_embeddings(), "weight", None) is not embedding:
        tensors.pop(id(embedding), None)
    return sum(t.numel() * t.element_size() for t in tensors.values())


def read_bandwidth_gbs(device: str, mib: int = 512, reps: int = 5) -> float:
    """Memory read bandwidth as torch sees it on ``device`` (GB/s): summing a buffer.

    Decoding one token reads every weight once, so weight bytes over this is the
    fastest any decoder can go on this machine (ANCHORS.md, "Physical limit").
    """
    import torch

    x = torch.ones(mib * 2**20 // 4, device=device)  # touched, so pages are real
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    x.sum()
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        x.sum()
        sync()
        best = min(best, time.perf_counter() - t)
    return x.numel() * x.element_size() / best / 1e9


def ratio_at_floor(cold_ms: float, follow_ms: float, tokens: float, floor_ms: float) -> float:
    """The follow-up/cold ratio of whole calls if every token after the first decoded
    at ``floor_ms``: ``cold_ms`` and ``follow_ms`` are prefill + first token."""
    decode = max(0.0, tokens - 1) * floor_ms
    return (follow_ms + decode) / (cold_ms + decode)


def prompt_for(host: EngineHost, settings: Settings, text: str, offset: int) -> str:
    """The prompt the completion path builds (context fitted to the budgets, FIM)."""
    return prepare_prompt(text, offset, settings, host.engine.count_tokens, host.template)[1]


# -- report ---------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired(num: list[float], den: list[float]) -> float:
    """The median of per-prompt ratios: ``num[i]`` and ``den[i]`` timed the same prompt.

    The ratio of two medians could set one prompt's follow-up against another's cold
    call, and the replay's prompts decode very different numbers of tokens.
    """
    return med([a / b for a, b in zip(num, den, strict=True) if b > 0])


def same_work(off: Replay, d: Direct) -> str:
    """A warning for the overhead row when the two paths did not do the same work."""
    lsp, direct = set(off.lsp_call_work), set(d.engine_work)
    if lsp == direct and len(lsp) == 1:
        return ""

    def words(work: set) -> str:
        return ", ".join(f"{o}: {p} prompt + {g} new tokens" for o, p, g in sorted(work, key=str))

    return f"; NOT the same work: LSP {words(lsp)}, direct {words(direct)}"


def report(args, script: Script, on: Replay, off: Replay, d: Direct) -> str:
    def served(r: Replay) -> float:
        return sum(r.outcomes.get(k, 0) for k in SERVED) / max(1, r.keystrokes)

    cold, follow, follow_off = med(d.cold_ms), med(d.follow_ms), med(d.follow_off_ms)
    lsp, eng = med(off.lsp_call_ms), med(d.engine_ms)
    rows = [
        (
            "keystroke → suggestion p50 (ms)",
            f"{pct(on.latencies_ms, 0.5):.0f}",
            f"{pct(off.latencies_ms, 0.5):.0f}",
            "",
        ),
        (
            "keystroke → suggestion p95 (ms)",
            f"{pct(on.latencies_ms, 0.95):.0f}",
            f"{pct(off.latencies_ms, 0.95):.0f}",
            "",
        ),
        (
            "keystrokes answered with a suggestion",
            f"{on.answered}/{on.keystrokes}",
            f"{off.answered}/{off.keystrokes}",
            "",
        ),
        (
            "pauses that ended with a suggestion on screen (shown rate)",
            f"{on.shown}/{on.pauses} ({on.shown_rate:.0%})",
            f"{off.shown}/{off.pauses} ({off.shown_rate:.0%})",
            f"a pause: {args.pause_ms:.0f} ms after a word; shown: within the pause",
        ),
        ("keystrokes served without a model call", f"{served(on):.0%}", f"{served(off):.0%}", ""),
        (
            "typed-ahead hit, server time p50 (ms)",
            f"{pct(on.served_ms, 0.5):.2f}",
            "–",
            "target < 5",
        ),
        (
            "prompt tokens prefilled per model call (median)",
            f"{med(on.prefilled):.0f}",
            f"{med(off.prefilled):.0f}",
            f"ratio {med(on.prefilled) / max(1, med(off.prefilled)):.2f}",
        ),
        (
            "new tokens per model call (median)",
            f"{med(on.generated):.0f}",
            f"{med(off.generated):.0f}",
            "decoding differs when outputs do",
        ),
        (
            "first request after the model is ready vs the same request again (ms)",
            "",
            f"{off.first_ms:.0f} vs {off.again_ms:.0f}",
            f"ratio {off.first_ms / max(off.again_ms, 1e-9):.2f}",
        ),
        ("direct: cold call (ms)", f"{cold:.0f}", f"{cold:.0f}", ""),
        (
            "direct: after one typed char, reuse on vs the same prompt cold (ms)",
            f"{follow:.0f}",
            f"{follow_off:.0f}",
            f"ratio {paired(d.follow_ms, d.follow_off_ms):.2f} (target ≤ 0.3; median of "
            f"{len(d.follow_ms)} per-prompt ratios, of the medians {follow / follow_off:.2f})",
        ),
        (
            "direct: after one typed char, reuse drafts on vs off (ms)",
            f"{follow:.0f}",
            f"{med(d.follow_nodraft_ms):.0f}",
            f"ratio {paired(d.follow_ms, d.follow_nodraft_ms):.2f}, identical "
            f"{d.follow_same}/{len(d.follow_ms)}, accepted {d.follow_accepted}/"
            f"{d.follow_drafted}; drafts off, ratio to the same prompt cold "
            f"{paired(d.follow_nodraft_ms, d.follow_off_ms):.2f}",
        ),
        (
            "direct: first token only, cold → follow-up (ms)",
            f"{med(d.cold_first_ms):.0f} → {med(d.follow_first_ms):.0f}",
            "",
            f"ratio {paired(d.follow_first_ms, d.cold_first_ms):.2f}",
        ),
        (
            "model only, prefill + 1 token, cold → follow-up (ms)",
            f"{med(d.engine_cold_ms):.0f} → {med(d.engine_follow_ms):.0f}",
            "",
            f"ratio {paired(d.engine_follow_ms, d.engine_cold_ms):.2f} (target ≤ 0.3)",
        ),
        (
            "direct: tokens prefilled cold → follow-up",
            f"{med(d.cold_prefill):.0f} → {med(d.follow_prefill):.0f}",
            "",
            "",
        ),
        (
            "LSP request vs direct engine call (ms)",
            "",
            f"{lsp:.0f} vs {eng:.0f}",
            f"overhead ratio {lsp / eng:.2f} (target ≤ 1.10){same_work(off, d)}",
        ),
    ]
    if d.decode_ms and d.read_gbs:
        floor = d.weight_bytes / (d.read_gbs * 1e9) * 1000
        dec = med(d.decode_ms)
        best = ratio_at_floor(
            med(d.engine_cold_ms), med(d.engine_follow_ms), med(d.follow_generated), floor
        )
        rows.append(
            (
                "model only, decode per token after the first (ms)",
                f"{dec:.1f}",
                "",
                f"memory floor {floor:.1f} ms (weights read {d.weight_bytes / 1e6:.0f} MB ÷ "
                f"{d.read_gbs:.0f} GB/s read): {floor / dec:.0%} of the limit; decoding at "
                f"the floor, the follow-up ratio would be {best:.2f} "
                f"({med(d.follow_generated):.0f} new tokens)",
            )
        )
    for draft, info in d.lookup.items():
        rows.append(
            (
                f"prompt lookup, {draft} draft tokens",
                "",
                "",
                f"time ratio {info['ratio']:.2f}, identical {info['identical']}, "
                f"accepted {info['accepted']}/{info['drafted']}",
            )
        )
    lines = [
        "| measure | features on | features off | note |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {n} |" for a, b, c, n in rows),
    ]
    outcome_line = (
        f"Request outcomes, on: `{json.dumps(on.outcomes)}`; off: `{json.dumps(off.outcomes)}`."
    )
    reasons_line = (
        f"Why pauses ended without a suggestion, on: `{json.dumps(on.empty_reasons)}`; "
        f"off: `{json.dumps(off.empty_reasons)}`."
    )
    return "\n".join(lines) + "\n\n" + outcome_line + "\n\n" + reasons_line


def plot(on: Replay, off: Replay, path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for r, label in ((on, "latency features on"), (off, "off")):
        xs = sorted(r.latencies_ms)
        if xs:
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{label} (n={len(xs)})")
    ax.set_xscale("log")
    ax.set_xlabel("keystroke → suggestion (ms, log)")
    ax.set_ylabel("share of answered keystrokes")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="'tiny' (test model) or any --model value")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--decode-mode",
        default="auto",
        choices=DECODE_MODES,
        help="the engine's decodeMode (compiled: a torch.compile'd decode step)",
    )
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="the engine's dtype")
    p.add_argument("--file", default=DEFAULT_FILE, help="stdlib module or a path")
    p.add_argument("--function", default=DEFAULT_FUNCTION)
    p.add_argument("--chars", type=int, default=400, help="retype this many chars (0: all)")
    p.add_argument("--pace-ms", type=float, default=80.0, help="gap between keystrokes")
    p.add_argument(
        "--pause-ms",
        type=float,
        default=1000.0,
        help="after each word the typist pauses this long; a suggestion shown within it"
        " counts toward the shown rate (0: no pauses)",
    )
    p.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="type on at the pace without waiting for each answer (superseded requests"
        " are cancelled); by default each keystroke waits for its answer, then the pace",
    )
    p.add_argument("--reps", type=int, default=5, help="repetitions of direct measurements")
    p.add_argument(
        "--overhead-reps",
        type=int,
        default=15,
        help="calls timed on each side of the LSP-overhead row (medians of 5 swung 0.8-1.3)",
    )
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument(
        "--time-budget-ms",
        type=int,
        default=60000,
        help="per request; large by default so that no measured call is cut short",
    )
    p.add_argument("--lookup", type=int, nargs="*", default=[4, 8])
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--verbose", action="store_true", help="print each request's record")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads, here and in the server (equal, so the comparisons are fair;"
        " few, so a busy machine does not thrash OpenMP); llama.cpp threads with --llama-server",
    )
    p.add_argument(
        "--backend",
        choices=("local", "openai"),
        default="local",
        help="local: the model in the mmlsp process; openai: an OpenAI-compatible server",
    )
    p.add_argument("--base-url", default="", help="the server, with --backend openai")
    p.add_argument(
        "--llama-server",
        action="store_true",
        help="start llama-cpp-python's server on the builtin Gemma-3-270M GGUF (the file the"
        " in-process engine loads) and benchmark against it (implies --backend openai)",
    )
    args = p.parse_args(argv)
    if args.llama_server:
        args.backend = "openai"
    if args.backend == "openai" and not (args.base_url or args.llama_server):
        p.error("--backend openai needs --base-url or --llama-server")
    return args


async def main_async(args: argparse.Namespace) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the server
    torch.set_num_threads(args.threads)
    label = args.model
    server = None
    if args.llama_server:
        from tests.llama_server import LlamaServer, builtin_gguf

        log_path = Path(tempfile.mkdtemp(prefix="mmlsp-llama-")) / "server.log"
        server = LlamaServer(builtin_gguf(), log_path, threads=args.threads)
        args.base_url, args.model = server.base_url, "auto"
        label = f"gemma-3-270m via llama.cpp server ({args.threads} thread(s))"
        print(f"llama.cpp server at {server.base_url}, log {log_path}", file=sys.stderr)
    elif args.backend == "openai":
        label = f"{args.model} via {args.base_url}"
    try:
        await run_benchmark(args, label)
    finally:
        if server is not None:
            server.stop()


async def run_benchmark(args: argparse.Namespace, label: str) -> None:
    if args.model == "tiny":
        args.model, label = bench_model(args.model)
    args.cache_dir = default_cache_dir()
    path = Path(args.file) if Path(args.file).is_file() else stdlib(args.file)
    script = make_script(path, args.function, args.chars)
    print(f"retyping {len(script.body)} chars of {path.name}:{script.function}", file=sys.stderr)
    on = await replay(args, script, "on", FEATURES_ON)
    print(f"on: {on.outcomes}", file=sys.stderr)
    off = await replay(args, script, "off", FEATURES_OFF)
    print(f"off: {off.outcomes}", file=sys.stderr)
    d = await direct(args, script)
    table = report(args, script, on, off, d)
    variant = [f"{args.decode_mode} decode"] if args.decode_mode != "auto" else []
    variant += [args.dtype] if args.dtype != "auto" else []
    if (args.file, args.function) != (DEFAULT_FILE, DEFAULT_FUNCTION):
        variant.append(f"{path.stem}.{script.function}")
    label += "".join(f", {v}" for v in variant)
    # The tiny model's sections keep short names: "tiny", "tiny-compiled"...
    named = " ".join(["tiny", *(v.split()[0] for v in variant)]) if "tiny" in label else label
    name = slug(named)
    png = args.plot or ROOT / "bench" / f"latency_cdf_{name}.png"
    # --no-write leaves the repository's files alone; an explicit --plot is still drawn.
    drawn = not args.no_write or args.plot is not None
    plotted = drawn and plot(on, off, png, f"{label}: {path.name}:{script.function}")
    header = (
        f"### {label}\n\n"
        f"`{' '.join(['python', 'bench/latency.py', *sys.argv[1:]])}` — retyped "
        f"{len(script.body)} chars of `{path.name}:{script.function}` at {args.pace_ms:.0f} ms "
        f"a keystroke{' (each answer awaited)' if args.wait else ''}, "
        f"{hardware(args.device, args.threads)}, "
        f"max {args.max_new_tokens} new tokens.\n"
    )
    body = header + "\n" + table + "\n"
    if plotted:
        shown = png.relative_to(ROOT) if png.is_relative_to(ROOT) else png
        body += f"\n![latency CDF]({shown.as_posix()})\n"
    print(body)
    if not args.no_write:
        write_model_section(args.out, name, body)


def write_model_section(path: Path, name: str, body: str) -> None:
    """Keep one block per model inside "## Latency", between marker comments."""
    put_block(path, "## Latency", "latency", name, body, LATENCY_INTRO)


LATENCY_INTRO = """Produced by `python bench/latency.py` (see README, "Benchmarks"). The replay
types a real stdlib function body into the real server over stdio, as an editor does
(didChange and inlineCompletion; with `--no-wait`, $/cancelRequest too), once
with the latency features on (KV prefix reuse, typed-ahead and in-flight reuse,
speculative next suggestion) and once off; the direct rows time the engine in the
benchmark process on the same model.

"""


def main(argv: list[str] | None = None) -> None:
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
