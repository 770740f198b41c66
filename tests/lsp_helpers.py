"""Start the real ``mmlsp`` server as a subprocess and talk LSP to it (pytest-lsp)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Union

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

LOAD_TIMEOUT = 120.0


def server_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MMLSP_CACHE_DIR=str(cache_dir))
    return env


@asynccontextmanager
async def lsp_session(
    args: Sequence[str],
    cache_dir: Path,
    init_options: dict[str, Any] | None = None,
    capabilities: types.ClientCapabilities | None = None,
) -> AsyncIterator[LanguageClient]:
    """A started and initialized client, shut down cleanly afterwards."""
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "mmlsp", *args], server_env=server_env(cache_dir)
    )
    client = await config.start()
    try:
        client.init_result = await client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities or client_capabilities("visual-studio-code"),
                initialization_options=init_options,
            )
        )
        yield client
    finally:
        # Shut down even when the test failed: stop() alone waits for a server that
        # was never told to exit.
        try:
            await asyncio.wait_for(client.shutdown_session(), 30)
        finally:
            await client.stop()


async def status(client: LanguageClient) -> dict[str, Any]:
    # pygls returns custom results as namedtuples.
    result = await client.protocol.send_request_async("mmlsp/status", None)
    return result._asdict()


async def wait_for_state(
    client: LanguageClient, states: tuple[str, ...] = ("ready", "failed"), model: str | None = None
) -> dict[str, Any]:
    """Poll the server's status until the model reaches one of ``states``."""
    deadline = asyncio.get_running_loop().time() + LOAD_TIMEOUT
    while True:
        current = await status(client)
        if current["state"] in states and (model is None or current["model"] == model):
            return current
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"model never reached {states}: {current}")
        await asyncio.sleep(0.05)


def open_doc(client: LanguageClient, uri: str, text: str, language_id: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=1, text=text
            )
        )
    )


def change_doc(
    client: LanguageClient,
    uri: str,
    version: int,
    text: str,
    start: tuple[int, int],
    end: tuple[int, int] | None = None,
) -> None:
    end = end or start
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(*start), types.Position(*end)), text=text
                )
            ],
        )
    )


async def inline(client: LanguageClient, uri: str, line: int, character: int):
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line, character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )


async def wait_for_diagnostics(client: LanguageClient, uri: str, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while uri not in client.diagnostics:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no diagnostics for {uri}")
        await asyncio.sleep(0.02)
    return client.diagnostics[uri]


# The union lsprotocol registers its hook for (spelled as it does, hence Union).
ACTION_OR_COMMAND = Union[types.Command, types.CodeAction]  # noqa: UP007


def point(line: int, character: int) -> types.Range:
    return types.Range(types.Position(line, character), types.Position(line, character))


def code_action_params(uri: str, rng: types.Range, diagnostics=()) -> types.CodeActionParams:
    return types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=rng,
        context=types.CodeActionContext(diagnostics=list(diagnostics)),
    )


def apply_edit(text: str, edit: types.TextEdit) -> str:
    lines = text.split("\n")

    def offset(p: types.Position) -> int:
        return sum(len(line) + 1 for line in lines[: p.line]) + p.character

    return text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]


def only_edit(edit: types.WorkspaceEdit, uri: str) -> types.TextEdit:
    if edit.document_changes:
        (change,) = edit.document_changes
        assert change.text_document.uri == uri
        (text_edit,) = change.edits
        return text_edit
    (text_edit,) = edit.changes[uri]
    return text_edit


async def start_action_client(
    model: Path | str, cache: Path, client_spec: str, flags: Sequence[str] = (), **options
):
    """A ready client that structures code actions correctly and records applied edits.

    ``flags`` go on the server's command line (the user's own launch: where a remote
    backend is set). Returns (session, client): call ``session.__aexit__`` to shut the
    server down.
    """
    session = lsp_session(
        ["--model", str(model), *flags],
        cache,
        init_options=options or None,
        capabilities=client_capabilities(client_spec),
    )
    client = await session.__aenter__()
    client.applied_edits = []
    converter = client.protocol._converter

    def code_action_or_command(obj: Any, _type: Any) -> Any:
        # lsprotocol reads any item with a "command" key as a Command, but a CodeAction
        # may carry a command object too: only a string "command" makes a Command.
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(ACTION_OR_COMMAND, code_action_or_command)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(params: types.ApplyWorkspaceEditParams):
        client.applied_edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    ready = await wait_for_state(client)
    assert ready["state"] == "ready", ready
    return session, client
