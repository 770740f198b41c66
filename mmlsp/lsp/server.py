"""The LSP handler table: each handler hands its request to a feature.

``MmlspServer`` builds the features and holds what ties requests together: the
settings, the engine host, the session (the open documents) and the editor; the
handlers in ``create_server`` only route. The wire is ``transport``, pygls'
protocol with exact text sync is ``protocol``, and the features reach the editor
through ``editor.EditorClient``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
import time
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer

from mmlsp import __version__
from mmlsp.config import Settings, merge
from mmlsp.context.workspace import workspace_roots
from mmlsp.engine import EngineError, EngineHost, GenerationFailed
from mmlsp.features.acceptance import ACCEPTED_COMMAND, DELETE_COMMAND, Acceptance
from mmlsp.features.actions import COMMANDS, KINDS, ActionService
from mmlsp.features.client import ClientCapabilities
from mmlsp.features.completion import (
    Completions,
    completion_items,
    inline_items,
    valid_position,
)
from mmlsp.features.hover import HoverService
from mmlsp.features.loading import ModelLoading
from mmlsp.features.next_edit import (
    ACCEPT_COMMAND,
    NEXT_EDIT_REQUEST,
    SHOWN_NOTIFICATION,
    NextEdits,
)
from mmlsp.features.progress import ProgressService
from mmlsp.features.publishing import DiagnosticsPublisher
from mmlsp.features.review import ReviewService
from mmlsp.lsp import transport
from mmlsp.lsp.editor import ClientLogHandler, EditorClient
from mmlsp.lsp.protocol import MmlspProtocol
from mmlsp.session import Session
from mmlsp.text.changes import edit_end
from mmlsp.text.positions import offset_at

log = logging.getLogger(__name__)

STATUS_REQUEST = "mmlsp/status"
# A client's hint that the user is looking at a document (focus, cursor at rest):
# params {textDocument: {uri}, position?}. The server warms that prompt's KV cache.
WARM_NOTIFICATION = "mmlsp/warm"
# After opening a document, and after the user stops editing one, how long to wait
# before warming its prompt in the background.
WARM_AFTER_OPEN_S = 0.3
WARM_AFTER_EDIT_S = 2.0
# How long a completion waits for a large file's tree still parsing on the worker
# (without it, the context parses the file again itself).
SYNTAX_WAIT_S = 1.0
DOCUMENT_STATE_REQUEST = "mmlsp/documentState"


class MmlspServer(LanguageServer):
    def __init__(self, settings: Settings, host: EngineHost | None = None) -> None:
        super().__init__("mmlsp", __version__, protocol_cls=MmlspProtocol)
        self.settings = settings
        self.host = host or EngineHost()
        # The open documents: text, syntax trees, their part of the workspace index.
        self.session = Session(settings.max_file_bytes)
        self.syntax = self.session.syntax
        self.workspace_index = self.session.index
        # Typed-ahead cache, in-flight generations, typing pace (features/completion.py).
        self.completions = Completions(self.host, self.syntax.get, self.workspace_index)
        self.pending_warm: dict[str, asyncio.TimerHandle] = {}
        self.init_errors: list[str] = []
        # Features see the session, the settings, the engine host and the editor,
        # not the server.
        self.editor = EditorClient(self)
        self.loading = ModelLoading(self.host, self.editor, self.editor.notify_once)
        # Not ``progress``: that is pygls' method for sending $/progress.
        self.work_progress = ProgressService(self.editor)
        self.actions = ActionService(
            self.session, self.current_settings, self.host, self.editor, self.work_progress
        )
        self.hover = HoverService(self.session, self.host)
        # What becomes of each suggestion (local statistics) and the gate that hides
        # those unlikely to be accepted.
        self.acceptance = Acceptance(self.current_settings)
        self.next_edits = NextEdits(self.session, self.current_settings, self.host, self.acceptance)
        self.diagnostics = DiagnosticsPublisher(
            self.session,
            self.current_settings,
            lambda uri: self.review.diagnostics(uri),
            self.editor.publish_diagnostics,
        )
        self.review = ReviewService(
            self.session, self.current_settings, self.host, self.diagnostics.publish
        )
        self.session.on_close(self.completions.closed)
        self.session.on_close(self.acceptance.closed)
        self.session.on_close(self.review.stop)
        self.session.on_close(self._forget_warm)

    def current_settings(self) -> Settings:
        return self.settings

    def _forget_warm(self, uri: str) -> None:
        if (handle := self.pending_warm.pop(uri, None)) is not None:
            handle.cancel()

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """pygls' stdio server, reading through ``transport``'s tolerant framing: a
        malformed header or a wrong length is skipped over instead of leaving the
        server deaf, and a request whose params do not fit gets -32602."""
        stop = self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or transport.private_stdout()))

        async def main() -> None:
            reader = transport.stream_reader(stdin or sys.stdin.buffer)
            await transport.serve(reader, self.protocol, stop)

        try:
            asyncio.run(main())
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    # -- settings and model -----------------------------------------------------
    def apply_settings(self, raw: Any) -> None:
        settings, errors = merge(self.settings, raw)
        for error in errors:
            self.editor.notify_user(f"setting {error}", logging.WARNING)
        self.settings = settings
        self.syntax.max_bytes = settings.max_file_bytes
        logging.getLogger("mmlsp").setLevel(settings.log_level.upper())
        self.loading.load(settings)

    # -- KV warming ----------------------------------------------------------------
    def warm(
        self, uri: str, position: types.Position | None = None, since: float = float("-inf")
    ) -> None:
        """Warm the document's prompt at ``position`` (None: its first window), unless
        a completion request came after ``since``."""
        self.pending_warm.pop(uri, None)
        if (text := self.session.text(uri)) is None:
            return
        offset = None
        if position is not None and valid_position(text, position):
            offset = offset_at(text, position.line, position.character)
        if self.completions.warm(uri, text, offset, self.settings, since):
            log.debug("warming %s at %s", uri, position or "its first window")

    def schedule_warm(self, uri: str, delay: float, position: types.Position | None) -> None:
        if (handle := self.pending_warm.pop(uri, None)) is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        since = time.monotonic()
        self.pending_warm[uri] = loop.call_later(delay, self.warm, uri, position, since)

    # -- completion ---------------------------------------------------------------
    async def suggestion_at(self, uri: str, position: types.Position):
        """The newest request for a document supersedes the one before it."""
        # A large file's tree may still be parsing on the worker; the context wants it.
        await self.syntax.settled(uri, SYNTAX_WAIT_S)
        text = self.session.text(uri)
        if text is None or not valid_position(text, position):
            log.debug("no completion: unknown document or stale position %s", position)
            return None
        try:
            return await self.completions.suggestion_at(uri, text, position, self.settings)
        except GenerationFailed as exc:
            self.editor.notify_once(str(exc))
            return None
        except EngineError as exc:
            log.debug("no completion: %s", exc)
            return None


def create_server(settings: Settings, host: EngineHost | None = None) -> MmlspServer:
    ls = MmlspServer(settings, host)
    logging.getLogger("mmlsp").addHandler(ClientLogHandler(ls, ls.editor))

    @ls.feature(types.INITIALIZE)
    def initialize(params: types.InitializeParams) -> None:
        ls.editor.loop = asyncio.get_running_loop()
        ls.editor.capabilities = ClientCapabilities.from_lsp(params.capabilities)
        settings, errors = merge(ls.settings, params.initialization_options)
        ls.settings = settings
        ls.syntax.max_bytes = settings.max_file_bytes
        ls.init_errors = errors
        ls.workspace_index.scan_in_background(workspace_roots(params))

    @ls.feature(types.INITIALIZED)
    def initialized(_params: types.InitializedParams) -> None:
        for error in ls.init_errors:
            ls.editor.notify_user(f"setting {error}", logging.WARNING)
        ls.loading.load(ls.settings)

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(params: types.DidChangeConfigurationParams) -> None:
        raw = params.settings
        if raw is None:  # pull-model clients send null and expect us to ask
            try:
                items = [types.ConfigurationItem(section="mmlsp")]
                result = await ls.workspace_configuration_async(
                    types.ConfigurationParams(items=items)
                )
                raw = result[0] if result else None
            except Exception as exc:  # the client may not support workspace/configuration
                log.debug("workspace/configuration failed: %s", exc)
                return
        ls.apply_settings(raw)

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        doc = ls.session.open(params.text_document)
        if len(doc.text) > ls.settings.max_file_bytes:
            ls.editor.notify_once(
                f"{doc.uri.rsplit('/', 1)[-1]} is larger than maxFileBytes "
                f"({ls.settings.max_file_bytes} bytes): no syntax checks or completions for it",
                logging.INFO,
            )
        ls.diagnostics.publish(doc.uri)
        ls.schedule_warm(doc.uri, WARM_AFTER_OPEN_S, None)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        if (doc := ls.session.change(params)) is None:
            return
        # Stops the generation in flight unless the edit typed what it produced.
        ls.completions.changed(doc.uri, doc.text, ls.settings)
        ls.next_edits.changed(doc.uri)
        ls.acceptance.changed(doc.uri, doc.text)
        ls.diagnostics.schedule(doc.uri)
        # When the user stops editing without asking for a suggestion (a paste, an
        # undo, a formatter), warm the prompt where the last edit ended.
        ls.schedule_warm(doc.uri, WARM_AFTER_EDIT_S, edit_end(doc.text, params.content_changes))

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        # Its features forget it, and its diagnostics are cleared (session hooks).
        ls.session.close(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(params: types.InlineCompletionParams):
        uri, position = params.text_document.uri, params.position
        asked = ls.session.snapshot(uri)
        started = time.monotonic()
        suggestion = await ls.suggestion_at(uri, position)
        command = None
        if asked is not None and ls.session.text(uri) == asked.text:
            if suggestion is None:
                ls.acceptance.nothing(uri, asked.text)
            else:  # None: the gate hides it
                seconds = time.monotonic() - started
                command = ls.acceptance.command_for(asked, position, suggestion, seconds)
                suggestion = suggestion if command is not None else None
        if suggestion is None and ls.settings.next_edit and asked is not None:
            # No completion here: a next edit that rewrites the rest of the line shows
            # as ghost text in clients without next-edit support. Not when an edit came
            # meanwhile: the completion was superseded, not empty.
            return await ls.next_edits.inline(uri, position, asked.version)
        return inline_items(suggestion, position, command)

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[]))
    async def completion(params: types.CompletionParams):
        suggestion = await ls.suggestion_at(params.text_document.uri, params.position)
        return completion_items(suggestion, params.position)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        ls.review.on_save(params.text_document.uri)
        ls.session.saved(params.text_document.uri)

    @ls.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=list(KINDS), resolve_provider=True),
    )
    def code_action(params: types.CodeActionParams) -> list[types.CodeAction]:
        return ls.actions.code_actions(params)

    @ls.feature(types.CODE_ACTION_RESOLVE)
    async def code_action_resolve(action: types.CodeAction) -> types.CodeAction:
        return await ls.actions.resolve(action)

    def command(name: str) -> Any:
        async def run(*args):  # unannotated: pygls passes the raw JSON arguments
            return await ls.actions.execute(name, args)

        return run

    for name in COMMANDS:
        ls.command(name)(command(name))

    @ls.feature(NEXT_EDIT_REQUEST)
    async def next_edit(params: Any = None) -> dict[str, Any]:
        return await ls.next_edits.request(params)

    @ls.feature(SHOWN_NOTIFICATION)
    def next_edit_shown(params: Any = None) -> None:
        ls.next_edits.shown(params)

    @ls.command(ACCEPT_COMMAND)
    def accept_next_edit(*args):  # unannotated: pygls passes the raw JSON arguments
        ls.next_edits.accepted(list(args))

    @ls.command(ACCEPTED_COMMAND)
    def suggestion_accepted(*args):  # unannotated: pygls passes the raw JSON arguments
        ls.acceptance.accepted(list(args))

    @ls.command(DELETE_COMMAND)
    def delete_acceptance_stats(*_args) -> str:
        said = ls.acceptance.delete()
        ls.editor.notify_user(f"acceptance statistics: {said}", logging.INFO)
        return said

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(params: types.HoverParams) -> types.Hover | None:
        return await ls.hover.hover(params)

    @ls.feature(WARM_NOTIFICATION)
    def warm(params: Any) -> None:
        document = getattr(params, "textDocument", None) or getattr(params, "text_document", None)
        uri = getattr(document, "uri", None)
        if not isinstance(uri, str):
            return
        raw = getattr(params, "position", None)
        line, character = getattr(raw, "line", None), getattr(raw, "character", None)
        position = (
            types.Position(line=line, character=character)
            if isinstance(line, int) and isinstance(character, int)
            else None
        )
        ls.completions.counts["warm_requests"] += 1  # the client's hints, taken or not
        ls.schedule_warm(uri, 0.0, position)

    @ls.feature(STATUS_REQUEST)
    def status(_params: Any = None) -> dict[str, Any]:
        return {
            **dataclasses.asdict(ls.host.status),
            "chat": dataclasses.asdict(ls.host.chat_status),
            "vision": dataclasses.asdict(ls.host.vision_status),
            "version": __version__,
            "settings": ls.settings.to_dict(),
            "completion": ls.completions.stats(),
            "nextEdit": ls.next_edits.stats(),
            "acceptance": ls.acceptance.summary(),
            # Requests and notifications still being handled (bounded when nothing leaks).
            "handling": len(ls.protocol._request_futures),
        }

    @ls.feature(DOCUMENT_STATE_REQUEST)
    async def document_state(params: Any) -> dict[str, Any]:
        """What the server holds for a document, so a client can verify it is in sync."""
        uri = getattr(params, "uri", None)
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams('expected {"uri": string}')
        await ls.syntax.settled(uri)
        return ls.session.summary(uri)

    @ls.feature(types.SHUTDOWN)
    def shutdown(_params: Any = None) -> None:
        ls.review.stop_all()
        ls.acceptance.shutdown()
        ls.host.shutdown()
        ls.actions.files.cleanup()

    return ls
