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

import dataclasses
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
from mmlsp.engine import EngineError, EngineHost, GenerationResult
from mmlsp.features.acceptance import Acceptance
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
    # For the acceptance statistics: the generation, its seconds, the language.
    result: GenerationResult | None = None
    seconds: float = 0.0
    language: str = ""


class NextEdits:
    def __init__(
        self,
        session: Session,
        settings: Callable[[], Settings],
        host: EngineHost,
        acceptance: Acceptance | None = None,
    ) -> None:
        self._session = session
        self._acceptance = acceptance
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
        snapshot = self._snapshot(uri, version, position)
        if snapshot is None:
            return {"edits": []}
        shown = await self._prediction(snapshot, position)
        return {"edits": []} if shown is None else self._result(snapshot, shown)

    async def inline(
        self, uri: str, position: types.Position, version: int | None = None
    ) -> types.InlineCompletionList:
        """The standard inline completion view of a prediction: its edit on the cursor's
        line that extends or rewrites the line's rest, as an item with a replace range
        (clients with no next-edit support show it as ghost text). Nothing for edits
        elsewhere, which need ``mmlsp/nextEdit``."""
        self.counts["inline_requests"] += 1
        nothing = types.InlineCompletionList(items=[])
        if not self._session.history.entries(uri) and uri not in self._last:
            return nothing  # no edit here yet: nothing to follow up (and no model call)
        snapshot = self._snapshot(uri, version, position)
        if snapshot is None or (shown := await self._prediction(snapshot, position)) is None:
            return nothing
        text = snapshot.text
        cursor = offset_at(text, position.line, position.character)
        line_end = text.find("\n", cursor)
        line_end = len(text) if line_end < 0 else line_end
        at_cursor = [e for e in shown.edits if cursor <= e.start and e.end <= line_end]
        if not at_cursor or at_cursor[0] is not shown.edits[0]:
            return nothing  # an earlier edit first: the custom request shows that one
        edit = at_cursor[0]
        (sl, sc), (el, ec) = position_at(text, cursor), position_at(text, edit.end)
        self.counts["inline_shown"] += 1
        self._record_shown(uri, shown)
        return types.InlineCompletionList(
            items=[
                types.InlineCompletionItem(
                    insert_text=text[cursor : edit.start] + edit.text,
                    range=types.Range(types.Position(sl, sc), types.Position(el, ec)),
                    command=types.Command(
                        title="Accept next edit",
                        command=ACCEPT_COMMAND,
                        arguments=[{"uri": uri, "id": shown.id}],
                    ),
                )
            ]
        )

    def _snapshot(
        self, uri: str, version: int | None, position: types.Position
    ) -> DocumentSnapshot | None:
        """The document to predict for, or None (and why, counted) when there is none."""
        settings = self._settings()
        snapshot = self._session.snapshot(uri)
        why = (
            "turned off"
            if not settings.next_edit
            else "document not open"
            if snapshot is None
            else "stale version"
            if version is not None and snapshot.version is not None and version != snapshot.version
            else "stale position"
            if position.line > snapshot.text.count("\n")
            else None
        )
        if why is not None:
            self.reasons[why] += 1
            return None
        return snapshot

    async def _prediction(
        self, snapshot: DocumentSnapshot, position: types.Position
    ) -> _Shown | None:
        """The prediction for the snapshot: what is left of the last one when the user
        typed toward it, else a new one from the model (None: nothing worth showing)."""
        uri = snapshot.uri
        if (kept := self._typed_toward(snapshot)) is not None:
            self.counts["kept_alive"] += 1
            return kept
        offset = offset_at(snapshot.text, position.line, position.character)
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
            prediction = await predict(snapshot.text, offset, self._settings(), self._host, inputs)
        except EngineError as exc:
            # A failing backend is reported by the completions; a next edit that
            # cannot be had is simply not shown.
            log.debug("no next edit: %s", exc)
            self.reasons["engine error"] += 1
            return None
        finally:
            cancel.set()
            if self._in_flight.get(uri) is cancel:
                del self._in_flight[uri]
        if not prediction.edits or prediction.target is None:
            self.reasons[prediction.reason or "nothing"] += 1
            return None
        shown = _Shown(
            next(self._ids),
            snapshot.text,
            prediction.target,
            tuple(prediction.edits),
            prediction.result,
            prediction.seconds,
            snapshot.language,
        )
        self._last[uri] = shown
        self.counts["predicted"] += 1
        return shown

    def _typed_toward(self, snapshot: DocumentSnapshot) -> _Shown | None:
        last = self._last.get(snapshot.uri)
        if last is None:
            return None
        if snapshot.text == last.source:
            return last  # asked again: the same answer
        left = follow(last.source, snapshot.text, last.edits)
        if left is None:
            return None
        shown = dataclasses.replace(last, source=snapshot.text, edits=tuple(left))
        self._last[snapshot.uri] = shown
        return shown

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

    # -- what the client reports ----------------------------------------------------------
    def shown(self, params: Any) -> None:
        self.counts["shown"] += 1
        ident = _get(params, "id")
        if not isinstance(ident, int):  # Copilot's form: {item: {command: {arguments}}}
            command = _get(_get(params, "item"), "command")
            arguments = _get(command, "arguments")
            first = arguments[0] if isinstance(arguments, list) and arguments else None
            ident = _get(first, "id")
        for uri, last in self._last.items():
            if last.id == ident:
                self._record_shown(uri, last)

    def _record_shown(self, uri: str, shown: _Shown) -> None:
        if self._acceptance is None or not shown.edits:
            return
        text = max((e.text for e in shown.edits), key=len)
        self._acceptance.next_edit_shown(
            uri,
            shown.id,
            text,
            shown.result,
            language=shown.language,
            latency_ms=shown.seconds * 1000,
        )

    def accepted(self, args: Any) -> None:
        """``mmlsp.acceptNextEdit``: the client applied the prediction ``id``."""
        arg = args[0] if isinstance(args, list | tuple) and args else args
        uri = _get(arg, "uri")
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams('expected [{"uri": string, "id": number}]')
        self.counts["accepted"] += 1
        if self._acceptance is not None:
            ident = _get(arg, "id")
            self._acceptance.next_edit_accepted(uri, ident if isinstance(ident, int) else None)
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
