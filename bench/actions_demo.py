"""Run each AI action once with a real model, through the real server, and record the output.

    python -m bench.actions_demo --model builtin:smollm2-135m-instruct

Fix (for a linter-style diagnostic), add docstring, explain, hover and review on save
run on ``examples/stats.py`` over stdio, exactly as an editor sends them. The outputs
are written verbatim to ``bench/actions_<model>.md`` (and printed), so a reader can
judge the prose that the tiny test model cannot produce.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsprotocol import types  # noqa: E402
from pygls.exceptions import JsonRpcException  # noqa: E402

from mmlsp.config import BUILTIN_CHAT_MODEL, default_cache_dir  # noqa: E402
from tests.lsp_helpers import (  # noqa: E402
    code_action_params,
    only_edit,
    open_doc,
    point,
    start_action_client,
    status,
)

SAMPLE = ROOT / "examples" / "stats.py"
TIMEOUT = 600


def fenced(text: str, lang: str = "") -> str:
    return f"```{lang}\n{text.rstrip()}\n```"


async def resolve(client, actions, kind: types.CodeActionKind) -> tuple[str, str]:
    """Resolve the first action of ``kind``: (its title, the edited text or the error)."""
    action = next(a for a in actions if a.kind == kind)
    try:
        resolved = await asyncio.wait_for(client.code_action_resolve_async(action), TIMEOUT)
    except JsonRpcException as exc:
        return action.title, f"(no edit offered: {exc})"
    return action.title, only_edit(resolved.edit, client.demo_uri).new_text


async def hover_text(client, uri: str, line: int, character: int) -> str:
    params = types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line, character),
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = (await client.text_document_hover_async(params)).contents.value
        if "being written" not in value:
            return value
        await asyncio.sleep(0.2)
    return "(the explanation did not arrive in time)"


async def review(client, uri: str) -> list[str]:
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    deadline = time.monotonic() + TIMEOUT
    before = (await status(client))["generations"]
    # One review generation per function of the sample, then the publish.
    functions = len(re.findall(r"^\s*def ", SAMPLE.read_text(), re.M))
    while (await status(client))["generations"] < before + functions:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)
    return [
        f"line {d.range.start.line + 1}: {d.message}"
        for d in client.diagnostics.get(uri, [])
        if d.source == "mmlsp-ai"
    ]


async def run(model: str, out: Path) -> str:
    text = SAMPLE.read_text()
    uri = SAMPLE.as_uri()
    started = time.monotonic()
    session, client = await start_action_client(
        model, default_cache_dir(), "visual-studio-code", reviewOnSave="on"
    )
    client.demo_uri = uri
    try:
        load_s = time.monotonic() - started
        open_doc(client, uri, text)
        sections = [f"# AI actions with `{model}`", ""]
        sections += [f"Sample: `examples/stats.py`. Model loaded in {load_s:.1f} s.", ""]

        # A linter-style diagnostic on `return total / len(values)` in mean().
        line = next(i for i, row in enumerate(text.splitlines()) if "/ len(values)" in row)
        diagnostic = types.Diagnostic(
            range=point(line, 11), message="ZeroDivisionError when values is empty", source="demo"
        )
        timings = {}
        t = time.monotonic()
        actions = await client.text_document_code_action_async(
            code_action_params(uri, point(line, 11), [diagnostic])
        )
        title, fixed = await resolve(client, actions, types.CodeActionKind.QuickFix)
        timings["fix"] = time.monotonic() - t
        sections += [f"## {title}", "", fenced(fixed, "python"), ""]

        reader = next(i for i, row in enumerate(text.splitlines()) if "def read_numbers" in row)
        t = time.monotonic()
        actions = await client.text_document_code_action_async(
            code_action_params(uri, point(reader, 6))
        )
        title, docstring = await resolve(client, actions, types.CodeActionKind.RefactorRewrite)
        timings["docstring"] = time.monotonic() - t
        sections += [f"## {title} (on `read_numbers`)", "", fenced(docstring, "python"), ""]

        t = time.monotonic()
        explanation = await asyncio.wait_for(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="mmlsp.explain",
                    arguments=[uri, {"line": line, "character": 4}, {"show": False}],
                )
            ),
            TIMEOUT,
        )
        timings["explain"] = time.monotonic() - t
        sections += ["## Explain (on `mean`)", "", explanation.strip(), ""]

        last = len(text.splitlines()) - 1
        t = time.monotonic()
        hover = await hover_text(client, uri, last, text.splitlines()[last].index("mean") + 1)
        timings["hover"] = time.monotonic() - t
        sections += ["## Hover (on the call to `mean`)", "", hover.strip(), ""]

        t = time.monotonic()
        findings = await review(client, uri)
        timings["review"] = time.monotonic() - t
        sections += ["## Review on save", ""]
        sections += [f"- {f}" for f in findings] or ["(no findings)"]
        sections += ["", "## Seconds per action (CPU, this machine)", ""]
        sections += [f"- {name}: {seconds:.1f}" for name, seconds in timings.items()]
    finally:
        await session.__aexit__(None, None, None)
    report = "\n".join(sections) + "\n"
    out.write_text(report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=BUILTIN_CHAT_MODEL)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", args.model).strip("-")
    out = args.out or ROOT / "bench" / f"actions_{slug}.md"
    print(asyncio.run(run(args.model, out)))
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
