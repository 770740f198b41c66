"""The action and progress services on a real session, a scripted model and a fake editor.

``FakeClient`` implements the features' ``Client`` port and records what the services
asked of the editor; no server is involved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities

from mmlsp.config import Settings
from mmlsp.features.actions import ActionError, ActionService
from mmlsp.features.client import ClientCapabilities
from mmlsp.features.progress import ProgressService
from mmlsp.session import Session
from tests.scripted_engine import ScriptedEngine, scripted_host

URI = "file:///t/stats.py"
TEXT = "def mean(values):\n    return sum(values) / len(values)\n"
FIXED = "def mean(values):\n    return sum(values) / max(1, len(values))"


class FakeClient:
    """The editor as a recording fake of the ``Client`` port."""

    def __init__(self, capabilities: ClientCapabilities, *, applies: bool = True) -> None:
        self.capabilities = capabilities
        self.applies = applies
        self.notices: list[tuple[str, int]] = []
        self.messages: list[str] = []
        self.documents: list[str] = []
        self.edits: list[types.WorkspaceEdit] = []
        self.progress: list[tuple[str, object]] = []
        self.cancels: dict[str, Callable[[], None]] = {}

    def notify_user(self, message: str, level: int = logging.ERROR) -> None:
        self.notices.append((message, level))

    def show_message(self, message: str, kind: types.MessageType) -> None:
        self.messages.append(message)

    async def show_document(self, params: types.ShowDocumentParams) -> types.ShowDocumentResult:
        self.documents.append(params.uri)
        return types.ShowDocumentResult(success=True)

    async def apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        self.edits.append(params.edit)
        return types.ApplyWorkspaceEditResult(applied=self.applies, failure_reason="read-only")

    async def create_progress(self, token: str) -> None:
        self.progress.append((token, "create"))

    def on_progress_cancel(self, token: str, cancelled: Callable[[], None]) -> None:
        self.cancels[token] = cancelled

    def begin_progress(self, token: str, value: types.WorkDoneProgressBegin) -> None:
        self.progress.append((token, value))

    def report_progress(self, token: str, value: types.WorkDoneProgressReport) -> None:
        self.progress.append((token, value))

    def end_progress(self, token: str, value: types.WorkDoneProgressEnd) -> None:
        self.progress.append((token, value))


def service(
    replies: list[str], tmp_path: Path, capabilities: ClientCapabilities, **kw: bool
) -> tuple[ActionService, FakeClient]:
    session = Session(1_000_000)
    session.open(types.TextDocumentItem(URI, "python", 7, TEXT))
    client = FakeClient(capabilities, **kw)
    host = scripted_host(ScriptedEngine(replies), tmp_path)
    settings = Settings()
    return ActionService(session, lambda: settings, host, client), client


def test_capabilities_are_resolved_from_what_the_client_said() -> None:
    assert ClientCapabilities.from_lsp(None) == ClientCapabilities()
    assert ClientCapabilities.from_lsp(types.ClientCapabilities()) == ClientCapabilities()
    assert ClientCapabilities.from_lsp(client_capabilities("visual-studio-code")) == (
        ClientCapabilities(
            work_done_progress=True, show_document=True, resolves_edits=True, versioned_edits=True
        )
    )
    emacs = ClientCapabilities.from_lsp(client_capabilities("emacs"))
    assert not emacs.resolves_edits and not emacs.show_document


async def test_fix_command_applies_a_versioned_edit_through_the_client(tmp_path: Path) -> None:
    actions, client = service([FIXED], tmp_path, ClientCapabilities(versioned_edits=True))
    assert await actions.execute("mmlsp.fix", [URI, {"line": 1, "character": 8}]) is True
    (edit,) = client.edits
    (change,) = edit.document_changes
    assert change.text_document.version == 7 and change.edits[0].new_text == FIXED
    assert client.progress == [] and client.notices == []  # no progress support: none shown


async def test_an_edit_the_editor_refuses_is_told_to_the_user(tmp_path: Path) -> None:
    actions, client = service([FIXED], tmp_path, ClientCapabilities(), applies=False)
    with pytest.raises(ActionError, match="did not apply the edit: read-only"):
        await actions.execute("mmlsp.fix", [URI, {"line": 1, "character": 8}])
    assert client.edits[0].changes is not None  # unversioned for this client
    assert client.notices == [
        ("mmlsp.fix: the editor did not apply the edit: read-only", logging.WARNING)
    ]


async def test_explain_is_shown_as_a_document_or_a_message(tmp_path: Path) -> None:
    where = [URI, {"line": 0, "character": 5}]
    actions, client = service(["It averages."], tmp_path, ClientCapabilities(show_document=True))
    markdown = await actions.execute("mmlsp.explain", where)
    assert "It averages." in markdown and client.messages == []
    assert Path(client.documents[0].removeprefix("file://")).read_text() == markdown
    actions.files.cleanup()
    actions, client = service(["It averages."], tmp_path, ClientCapabilities())
    assert await actions.execute("mmlsp.explain", where) == client.messages[0]


async def test_work_shows_progress_and_the_users_cancel_reaches_it() -> None:
    client = FakeClient(ClientCapabilities(work_done_progress=True))
    work = await ProgressService(client).start("mmlsp: fixing", "mean")
    token = work.token
    assert token is not None and client.progress[0] == (token, "create")
    begin = client.progress[1][1]
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.cancellable
    work.on_text("def mean(")
    work.end("done")
    assert [type(value) for _, value in client.progress[2:]] == [
        types.WorkDoneProgressReport,
        types.WorkDoneProgressEnd,
    ]
    client.cancels[token]()
    assert work.cancel.is_set()
    # A client without work-done progress gets none; the work can still be cancelled.
    quiet = await ProgressService(FakeClient(ClientCapabilities())).start("mmlsp: fixing")
    assert quiet.token is None and not quiet.cancel.is_set()


async def test_an_unknown_command_is_an_error_not_a_docstring(tmp_path: Path) -> None:
    actions, client = service([FIXED], tmp_path, ClientCapabilities())
    with pytest.raises(ActionError, match="unknown command 'mmlsp.nope'"):
        await actions.execute("mmlsp.nope", [URI, {"line": 0, "character": 5}])
    assert client.edits == []


async def test_an_explanation_cut_short_before_its_first_sentence_is_refused(
    tmp_path: Path,
) -> None:
    from mmlsp.engine import GenerationResult

    class Truncating(ScriptedEngine):
        """A fake that always stops at its token limit."""

        def generate(self, request):  # type: ignore[no-untyped-def]
            result = super().generate(request)
            return GenerationResult(result.text, "length", 1, 1, 0.0)

    session = Session(1_000_000)
    session.open(types.TextDocumentItem(URI, "python", 7, TEXT))
    client = FakeClient(ClientCapabilities())
    host = scripted_host(Truncating(["It divides the sum of the values by how"]), tmp_path)
    settings = Settings()
    actions = ActionService(session, lambda: settings, host, client)
    with pytest.raises(ActionError, match="no explanation before it was cut short"):
        await actions.explain(URI, types.Range(types.Position(0, 5), types.Position(0, 5)))
