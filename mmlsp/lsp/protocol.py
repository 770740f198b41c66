"""pygls' protocol as mmlsp runs it: the open documents' text goes to the Session only,
a cancelled command cancels its work, and no future is kept per notification."""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any

from lsprotocol import types
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import MsgId


class MmlspProtocol(LanguageServerProtocol):
    """pygls' protocol, with ``didChange`` applied by exact LSP rules (see text/changes.py),
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
