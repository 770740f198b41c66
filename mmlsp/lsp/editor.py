"""The editor as pygls reaches it: the features' ``Client`` port (messages, documents,
workspace edits, progress), and mmlsp's log forwarded to the editor's log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from mmlsp.features.client import ClientCapabilities

log = logging.getLogger(__name__)

_LOG_TYPES = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
    logging.DEBUG: types.MessageType.Log,
}


class EditorClient:
    """The features' ``Client`` port (features/client.py) over a pygls server."""

    def __init__(self, server: LanguageServer) -> None:
        self._server = server
        # Resolved from the client's capabilities at initialize.
        self.capabilities = ClientCapabilities()
        # Set at initialize: calls from other threads are handed to it.
        self.loop: asyncio.AbstractEventLoop | None = None
        self._shown: set[str] = set()

    def call_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` on the server's event loop, from any thread."""
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(fn, *args)

    def notify_user(self, message: str, level: int = logging.ERROR) -> None:
        """Show in the editor and log; safe to call from any thread."""
        log.log(level, message)
        params = types.ShowMessageParams(type=_LOG_TYPES[level], message=f"mmlsp: {message}")
        self.call_in_loop(self._server.window_show_message, params)

    def notify_once(self, message: str, level: int = logging.ERROR) -> None:
        """Like notify_user, but a message already shown is only logged (no popup storm)."""
        if message in self._shown:
            log.log(level, message)
            return
        self._shown.add(message)
        self.notify_user(message, level)

    def show_message(self, message: str, kind: types.MessageType) -> None:
        self._server.window_show_message(types.ShowMessageParams(type=kind, message=message))

    async def show_document(
        self, params: types.ShowDocumentParams
    ) -> types.ShowDocumentResult | None:
        return await self._server.window_show_document_async(params)

    async def apply_edit(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult | None:
        return await self._server.workspace_apply_edit_async(params)

    def publish_diagnostics(self, uri: str, diagnostics: list[types.Diagnostic]) -> None:
        self._server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )

    async def create_progress(self, token: str) -> None:
        await self._server.work_done_progress.create_async(token)

    def announce_progress(self, token: str, value: types.WorkDoneProgressBegin) -> None:
        # The create request is not awaited: the begin follows it on the wire.
        self._server.work_done_progress.create(token)
        self._server.work_done_progress.begin(token, value)

    def on_progress_cancel(self, token: str, cancelled: Callable[[], None]) -> None:
        # pygls cancels the token's future on window/workDoneProgress/cancel.
        if (future := self._server.work_done_progress.tokens.get(token)) is not None:
            future.add_done_callback(lambda f: cancelled() if f.cancelled() else None)

    def begin_progress(self, token: str, value: types.WorkDoneProgressBegin) -> None:
        self._server.work_done_progress.begin(token, value)

    def report_progress(self, token: str, value: types.WorkDoneProgressReport) -> None:
        self.call_in_loop(self._server.work_done_progress.report, token, value)

    def end_progress(self, token: str, value: types.WorkDoneProgressEnd) -> None:
        progress = self._server.work_done_progress
        self.call_in_loop(progress.end, token, value)
        progress.tokens.pop(token, None)  # pygls keeps every token otherwise


class ClientLogHandler(logging.Handler):
    """Forwards mmlsp's log records to the editor as ``window/logMessage``."""

    def __init__(self, server: LanguageServer, editor: EditorClient) -> None:
        super().__init__()
        self.server = server
        self.editor = editor

    def emit(self, record: logging.LogRecord) -> None:
        level = max((lvl for lvl in _LOG_TYPES if lvl <= record.levelno), default=logging.DEBUG)
        params = types.LogMessageParams(type=_LOG_TYPES[level], message=self.format(record))
        self.editor.call_in_loop(self.server.window_log_message, params)
