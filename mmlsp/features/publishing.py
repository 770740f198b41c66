"""When diagnostics are published: syntax problems a short pause after the last edit
(at once on open), with the review's findings that still hold, in one publish.

A large document's problems are gathered on the syntax worker after its parse, and
published only if the text is still the one they were found in; a change since then
publishes its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.features.diagnostics import syntax_diagnostics
from mmlsp.session import Session
from mmlsp.syntax.store import INLINE_MAX_CHARS

log = logging.getLogger(__name__)

Diagnostics = list[types.Diagnostic]


class DiagnosticsPublisher:
    """Publishes each open document's diagnostics, debounced while the user types.

    ``findings(uri)``: the other diagnostics that go with the syntax ones (the AI
    review's); ``send(uri, diagnostics)``: ``textDocument/publishDiagnostics``.
    """

    def __init__(
        self,
        session: Session,
        settings: Callable[[], Settings],
        findings: Callable[[str], Diagnostics],
        send: Callable[[str, Diagnostics], None],
    ) -> None:
        self.session = session
        self.settings = settings
        self.findings = findings
        self.send = send
        self.pending: dict[str, asyncio.TimerHandle] = {}
        session.on_close(self.closed)

    def schedule(self, uri: str) -> None:
        """Publish ``uri``'s diagnostics once the user pauses (diagnosticsDebounceMs)."""
        if (handle := self.pending.pop(uri, None)) is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        delay = self.settings().diagnostics_debounce_ms / 1000
        self.pending[uri] = loop.call_later(delay, self.publish, uri)

    def publish(self, uri: str) -> None:
        """Publish ``uri``'s diagnostics now (a large file's: once its worker found them)."""
        self.pending.pop(uri, None)
        if (text := self.session.text(uri)) is None:
            return
        syntax = self.session.syntax
        if syntax.busy(uri) or len(text) > INLINE_MAX_CHARS:
            job = syntax.submit(uri, syntax_diagnostics)
            job.add_done_callback(lambda done: self._found(uri, text, done))
            return
        self._send(uri, syntax_diagnostics(syntax.fresh(uri, text)))

    def closed(self, uri: str) -> None:
        """Forget ``uri``'s pending publish and clear what the editor shows for it."""
        if (handle := self.pending.pop(uri, None)) is not None:
            handle.cancel()
        self.send(uri, [])

    def _found(self, uri: str, text: str, job: asyncio.Future[Any]) -> None:
        if self.session.text(uri) is not text or job.cancelled():
            return  # closed, or changed since: that change publishes its own
        if (error := job.exception()) is not None:
            log.error("syntax check of %s failed: %s", uri, error)
            return
        self._send(uri, job.result())

    def _send(self, uri: str, syntax: Diagnostics) -> None:
        self.send(uri, syntax + self.findings(uri))
