"""Next-edit suggestions over LSP: the ``mmlsp/nextEdit`` request, the notification
that one was shown, and the command that accepts one.

The protocol is the de facto one of Copilot's language server (``textDocument/
copilotInlineEdit``), under our own names, so a client written for that one needs only
the method names changed:

* request ``mmlsp/nextEdit``, params ``{textDocument: {uri, version}, position}``;
  result ``{edits: [{text, textDocument: {uri, version}, range, command}]}``, the
  edits of one prediction in document order (empty: nothing worth showing);
* notification ``mmlsp/nextEditShown``, params ``{id}`` (or Copilot's
  ``{item: {command}}``): the client showed the prediction;
* command ``mmlsp.acceptNextEdit`` (each edit's ``command``), arguments
  ``[{uri, id}]``: the client applied it. Its text then counts as accepted in the edit
  history, and the client asks again at once for the next one (chained suggestions).

Per document it keeps the request in flight (a newer request cancels it at the model)
and the last prediction shown; when the user types what that prediction proposed, the
next request answers with the rest of it without a model call.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from mmlsp.config import Settings
from mmlsp.engine import EngineHost
from mmlsp.next_edit import Inputs, predict
from mmlsp.postprocess.next_edit import TextEdit, follow
from mmlsp.prompt.next_edit import choose_format
from mmlsp.session import DocumentSnapshot, Session
from mmlsp.syntax import languages
from mmlsp.text.positions import offset_at, position_at

log = logging.getLogger(__name__)

NEXT_EDIT_REQUEST = "mmlsp/nextEdit"
SHOWN_NOTIFICATION = "mmlsp/nextEditShown"
ACCEPT_COMMAND = "mmlsp.acceptNextEdit"


@dataclass(frozen=True)
class _Shown:
    """A prediction answered for a document: the text it was made for, and the text it
    leads to."""

    id: int
    source: str
    target: str
    edits: tuple[TextEdit, ...]


class NextEdits:
    def __init__(
        self, session: Session, settings: Callable[[], Settings], host: EngineHost
    ) -> None:
        self._session = session
        self._settings = settings
        self._host = host
        self._in_flight: dict[str, threading.Event] = {}
        self._last: dict[str, _Shown] = {}
        self._ids = itertools.count(1)
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        session.on_close(self.closed)

    # -- what the status shows ------------------------------------------------------------
    def format(self) -> tuple[str, str]:
        """(format, why) the loaded model gets: ``nextEditFormat`` or detected."""
        setting = self._settings().next_edit_format
        engine = self._host.engine
        if engine is None:
            return (setting, "setting") if setting != "auto" else ("", "model not loaded")
        evidence = engine.template_evidence()
        name = evidence.model_name or engine.info.model
        return choose_format(setting, name, evidence.vocabulary)

    def stats(self) -> dict[str, Any]:
        fmt, why = self.format()
        return {
            "enabled": self._settings().next_edit,
            "format": fmt,
            "formatSource": why,
            **self.counts,
            "emptyReasons": dict(self.reasons),
        }

    # -- the request --------------------------------------------------------------------
    async def request(self, params: Any) -> dict[str, Any]:
        uri, version, position = _params(params)
        self.counts["requests"] += 1
        settings = self._settings()
        snapshot = self._session.snapshot(uri)
        if not settings.next_edit or snapshot is None:
            return self._empty("turned off" if not settings.next_edit else "document not open")
        if version is not None and snapshot.version is not None and version != snapshot.version:
            return self._empty("stale version")
        if position.line > snapshot.text.count("\n"):
            return self._empty("stale position")
        offset = offset_at(snapshot.text, position.line, position.character)
        if (kept := self._typed_toward(snapshot)) is not None:
            self.counts["kept_alive"] += 1
            return kept
        if (previous := self._in_flight.pop(uri, None)) is not None:
            previous.set()  # superseded: stop it at the model
        cancel = self._in_flight[uri] = threading.Event()
        fmt, _ = self.format()
        inputs = Inputs(
            uri=uri,
            path=self._session.index.relative_path(uri),
            history=self._session.history.recent(4000),
            workspace=self._session.index,
            syntax_doc=snapshot.syntax,
            language=snapshot.syntax.language
            if snapshot.syntax is not None
            else languages.language_for(snapshot.language_id, uri),
            cache_key=f"next-edit:{uri}",
            format=fmt or "generic",
            cancel=cancel,
        )
        try:
            prediction = await predict(snapshot.text, offset, settings, self._host, inputs)
        finally:
            cancel.set()
            if self._in_flight.get(uri) is cancel:
                del self._in_flight[uri]
        if not prediction.edits or prediction.target is None:
            return self._empty(prediction.reason or "nothing")
        shown = _Shown(next(self._ids), snapshot.text, prediction.target, tuple(prediction.edits))
        self._last[uri] = shown
        self.counts["predicted"] += 1
        return self._result(snapshot, shown)

    def _typed_toward(self, snapshot: DocumentSnapshot) -> dict[str, Any] | None:
        last = self._last.get(snapshot.uri)
        if last is None:
            return None
        if snapshot.text == last.source:
            return self._result(snapshot, last)  # asked again: the same answer
        left = follow(last.source, snapshot.text, last.edits)
        if left is None:
            return None
        shown = _Shown(last.id, snapshot.text, last.target, tuple(left))
        self._last[snapshot.uri] = shown
        return self._result(snapshot, shown)

    def _result(self, snapshot: DocumentSnapshot, shown: _Shown) -> dict[str, Any]:
        document = {"uri": snapshot.uri, "version": snapshot.version}
        command = {
            "title": "Accept next edit",
            "command": ACCEPT_COMMAND,
            "arguments": [{"uri": snapshot.uri, "id": shown.id}],
        }
        return {
            "edits": [
                {
                    "text": edit.text,
                    "textDocument": document,
                    "range": _range(snapshot.text, edit),
                    "command": command,
                }
                for edit in shown.edits
            ]
        }

    def _empty(self, reason: str) -> dict[str, Any]:
        self.reasons[reason] += 1
        return {"edits": []}

    # -- what the client reports ----------------------------------------------------------
    def shown(self, params: Any) -> None:
        self.counts["shown"] += 1

    def accepted(self, args: Any) -> None:
        """``mmlsp.acceptNextEdit``: the client applied the prediction ``id``."""
        arg = args[0] if isinstance(args, list | tuple) and args else args
        uri = _get(arg, "uri")
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams('expected [{"uri": string, "id": number}]')
        self.counts["accepted"] += 1
        last = self._last.get(uri)
        if last is not None and last.edits:
            inserted = max((e.text for e in last.edits), key=len)
            self._session.history.mark_accepted(uri, inserted)
            text = self._session.text(uri)
            if text == last.target:
                del self._last[uri]

    def changed(self, uri: str) -> None:
        """A new edit: a request in flight for the old text answers nothing useful."""
        if (cancel := self._in_flight.get(uri)) is not None:
            cancel.set()

    def closed(self, uri: str) -> None:
        self.changed(uri)
        self._last.pop(uri, None)


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else getattr(value, key, None)


def _params(params: Any) -> tuple[str, int | None, types.Position]:
    document = _get(params, "textDocument") or _get(params, "text_document")
    uri, version = _get(document, "uri"), _get(document, "version")
    raw = _get(params, "position")
    line, character = _get(raw, "line"), _get(raw, "character")
    ok = isinstance(uri, str) and all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 for n in (line, character)
    )
    if not ok or not (version is None or isinstance(version, int)):
        raise JsonRpcInvalidParams(
            'expected {"textDocument": {"uri": string, "version": integer}, '
            '"position": {"line": integer, "character": integer}}'
        )
    return uri, version, types.Position(line=line, character=character)


def _range(text: str, edit: TextEdit) -> dict[str, Any]:
    (sl, sc), (el, ec) = position_at(text, edit.start), position_at(text, edit.end)
    return {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}}
