"""AI review diagnostics: on save, ask the chat model for likely bugs in changed functions.

Each function (methods included; nested functions go with their parent) is keyed by a
hash of its text. On ``didSave`` the functions without a cached review are sent to the
model one at a time, in the background; the reply is parsed leniently from a strict
``LINE|SEVERITY|MESSAGE`` format and cached under that hash. The published diagnostics
are the union of the syntax diagnostics and the cached findings of every function whose
text is still the same, placed at its current position, so a finding moves with its
function and disappears as soon as that function is edited. Each finding is a Warning or
Information with source ``mmlsp-ai``; the Fix action is offered for it.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from lsprotocol import types

from mmlsp import chat
from mmlsp.config import Settings
from mmlsp.engine import EngineError, EngineHost
from mmlsp.session import Session
from mmlsp.syntax import SyntaxDocument
from mmlsp.syntax.outline import line_indent, node_hash, node_text, reviewable_functions
from mmlsp.text.positions import utf16_len

log = logging.getLogger(__name__)

SOURCE = "mmlsp-ai"
CODE = "ai-review"
REVIEW_MAX_TOKENS = 120
REVIEW_TIMEOUT_S = 60.0
MAX_FUNCTIONS_PER_SAVE = 20
MAX_FUNCTION_LINES = 200
_SEVERITY = {
    "warning": types.DiagnosticSeverity.Warning,
    "info": types.DiagnosticSeverity.Information,
}


def function_code(doc: SyntaxDocument, node: Any) -> str:
    """The function's text, dedented; its line 1 is the ``def`` line."""
    return textwrap.dedent(line_indent(doc.source, node.start_byte) + node_text(doc.source, node))


def review_key(doc: SyntaxDocument, node: Any) -> str:
    return node_hash(doc.source, node, salt=f"review:{doc.language}")


def findings_to_diagnostics(
    doc: SyntaxDocument, node: Any, findings: list[chat.Finding]
) -> list[types.Diagnostic]:
    """Diagnostics for one function's findings, at its current lines."""
    out = []
    for finding in findings:
        line = node.start_point.row + finding.line - 1
        text = doc.line_index.line_text(line)
        start = len(text) - len(text.lstrip())
        out.append(
            types.Diagnostic(
                range=types.Range(
                    start=types.Position(line=line, character=start),
                    end=types.Position(line=line, character=utf16_len(text)),
                ),
                message=finding.message,
                severity=_SEVERITY[finding.severity],
                source=SOURCE,
                code=CODE,
                # Tells the client the Fix action applies (it lists one per diagnostic).
                data={"fix": "mmlsp.fix"},
            )
        )
    return out


class ReviewService:
    """Runs reviews on save, caches findings by function hash, and lists the diagnostics."""

    def __init__(
        self,
        session: Session,
        settings: Callable[[], Settings],
        host: EngineHost,
        found: Callable[[str], None],
        cache_size: int = 2048,
    ) -> None:
        self.session = session
        self.settings = settings  # the current settings (they change at runtime)
        self.host = host
        # Called with a document's uri when a review found something in it, so that
        # its diagnostics are published again.
        self.found = found
        self.cache_size = cache_size
        self._findings: OrderedDict[str, list[chat.Finding]] = OrderedDict()
        self._running: dict[str, tuple[asyncio.Task[None], threading.Event]] = {}

    def enabled(self) -> bool:
        mode = self.settings().review_on_save
        return mode == "on" or (mode == "auto" and self.host.chat_is_fast())

    def _syntax(self, uri: str) -> SyntaxDocument | None:
        """The document's tree, if it is of the document's current text."""
        snapshot = self.session.snapshot(uri)
        return None if snapshot is None else snapshot.syntax

    def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        doc = self._syntax(uri)
        if doc is None or not self._findings:
            return []
        out: list[types.Diagnostic] = []
        for node in reviewable_functions(doc.tree):
            findings = self._findings.get(review_key(doc, node))
            if findings:
                out.extend(findings_to_diagnostics(doc, node, findings))
        return out

    def on_save(self, uri: str) -> asyncio.Task[None] | None:
        """Start reviewing the functions of ``uri`` that changed since their last review."""
        if not self.enabled():
            return None
        doc = self._syntax(uri)
        if doc is None:
            return None
        todo: list[tuple[str, str]] = []
        for node in reviewable_functions(doc.tree):
            if node.has_error or node.end_point.row - node.start_point.row >= MAX_FUNCTION_LINES:
                continue
            key = review_key(doc, node)
            if key not in self._findings and all(key != k for k, _ in todo):
                todo.append((key, function_code(doc, node)))
        self.stop(uri)
        if not todo:
            return None
        todo = todo[:MAX_FUNCTIONS_PER_SAVE]
        cancel = threading.Event()
        task = asyncio.ensure_future(self._review(uri, doc.language, todo, cancel))
        self._running[uri] = (task, cancel)
        task.add_done_callback(lambda _t: self._forget(uri, task))
        return task

    def _forget(self, uri: str, task: asyncio.Task[None]) -> None:
        if (running := self._running.get(uri)) is not None and running[0] is task:
            del self._running[uri]

    def stop_all(self) -> None:
        for uri in list(self._running):
            self.stop(uri)

    def stop(self, uri: str) -> None:
        """Stop the review in flight for ``uri`` (a newer save or a close supersedes it)."""
        if (running := self._running.pop(uri, None)) is not None:
            running[1].set()

    async def _review(
        self, uri: str, language: str, todo: list[tuple[str, str]], cancel: threading.Event
    ) -> None:
        for key, code in todo:
            if cancel.is_set():
                return
            try:
                reply = await chat.ask(
                    self.host,
                    chat.review_messages(language, code),
                    REVIEW_MAX_TOKENS,
                    REVIEW_TIMEOUT_S,
                    cancel,
                    background=True,
                )
            except EngineError as exc:
                log.debug("review of %s stopped: %s", uri, exc)
                return
            findings = chat.parse_review(reply, code.count("\n") + 1)
            log.debug("review of a function in %s: %d finding(s)", uri, len(findings))
            self._findings[key] = findings
            while len(self._findings) > self.cache_size:
                self._findings.popitem(last=False)
            if findings:
                self.found(uri)
