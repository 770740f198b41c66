"""The syntax trees of the open documents, kept in step with their text.

A small document is parsed on the event loop as each change arrives (a keystroke's
incremental parse takes well under a millisecond). A large one, or one whose earlier
work is still running, is parsed on one worker thread instead, so ``mmlsp/status``,
cancellation and every other request stay answered while a multi-MiB file is parsed
(tree-sitter releases the GIL while it parses). Changes that arrive while the worker
is busy are applied together in one incremental parse: the latest text wins, and no
change is lost. Readers get the latest parsed tree (``get``), the tree only if it is
of a given text (``fresh``), or wait for pending work (``settled``).

Jobs run in the order they are submitted, so work submitted with ``submit`` (the
syntax diagnostics of a large document) sees the tree of every change before it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from lsprotocol import types

from mmlsp.syntax import SyntaxDocument, language_for

log = logging.getLogger(__name__)

T = TypeVar("T")

# Past this many characters a document is parsed on the worker (a full parse of
# 200 KB of Python takes about 50 ms here; of 3.6 MB, one second).
INLINE_MAX_CHARS = 200_000
# Past this many content changes in one didChange, the tree is parsed anew once
# rather than edited change by change.
MANY_CHANGES = 16


class SyntaxStore:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._docs: dict[str, SyntaxDocument] = {}
        self._languages: dict[str, str] = {}
        self._lock = threading.Lock()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, "mmlsp-syntax")
        # Per document: changes not yet parsed on the worker, and the text they lead to.
        self._pending: dict[str, list[types.TextDocumentContentChangeEvent]] = {}
        self._target: dict[str, str] = {}
        self._queued: set[str] = set()  # documents with a parse job not yet started
        self._in_flight: dict[str, int] = {}  # jobs submitted and not finished
        self._last_job: dict[str, concurrent.futures.Future[object]] = {}
        # Bumped on open and close, so a job for an earlier life of a URI is dropped.
        self._generation: dict[str, int] = {}

    # -- reading ------------------------------------------------------------------------
    def get(self, uri: str) -> SyntaxDocument | None:
        """The latest parsed tree; it lags the text while the worker parses."""
        return self._docs.get(uri)

    def fresh(self, uri: str, text: str) -> SyntaxDocument | None:
        """The tree if it is of exactly ``text``, else None."""
        doc = self._docs.get(uri)
        return doc if doc is not None and (doc.text is text or doc.text == text) else None

    def busy(self, uri: str) -> bool:
        return self._in_flight.get(uri, 0) > 0

    async def settled(self, uri: str, timeout: float | None = None) -> None:
        """Wait (at most ``timeout`` s) until the work submitted for ``uri`` is done."""
        job = self._last_job.get(uri)
        if job is None or job.done():
            self._last_job.pop(uri, None)
            return
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job)), timeout)
        except TimeoutError:
            log.debug("syntax of %s still parsing after %s s", uri, timeout)

    def submit(self, uri: str, fn: Callable[[SyntaxDocument | None], T]) -> asyncio.Future[T]:
        """Run ``fn`` on the worker with the document's tree once every change before
        it is parsed."""
        return asyncio.wrap_future(self._run(uri, lambda: fn(self._docs.get(uri))))

    # -- writing ------------------------------------------------------------------------
    def _too_big(self, text: str) -> bool:
        return len(text) > self.max_bytes

    def _offload(self, uri: str, text: str) -> bool:
        return self.busy(uri) or len(text) > INLINE_MAX_CHARS

    def open(self, uri: str, language_id: str | None, text: str) -> None:
        self.close(uri)
        language = language_for(language_id, uri)
        if language is None:
            return
        self._languages[uri] = language
        self._reparse(uri, text)

    def change(
        self,
        uri: str,
        changes: Sequence[types.TextDocumentContentChangeEvent],
        text: str,
    ) -> None:
        """Mirror one didChange; ``text`` is the document after it."""
        if uri not in self._languages:
            return
        if self._offload(uri, text):
            with self._lock:
                self._pending.setdefault(uri, []).extend(changes)
                self._target[uri] = text
                if uri in self._queued:
                    return  # the queued job takes these changes too
                self._queued.add(uri)
            self._run(uri, lambda: self._parse_pending(uri))
            return
        doc = self._docs.get(uri)
        if doc is None or self._too_big(text) or len(changes) > MANY_CHANGES:
            self._reparse(uri, text)
            return
        doc.apply_changes(changes)
        if doc.text != text:
            log.warning("syntax mirror of %s diverged from the workspace; reparsing", uri)
            doc.replace_text(text)

    def close(self, uri: str) -> None:
        with self._lock:
            self._docs.pop(uri, None)
            self._languages.pop(uri, None)
            self._pending.pop(uri, None)
            self._target.pop(uri, None)
            self._queued.discard(uri)
            self._generation[uri] = self._generation.get(uri, 0) + 1

    def _reparse(self, uri: str, text: str) -> None:
        """Parse ``text`` from scratch (on the worker when it is large)."""
        if self._offload(uri, text):
            with self._lock:
                self._pending[uri] = [types.TextDocumentContentChangeWholeDocument(text=text)]
                self._target[uri] = text
                if uri in self._queued:
                    return
                self._queued.add(uri)
            self._run(uri, lambda: self._parse_pending(uri))
            return
        self._docs.pop(uri, None)
        if not self._too_big(text):
            self._docs[uri] = SyntaxDocument(text, self._languages[uri])

    # -- the worker ---------------------------------------------------------------------
    def _run(self, uri: str, job: Callable[[], T]) -> concurrent.futures.Future[T]:
        with self._lock:
            self._in_flight[uri] = self._in_flight.get(uri, 0) + 1

        def run() -> T:
            try:
                return job()
            finally:
                with self._lock:
                    left = self._in_flight[uri] - 1
                    if left:
                        self._in_flight[uri] = left
                    else:
                        del self._in_flight[uri]

        future = self._worker.submit(run)
        self._last_job[uri] = future  # type: ignore[assignment]
        return future

    def _parse_pending(self, uri: str) -> None:
        with self._lock:
            self._queued.discard(uri)
            changes = self._pending.pop(uri, [])
            text = self._target.pop(uri, None)
            language = self._languages.get(uri)
            generation = self._generation.get(uri, 0)
            doc = self._docs.get(uri)
        if text is None or language is None:
            return
        new: SyntaxDocument | None = None
        try:
            if self._too_big(text):
                new = None
            elif doc is None or len(changes) > MANY_CHANGES or not _all_partial(changes):
                new = SyntaxDocument(text, language)
            else:
                new = doc.edited(changes)
                if new.text != text:
                    log.warning("syntax mirror of %s diverged from the workspace; reparsing", uri)
                    new = SyntaxDocument(text, language)
        except Exception:  # a parser failure must not stop the worker for other files
            log.exception("parsing %s failed", uri)
        with self._lock:
            if self._generation.get(uri, 0) != generation:
                return  # closed or reopened meanwhile
            if new is None:
                self._docs.pop(uri, None)
            else:
                self._docs[uri] = new


def _all_partial(changes: Sequence[types.TextDocumentContentChangeEvent]) -> bool:
    return all(isinstance(c, types.TextDocumentContentChangePartial) for c in changes)
