"""What becomes of each suggestion, seen from the server: the events of the local
acceptance statistics, and the gate that hides the suggestions unlikely to be accepted.

Decisions (the README's "Acceptance statistics and gating" says them to users):

* **shown**: an inline completion is shown when the server answers with it (the
  gate let it through); a reply the client drops because the user typed on is then
  *overtaken* by the next edit. A next edit is shown when the client says so
  (``mmlsp/nextEditShown``) or when it is answered as an inline completion item.
* **accepted**: every inline item carries the command ``mmlsp.accepted`` with
  ``[{id, how}]``; clients run it on accept (Neovim 0.12 and VS Code do, for a whole
  accept), and the Neovim plugin and the VS Code extension send it for partial
  accepts with ``how`` ``"word"`` or ``"line"`` and ``chars``. An edit that makes
  the document contain the whole suggestion counts as an accept too (``how``
  ``"edit"``: a client that does not run commands). Next edits: ``mmlsp.acceptNextEdit``.
* **dismissed / overtaken**: settled by the next request or edit for the document:
  typing the suggestion's own text keeps it pending (the answer to the next request
  is its rest, under the same id); any other edit overtakes it; a request with the
  document unchanged (the cursor moved), closing the document or shutting down
  dismisses it. When the document had come to hold one or more whole words of it
  first, it counts as accepted in part instead (``how`` ``"typed"``): that is how a
  partial accept in a client that does not report it (VS Code's accept-word, whose
  provider hook is not in the stable API) reaches the statistics.

Nothing is recorded while ``acceptanceStats`` is off; ids are still handed out so
that the items look the same either way.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from mmlsp.acceptance.gate import (
    HISTORY_LIMIT,
    Confidence,
    Gate,
    confidence,
    position_features,
    shows,
)
from mmlsp.acceptance.store import ACCEPTED, SETTLED, Event, EventStore, Kind, Outcome
from mmlsp.config import Settings
from mmlsp.engine import GenerationResult
from mmlsp.features.completion import Suggestion
from mmlsp.session import DocumentSnapshot
from mmlsp.text.positions import offset_at

log = logging.getLogger(__name__)

ACCEPTED_COMMAND = "mmlsp.accepted"
DELETE_COMMAND = "mmlsp.deleteAcceptanceStats"
HOWS = ("whole", "word", "line")
# Items whose accept command may still come (a partial accept settles it early).
KEEP_ITEMS = 256


@dataclass
class _Item:
    """A suggestion answered for a document, until it settles (and a while after)."""

    id: int
    uri: str
    event: Event
    before: str = ""
    after: str = ""
    text: str = ""
    replace_chars: int = 0
    hidden: bool = False
    accepted_chars: int = 0
    settled: bool = False
    # The longest start of it the document came to hold (typed, or partly accepted in
    # a client that does not say so).
    typed: int = 0


class Acceptance:
    """The server's acceptance events and gate; the server hands it answers and edits."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._store: EventStore | None = None
        self._store_at: tuple[str, int] | None = None
        self._gate: Gate | None = None
        self._ids = itertools.count(1)
        self._items: OrderedDict[int, _Item] = OrderedDict()
        self._pending: dict[str, _Item] = {}  # the document's open completion
        self._next_edits: dict[str, _Item] = {}  # the document's shown next edit
        self._settled = 0
        self.counts: Counter[str] = Counter()

    # -- the store and the gate -------------------------------------------------------
    def store(self) -> EventStore | None:
        """The store for the current settings; None while ``acceptanceStats`` is off."""
        settings = self._settings()
        if not settings.acceptance_stats:
            return None
        where = (settings.cache_dir, settings.stats_retention_days)
        if self._store is None or self._store_at != where:
            if self._store is not None:
                self._store.close()
            self._store = EventStore.in_dir(settings.cache_dir, settings.stats_retention_days)
            self._store_at = where
        return self._store

    def gate(self) -> Gate:
        model = self._settings().model
        if self._gate is None or self._gate.model != model:
            self._gate = Gate(model)
            self._refit(force=True)
        return self._gate

    def _refit(self, force: bool = False) -> None:
        store, gate = self._safe(self.store), self._gate
        if store is None or gate is None:
            return
        try:
            if gate.refit(store.settled(HISTORY_LIMIT), self._settled, force) and gate.learned:
                log.info("suggestion gate fitted on %d of your events", gate.learned.trained_on)
        except Exception as exc:  # the gate must never cost a suggestion
            log.warning("could not fit the suggestion gate: %s", exc)

    def _safe(self, call: Callable[[], Any]) -> Any:
        """A store operation; a broken or locked file is logged, never raised."""
        try:
            return call()
        except Exception as exc:
            self.counts["store_errors"] += 1
            first = self.counts["store_errors"] == 1
            log.log(logging.WARNING if first else logging.DEBUG, "acceptance statistics: %s", exc)
            return None

    # -- inline completions -------------------------------------------------------------
    def command_for(
        self,
        asked: DocumentSnapshot,
        position: types.Position,
        suggestion: Suggestion,
        seconds: float,
    ) -> types.Command | None:
        """The accept command of the item answering ``suggestion`` at ``position`` of the
        document as it was asked; None when the gate hides the suggestion."""
        offset = offset_at(asked.text, position.line, position.character)
        ident = self.offer(
            asked.uri,
            asked.text,
            offset,
            suggestion.text,
            suggestion.result,
            language=asked.language,
            latency_ms=seconds * 1000,
            replace_chars=suggestion.replace_chars,
        )
        if ident is None:
            return None
        return types.Command(
            title="Accept suggestion", command=ACCEPTED_COMMAND, arguments=[{"id": ident}]
        )

    def offer(
        self,
        uri: str,
        text: str,
        offset: int,
        shown: str,
        result: GenerationResult | None,
        *,
        language: str,
        latency_ms: float,
        replace_chars: int = 0,
    ) -> int | None:
        """A completion about to be answered: its item id, or None when the gate hides it.

        The rest of a suggestion the user is typing keeps the suggestion's id (and its
        verdict); anything else settles the document's open suggestion first."""
        before, after = text[:offset], text[offset:]
        if (item := self._continued(uri, before, after, shown)) is not None:
            self.counts["typed_along"] += 1
            item.typed = max(item.typed, len(before) - len(item.before))
            return None if item.hidden else item.id
        self._settle_open(uri, text)
        conf = confidence(result, shown)
        position = position_features(text, offset)
        settings = self._settings()
        probability = self.gate().probability("completion", shown, conf, position)
        hidden = not shows(probability, settings.suggestion_threshold)
        item = self._new(
            uri,
            "completion",
            language,
            shown,
            conf,
            probability,
            latency_ms,
            position,
            "hidden" if hidden else "pending",
        )
        item.before, item.after, item.text = before, after, shown
        item.replace_chars, item.hidden = replace_chars, hidden
        self._pending[uri] = item
        self.counts["hidden" if hidden else "shown"] += 1
        return None if hidden else item.id

    def nothing(self, uri: str, text: str) -> None:
        """A request for the document was answered with nothing (superseded, empty): the
        open suggestion settles unless the user is typing it."""
        item = self._pending.get(uri)
        if item is not None and not _typing_along(item, text):
            self._settle_open(uri, text)

    def _continued(self, uri: str, before: str, after: str, shown: str) -> _Item | None:
        item = self._pending.get(uri)
        if item is None or item.settled and item.event.outcome not in ("partial", "hidden"):
            return None
        if after != item.after or not before.startswith(item.before):
            return None
        typed = before[len(item.before) :]
        return item if item.text == typed + shown else None

    def changed(self, uri: str, text: str) -> None:
        """An edit: the open suggestion is accepted (the document now holds it whole),
        still being typed, or overtaken."""
        item = self._pending.get(uri)
        if item is None or item.hidden:
            return
        accepted = item.before + item.text + item.after[item.replace_chars :]
        if text == accepted:
            if not item.settled or item.event.outcome == "partial":
                self._settle(item, "accepted", "edit", len(item.text))
            self._pending.pop(uri, None)
            return
        if item.settled:
            return
        if _typing_along(item, text):
            item.typed = max(item.typed, len(text) - len(item.before) - len(item.after))
            return
        self._settle(item, "overtaken")

    def _settle_open(self, uri: str, text: str) -> None:
        item = self._pending.pop(uri, None)
        if item is None or item.settled or item.hidden:
            return
        self._settle(item, "dismissed" if item.before + item.after == text else "overtaken")

    # -- next edits ------------------------------------------------------------------
    def next_edit_shown(
        self,
        uri: str,
        prediction: int,
        shown: str,
        result: GenerationResult | None,
        *,
        language: str,
        latency_ms: float,
        position: dict[str, float] | None = None,
    ) -> None:
        """The client shows the next edit ``prediction`` (counted once per prediction)."""
        current = self._next_edits.get(uri)
        if current is not None and current.event.features.get("prediction") == prediction:
            return
        self.next_edit_gone(uri, changed=True)
        conf = confidence(result, shown)
        features = {**(position or {}), "prediction": float(prediction)}
        item = self._new(
            uri, "next_edit", language, shown, conf, None, latency_ms, features, "pending"
        )
        self._next_edits[uri] = item
        self.counts["next_edit_shown"] += 1

    def next_edit_accepted(self, uri: str, prediction: int | None) -> None:
        item = self._next_edits.pop(uri, None)
        if item is None or item.settled:
            return
        if prediction is None or item.event.features.get("prediction") == prediction:
            self._settle(item, "accepted", "whole", item.event.length)

    def next_edit_gone(self, uri: str, changed: bool) -> None:
        """The document's shown next edit was replaced by another prediction, or its
        document closed."""
        item = self._next_edits.pop(uri, None)
        if item is not None and not item.settled:
            self._settle(item, "overtaken" if changed else "dismissed")

    # -- commands ------------------------------------------------------------------------
    def accepted(self, args: Any) -> None:
        """``mmlsp.accepted [{id, how?, chars?}]``: the client accepted item ``id``,
        whole (the default) or its next word or line."""
        arg = args[0] if isinstance(args, list | tuple) and args else args
        get = arg.get if isinstance(arg, dict) else lambda k: getattr(arg, k, None)
        ident, how, chars = get("id"), get("how") or "whole", get("chars")
        if not isinstance(ident, int) or isinstance(ident, bool) or how not in HOWS:
            raise JsonRpcInvalidParams(
                'expected [{"id": integer, "how": "whole" | "word" | "line", "chars": integer}]'
            )
        self.counts[f"accepted_{how}"] += 1
        item = self._items.get(ident)
        if item is None:
            return  # forgotten (long ago), or stats were deleted meanwhile
        if how == "whole":
            done = len(item.text) if item.text else item.event.length
            self._settle(item, "accepted", "whole", max(done, item.accepted_chars))
            if self._pending.get(item.uri) is item:
                del self._pending[item.uri]
            return
        count = chars if isinstance(chars, int) and not isinstance(chars, bool) else 0
        if item.event.outcome != "accepted":
            self._settle(item, "partial", how, item.accepted_chars + max(0, count))

    def delete(self) -> str:
        """``mmlsp.deleteAcceptanceStats``: delete the store's file; what happened."""
        settings = self._settings()
        store = self._store or EventStore.in_dir(settings.cache_dir)
        existed = self._safe(store.delete)
        self._store, self._store_at = None, None
        self._items.clear()
        self._pending.clear()
        self._next_edits.clear()
        if self._gate is not None:
            self._gate.learned = None
        self.counts["deleted"] += 1
        return f"deleted {store.path}" if existed else f"nothing to delete at {store.path}"

    # -- lifecycle -------------------------------------------------------------------------
    def closed(self, uri: str) -> None:
        item = self._pending.pop(uri, None)
        if item is not None and not item.settled and not item.hidden:
            self._settle(item, "dismissed")
        self.next_edit_gone(uri, changed=False)

    def shutdown(self) -> None:
        for uri in list(self._pending) + list(self._next_edits):
            self.closed(uri)
        if self._store is not None:
            self._store.close()

    def summary(self) -> dict[str, Any]:
        """For ``mmlsp/status``: this session's counts, the store and the gate."""
        settings = self._settings()
        store = self.store() if settings.acceptance_stats else None
        gate = self._gate
        shown = self.counts["shown"]
        accepted = sum(1 for i in self._items.values() if i.event.outcome in ACCEPTED)
        return {
            "enabled": settings.acceptance_stats,
            "path": str(store.path) if store is not None else None,
            "storedEvents": self._safe(store.count) if store is not None else 0,
            "threshold": settings.suggestion_threshold,
            "gate": gate.source if gate is not None else Gate(settings.model).source,
            "gateTrainedOn": gate.learned.trained_on if gate and gate.learned else 0,
            "session": {
                "shown": shown,
                "hidden": self.counts["hidden"],
                "acceptedRecent": accepted,
                **{k: v for k, v in self.counts.items() if k not in ("shown", "hidden")},
            },
        }

    # -- rows -------------------------------------------------------------------------------
    def _new(
        self,
        uri: str,
        kind: Kind,
        language: str,
        shown: str,
        conf: Confidence | None,
        probability: float | None,
        latency_ms: float,
        features: dict[str, float],
        outcome: Outcome,
    ) -> _Item:
        event = Event(
            kind=kind,
            language=language or "plaintext",
            model=self._settings().model,
            length=len(shown),
            lines=shown.count("\n") + 1,
            latency_ms=round(latency_ms, 1),
            mean_logprob=conf.mean if conf else None,
            min_logprob=conf.minimum if conf else None,
            probability=probability,
            features=features,
            outcome=outcome,
        )
        if (store := self.store()) is not None:
            self._safe(lambda: store.add(event))
        item = _Item(next(self._ids), uri, event, settled=outcome == "hidden")
        self._items[item.id] = item
        while len(self._items) > KEEP_ITEMS:
            self._items.popitem(last=False)
        return item

    def _settle(
        self, item: _Item, outcome: Outcome, how: str | None = None, chars: int = 0
    ) -> None:
        if outcome in ("dismissed", "overtaken") and _whole_words(item.text, item.typed):
            # The document came to hold its first words before the user moved on: a
            # partial accept the client did not report (VS Code's accept-word), or
            # the user typed them as suggested.
            outcome, how, chars = "partial", "typed", item.typed
        first = not item.settled
        if first or item.event.outcome != outcome:
            self.counts[outcome] += 1
        item.settled, item.accepted_chars = True, chars
        item.event.outcome, item.event.how = outcome, how
        item.event.accepted_chars, item.event.resolved_ts = chars, time.time()
        if (store := self.store()) is not None and item.event.id is not None:
            event_id = item.event.id
            self._safe(lambda: store.settle(event_id, outcome, how, chars))
        if first and outcome in SETTLED:
            self._settled += 1
            self._refit()


def _typing_along(item: _Item, text: str) -> bool:
    """Whether ``text`` is the item's document with a start of the suggestion typed."""
    if not text.startswith(item.before) or not text.endswith(item.after):
        return False
    typed = text[len(item.before) : len(text) - len(item.after)]
    return len(item.before) + len(item.after) <= len(text) and item.text.startswith(typed)


def _whole_words(text: str, typed: int) -> bool:
    """Whether ``text[:typed]`` is one or more whole words of ``text``."""
    if typed <= 0 or not any(c.isalnum() or c == "_" for c in text[:typed]):
        return False
    if typed >= len(text):
        return True

    def word(c: str) -> bool:
        return c.isalnum() or c == "_"

    return not (word(text[typed - 1]) and word(text[typed]))
