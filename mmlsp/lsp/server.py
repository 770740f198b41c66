"""The LSP feature table: each handler hands its request to a feature module.

State kept here is only what ties requests together: settings, the engine host,
the syntax mirror of open documents, the in-flight completion per document, and the
pending diagnostics publish per document.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import MsgId

from mmlsp import __version__
from mmlsp.config import Settings, merge
from mmlsp.context.workspace import workspace_roots
from mmlsp.engine import EngineError, EngineHost, GenerationFailed, LoadSpec, Status
from mmlsp.features.actions import COMMANDS, KINDS, ActionService
from mmlsp.features.client import ClientCapabilities
from mmlsp.features.completion import (
    Completions,
    completion_items,
    inline_items,
    valid_position,
)
from mmlsp.features.diagnostics import syntax_diagnostics
from mmlsp.features.hover import HoverService
from mmlsp.features.progress import ProgressService
from mmlsp.features.review import ReviewService
from mmlsp.lsp import transport
from mmlsp.session import Session
from mmlsp.syntax.store import INLINE_MAX_CHARS
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
_LOG_TYPES = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
    logging.DEBUG: types.MessageType.Log,
}


class ClientLogHandler(logging.Handler):
    """Forwards mmlsp's log records to the editor as ``window/logMessage``."""

    def __init__(self, server: MmlspServer) -> None:
        super().__init__()
        self.server = server

    def emit(self, record: logging.LogRecord) -> None:
        level = max((lvl for lvl in _LOG_TYPES if lvl <= record.levelno), default=logging.DEBUG)
        params = types.LogMessageParams(type=_LOG_TYPES[level], message=self.format(record))
        self.server._call_in_loop(self.server.window_log_message, params)


