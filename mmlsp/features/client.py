"""The editor as the features see it: what they may ask of it, and what it supports.

Features never hold the server. What they need from the editor goes through the
``Client`` port: show the user a message, open a document, apply a workspace edit,
and show work-done progress. What the editor supports is resolved once, at
``initialize``, into ``ClientCapabilities``, so a feature asks a yes/no question
instead of walking lsprotocol's optional structure. The LSP server implements the
port over pygls (``mmlsp.lsp.editor.EditorClient``); tests implement it with a fake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lsprotocol import types


def _field(value: Any, path: str) -> Any:
    """``value.a.b.c`` for ``path`` "a.b.c", None where a part is missing."""
    for part in path.split("."):
        value = getattr(value, part, None) if value is not None else None
    return value


@dataclass(frozen=True)
class ClientCapabilities:
    """What the editor said it supports, as the features ask it."""

    # window/workDoneProgress/create and $/progress.
    work_done_progress: bool = False
    # window/showDocument.
    show_document: bool = False
    # codeAction/resolve fills in ``edit`` (and the client keeps an action's ``data``).
    resolves_edits: bool = False
    # A WorkspaceEdit may carry versioned ``documentChanges``.
    versioned_edits: bool = False

    @classmethod
    def from_lsp(cls, capabilities: types.ClientCapabilities | None) -> ClientCapabilities:
        properties = _field(capabilities, "text_document.code_action.resolve_support.properties")
        return cls(
            work_done_progress=bool(_field(capabilities, "window.work_done_progress")),
            show_document=bool(_field(capabilities, "window.show_document.support")),
            resolves_edits=(
                bool(properties)
                and "edit" in properties
                and bool(_field(capabilities, "text_document.code_action.data_support"))
            ),
            versioned_edits=bool(_field(capabilities, "workspace.workspace_edit.document_changes")),
        )


class Client(Protocol):
    """What features ask the editor to do. Methods not marked otherwise are called on
    the server's event loop."""

    @property
    def capabilities(self) -> ClientCapabilities: ...

    def notify_user(self, message: str, level: int = logging.ERROR) -> None:
        """Log ``message`` and show it in the editor; safe to call from any thread."""

    def show_message(self, message: str, kind: types.MessageType) -> None:
        """``window/showMessage``."""

    async def show_document(
        self, params: types.ShowDocumentParams
    ) -> types.ShowDocumentResult | None:
        """``window/showDocument``; a client may answer null."""

    async def apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult | None:
        """``workspace/applyEdit``; a client may answer null."""

    async def create_progress(self, token: str) -> None:
        """``window/workDoneProgress/create``; raises when the client refuses."""

    def on_progress_cancel(self, token: str, cancelled: Callable[[], None]) -> None:
        """Call ``cancelled`` when the user cancels the progress ``token``."""

    def announce_progress(self, token: str, value: types.WorkDoneProgressBegin) -> None:
        """``window/workDoneProgress/create`` without waiting for the answer, then the
        first ``$/progress``: for work that starts whether or not the client agrees."""

    def begin_progress(self, token: str, value: types.WorkDoneProgressBegin) -> None:
        """The first ``$/progress`` of a created token."""

    def report_progress(self, token: str, value: types.WorkDoneProgressReport) -> None:
        """A ``$/progress`` report; safe to call from any thread."""

    def end_progress(self, token: str, value: types.WorkDoneProgressEnd) -> None:
        """The last ``$/progress`` of ``token``, which is then forgotten; safe to call
        from any thread."""
