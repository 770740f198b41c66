"""The session: everything the server keeps per open document, behind open/change/close.

It owns each document's text and version (changes applied with exact LSP rules, see
``documents``), its syntax tree (``syntax_store``), its place in the workspace index,
and the per-document state that features register with ``on_close`` (completion
jobs and typing pace, review runs, pending timers), so closing a document drops all
of it in one place. Features read a ``DocumentSnapshot``: one document at one version,
immutable, with its tree only when the tree is of that very text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from mmlsp.context.history import EditHistory, changed_span
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.syntax import SyntaxDocument
from mmlsp.syntax.store import SyntaxStore
from mmlsp.text.changes import apply_changes
from mmlsp.text.positions import offset_at


@dataclass(frozen=True)
class DocumentSnapshot:
    """One open document at one version."""

    uri: str
    version: int | None
    text: str
    language_id: str
    # The tree of exactly ``text``; None while a large file parses, for languages
    # without a grammar, and for files over maxFileBytes.
    syntax: SyntaxDocument | None

    @property
    def language(self) -> str:
        """The grammar's name when there is a tree, else the client's language id."""
        return self.syntax.language if self.syntax is not None else (self.language_id or "text")


@dataclass
class _Open:
    text: str
    version: int | None
    language_id: str


class Session:
    def __init__(self, max_bytes: int, index: WorkspaceIndex | None = None) -> None:
        self._open: dict[str, _Open] = {}
        self.syntax = SyntaxStore(max_bytes)
        self.index = index if index is not None else WorkspaceIndex()
        self._close_hooks: list[Callable[[str], None]] = []
        # The user's recent edits as diffs, for next-edit suggestions.
        self.history = EditHistory()

    # -- what features read -------------------------------------------------------------
    def text(self, uri: str) -> str | None:
        """The document's current text; None when the client has not opened it."""
        document = self._open.get(uri)
        return None if document is None else document.text

    def snapshot(self, uri: str) -> DocumentSnapshot | None:
        document = self._open.get(uri)
        if document is None:
            return None
        return DocumentSnapshot(
            uri,
            document.version,
            document.text,
            document.language_id,
            self.syntax.fresh(uri, document.text),
        )

    def uris(self) -> list[str]:
        return list(self._open)

    def summary(self, uri: str) -> dict[str, Any]:
        """A fingerprint of a document's text, and whether its syntax tree matches it."""
        document = self._open.get(uri)
        if document is None:
            return {"open": False}
        syntax = self.syntax.get(uri)
        return {
            "open": True,
            "version": document.version,
            "length": len(document.text),
            "sha256": hashlib.sha256(document.text.encode("utf-8", "surrogatepass")).hexdigest(),
            "syntaxInSync": None if syntax is None else syntax.text == document.text,
        }

    # -- the client's notifications -----------------------------------------------------
    def open(self, item: types.TextDocumentItem) -> DocumentSnapshot:
        uri = item.uri
        if uri in self._open:
            self.close(uri)  # a second didOpen starts the document afresh
        self._open[uri] = _Open(item.text, item.version, item.language_id or "")
        self.syntax.open(uri, item.language_id, item.text)
        self.index.opened(uri, item.text)
        snapshot = self.snapshot(uri)
        assert snapshot is not None
        return snapshot

    def change(self, params: types.DidChangeTextDocumentParams) -> DocumentSnapshot | None:
        """Apply a didChange; None for a document that is not open."""
        uri = params.text_document.uri
        document = self._open.get(uri)
        if document is None:
            return None
        before = document.text
        document.text = apply_changes(before, params.content_changes)
        document.version = params.text_document.version
        _record(self.history, uri, before, document.text, params.content_changes)
        self.syntax.change(uri, params.content_changes, document.text)
        self.index.changed(uri, document.text, params.content_changes)
        return self.snapshot(uri)

    def saved(self, uri: str) -> None:
        if (text := self.text(uri)) is not None:
            self.index.saved(uri, text)

    def on_close(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(uri)`` when a document closes: drop what it keeps for it."""
        self._close_hooks.append(hook)

    def close(self, uri: str) -> bool:
        """Forget the document; False when it was not open."""
        known = self._open.pop(uri, None) is not None
        self.syntax.close(uri)
        self.index.closed(uri)
        self.history.forget(uri)
        for hook in self._close_hooks:
            hook(uri)
        return known


def _record(
    history: EditHistory,
    uri: str,
    before: str,
    after: str,
    changes: Sequence[types.TextDocumentContentChangeEvent],
) -> None:
    """Note a didChange in the edit history, locating the change without diffing the
    document: a keystroke is one ranged change whose offsets are exact (the same
    position lookup ``apply_change`` made); several changes, or a whole-document
    replacement, are located by a prefix and suffix scan that starts at the first
    changed line."""
    partial = [c for c in changes if isinstance(c, types.TextDocumentContentChangePartial)]
    if len(changes) == 1 and len(partial) == 1:
        change = partial[0]
        start, end = change.range.start, change.range.end
        if (end.line, end.character) < (start.line, start.character):
            start, end = end, start  # reversed ranges are swapped, as apply_change does
        lo = offset_at(before, start.line, start.character)
        hi = offset_at(before, end.line, end.character)
        # The client's line number: it only labels the diff's hunks (it counts a lone
        # \r as a break where the history does not, and a line past the end clamps).
        history.record(uri, before, after, (lo, hi, lo + len(change.text)), line=start.line)
        return
    hint = 0
    if partial and len(partial) == len(changes):
        # Lines above every change's start are untouched (one more for a CR that an
        # insertion could join to an LF).
        first = min(min(c.range.start.line, c.range.end.line) for c in partial)
        hint = offset_at(before, max(first - 1, 0), 0)
    history.record(uri, before, after, changed_span(before, after, hint))