class MmlspProtocol(LanguageServerProtocol):
    """pygls' protocol, with ``didChange`` applied by exact LSP rules (see documents.py),
    and without pygls 2.1's leak of one future per notification."""

    def _execute_handler(
        self,
        msg_id: MsgId,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        # pygls files a notification's future under a random id in _request_futures
        # (as it does a request's) but only a request's response removes it: every
        # didChange kept a Future, its lock and its id for the life of the server.
        if callback == self._check_handler_result:

            def finished(future: Any, msg_id: MsgId = msg_id) -> None:
                self._request_futures.pop(msg_id, None)
                self._check_handler_result(future)

            callback = finished
        super()._execute_handler(msg_id, handler, callback, args, kwargs)

    def _run_generator(
        self, future: Any, *, gen: Any, result_future: concurrent.futures.Future[Any]
    ) -> None:
        """pygls' generator step (``workspace/executeCommand`` runs the command this way),
        with two fixes: a cancelled request cancels the command it is running, so that
        ``$/cancelRequest`` stops the model rather than only the answer; and the inner
        handler's future leaves ``_request_futures`` when it is done instead of staying
        there for the life of the server."""
        if result_future.cancelled():
            return
        try:
            value = future.result() if future is not None else None
            handler, args, kwargs = gen.send(value)
        except StopIteration as stop:
            result_future.set_result(stop.value)
            return
        except Exception as exc:
            result_future.set_exception(exc)
            return
        inner_id = str(uuid.uuid4())

        def step(inner: Any) -> None:
            self._request_futures.pop(inner_id, None)
            self._run_generator(inner, gen=gen, result_future=result_future)

        self._execute_handler(inner_id, handler, step, args, kwargs)
        if (inner := self._request_futures.get(inner_id)) is not None:
            result_future.add_done_callback(lambda f: inner.cancel() if f.cancelled() else None)

    # The session (session.py) keeps the open documents' text, applying each change by
    # exact LSP rules where pygls would drop or misplace text; pygls' own copy is
    # not kept, so a large file is not held twice.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


class EditorClient:
    """The features' ``Client`` port (features/client.py) over this server's pygls calls."""

    def __init__(self, server: MmlspServer) -> None:
        self._server = server
        # Resolved from the client's capabilities at initialize.
        self.capabilities = ClientCapabilities()

    def notify_user(self, message: str, level: int = logging.ERROR) -> None:
        self._server.notify_user(message, level)

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

    async def create_progress(self, token: str) -> None:
        await self._server.work_done_progress.create_async(token)

    def on_progress_cancel(self, token: str, cancelled: Callable[[], None]) -> None:
        # pygls cancels the token's future on window/workDoneProgress/cancel.
        if (future := self._server.work_done_progress.tokens.get(token)) is not None:
            future.add_done_callback(lambda f: cancelled() if f.cancelled() else None)

    def begin_progress(self, token: str, value: types.WorkDoneProgressBegin) -> None:
        self._server.work_done_progress.begin(token, value)

    def report_progress(self, token: str, value: types.WorkDoneProgressReport) -> None:
        self._server._call_in_loop(self._server.work_done_progress.report, token, value)

    def end_progress(self, token: str, value: types.WorkDoneProgressEnd) -> None:
        progress = self._server.work_done_progress
        self._server._call_in_loop(progress.end, token, value)
        progress.tokens.pop(token, None)  # pygls keeps every token otherwise


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
        self.pending_diagnostics: dict[str, asyncio.TimerHandle] = {}
        self.pending_warm: dict[str, asyncio.TimerHandle] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.init_errors: list[str] = []
        self.shown_messages: set[str] = set()
        # Code actions, hover and review (features/actions, hover.py, review.py) see
        # the session, the settings, the engine host and the editor, not the server.
        self.editor = EditorClient(self)
        # Not ``progress``: that is pygls' method for sending $/progress.
        self.work_progress = ProgressService(self.editor)
        self.actions = ActionService(
            self.session, self.current_settings, self.host, self.editor, self.work_progress
        )
        self.hover = HoverService(self.session, self.host)
        self.review = ReviewService(
            self.session, self.current_settings, self.host, self.publish_syntax
        )
        self.session.on_close(self.completions.closed)
        self.session.on_close(self.review.stop)
        self.session.on_close(self._forget_timers)

    def current_settings(self) -> Settings:
        return self.settings

    def _forget_timers(self, uri: str) -> None:
        for pending in (self.pending_diagnostics, self.pending_warm):
            if (handle := pending.pop(uri, None)) is not None:
                handle.cancel()

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """pygls' stdio server, reading through ``transport``'s tolerant framing: a
        malformed header or a wrong length is skipped over instead of leaving the
        server deaf, and a request whose params do not fit gets -32602."""
        stop = self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

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

    # -- messages -------------------------------------------------------------
    def notify_user(self, message: str, level: int = logging.ERROR) -> None:
        """Show once in the editor and log; safe to call from any thread."""
        log.log(level, message)
        params = types.ShowMessageParams(type=_LOG_TYPES[level], message=f"mmlsp: {message}")
        self._call_in_loop(self.window_show_message, params)

    def notify_user_once(self, message: str, level: int = logging.ERROR) -> None:
        """Like notify_user, but a message already shown is only logged (no popup storm)."""
        if message in self.shown_messages:
            log.log(level, message)
            return
        self.shown_messages.add(message)
        self.notify_user(message, level)

    def _call_in_loop(self, fn: Any, *args: Any) -> None:
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(fn, *args)

    # -- settings and model -----------------------------------------------------
    def apply_settings(self, raw: Any) -> None:
        settings, errors = merge(self.settings, raw)
        for error in errors:
            self.notify_user(f"setting {error}", logging.WARNING)
        self.settings = settings
        self.syntax.max_bytes = settings.max_file_bytes
        logging.getLogger("mmlsp").setLevel(settings.log_level.upper())
        self.load_model()
        self.load_chat_model()

    def load_chat_model(self) -> None:
        """Load a separate chat model only when chatModel names another model."""
        s = self.settings
        other = s.chat_model if s.chat_model not in ("", s.model) else None
        spec = LoadSpec.from_settings(s, model=other, fim_template="none") if other else None

        def done(status: Status) -> None:
            if status.state == "failed":
                self.notify_user(f"chat model {status.model!r} failed to load: {status.message}")
            elif status.warning:
                self.notify_user_once(status.warning, logging.WARNING)

        self.host.load_chat(spec, lambda message, _pct: log.info("chat model: %s", message), done)

    def load_model(self) -> None:
        s = self.settings
        spec = LoadSpec.from_settings(s)
        # A remote backend's failures (server down, 401, 404...) are shown once each.
        self.host.on_backend_error = self.notify_user_once
        token = f"mmlsp-load-{uuid.uuid4()}"
        progress_ok = self.editor.capabilities.work_done_progress

        def progress(message: str, percentage: int | None) -> None:
            log.info("model: %s", message)
            if progress_ok:
                report = types.WorkDoneProgressReport(message=message, percentage=percentage)
                self._call_in_loop(self.work_done_progress.report, token, report)

        def done(status: Status) -> None:
            if progress_ok:
                end = types.WorkDoneProgressEnd(message=status.message)
                self._call_in_loop(self.work_done_progress.end, token, end)
            if status.state == "failed":
                self.notify_user(f"model {status.model!r} failed to load: {status.message}")
            else:
                log.info(
                    "model %s ready on %s (%s, %s backend, %s decode, template %s: %s) in %ss",
                    status.model,
                    status.device,
                    status.dtype,
                    status.backend,
                    status.decode,
                    status.template,
                    status.template_source,
                    status.load_seconds,
                )
                if status.warning:
                    self.notify_user_once(status.warning, logging.WARNING)

        if not self.host.load(spec, progress, done):
            return
        if progress_ok:
            begin = types.WorkDoneProgressBegin(
                title="mmlsp: loading model", message=s.model, percentage=0, cancellable=False
            )
            self.work_done_progress.create(token)
            self.work_done_progress.begin(token, begin)

    # -- diagnostics --------------------------------------------------------------
    def publish_syntax(self, uri: str) -> None:
        self.pending_diagnostics.pop(uri, None)
        if (text := self.session.text(uri)) is None:
            return
        if self.syntax.busy(uri) or len(text) > INLINE_MAX_CHARS:
            # A large file's problems are gathered on the syntax worker, after its parse.
            job = self.syntax.submit(uri, syntax_diagnostics)
            job.add_done_callback(lambda done: self._publish_found(uri, text, done))
            return
        self._publish(uri, syntax_diagnostics(self.syntax.fresh(uri, text)))

    def _publish_found(self, uri: str, text: str, job: asyncio.Future[Any]) -> None:
        if self.session.text(uri) is not text or job.cancelled():
            return  # closed, or changed since: that change publishes its own
        if (error := job.exception()) is not None:
            log.error("syntax check of %s failed: %s", uri, error)
            return
        self._publish(uri, job.result())

    def _publish(self, uri: str, syntax: list[types.Diagnostic]) -> None:
        # One publish carries both kinds: the AI review's findings still valid for this text.
        diagnostics = syntax + self.review.diagnostics(uri)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )

    def schedule_syntax(self, uri: str) -> None:
        if (handle := self.pending_diagnostics.pop(uri, None)) is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        delay = self.settings.diagnostics_debounce_ms / 1000
        self.pending_diagnostics[uri] = loop.call_later(delay, self.publish_syntax, uri)

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
            self.notify_user_once(str(exc))
            return None
        except EngineError as exc:
            log.debug("no completion: %s", exc)
            return None


def create_server(settings: Settings, host: EngineHost | None = None) -> MmlspServer:
    ls = MmlspServer(settings, host)
    logging.getLogger("mmlsp").addHandler(ClientLogHandler(ls))

    @ls.feature(types.INITIALIZE)
    def initialize(params: types.InitializeParams) -> None:
        ls.loop = asyncio.get_running_loop()
        ls.editor.capabilities = ClientCapabilities.from_lsp(params.capabilities)
        settings, errors = merge(ls.settings, params.initialization_options)
        ls.settings = settings
        ls.syntax.max_bytes = settings.max_file_bytes
        ls.init_errors = errors
        ls.workspace_index.scan_in_background(workspace_roots(params))

    @ls.feature(types.INITIALIZED)
    def initialized(_params: types.InitializedParams) -> None:
        for error in ls.init_errors:
            ls.notify_user(f"setting {error}", logging.WARNING)
        ls.load_model()
        ls.load_chat_model()

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
            ls.notify_user_once(
                f"{doc.uri.rsplit('/', 1)[-1]} is larger than maxFileBytes "
                f"({ls.settings.max_file_bytes} bytes): no syntax checks or completions for it",
                logging.INFO,
            )
        ls.publish_syntax(doc.uri)
        ls.schedule_warm(doc.uri, WARM_AFTER_OPEN_S, None)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        if (doc := ls.session.change(params)) is None:
            return
        # Stops the generation in flight unless the edit typed what it produced.
        ls.completions.changed(doc.uri, doc.text, ls.settings)
        ls.schedule_syntax(doc.uri)
        # When the user stops editing without asking for a suggestion (a paste, an
        # undo, a formatter), warm the prompt where the last edit ended.
        ls.schedule_warm(doc.uri, WARM_AFTER_EDIT_S, edit_end(doc.text, params.content_changes))

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.session.close(uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(params: types.InlineCompletionParams):
        suggestion = await ls.suggestion_at(params.text_document.uri, params.position)
        return inline_items(suggestion, params.position)

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
            "version": __version__,
            "settings": ls.settings.to_dict(),
            "completion": ls.completions.stats(),
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
        ls.host.shutdown()
        ls.actions.files.cleanup()

    return ls
