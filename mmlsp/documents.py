"""Open documents: applying LSP content changes, and their syntax trees.

The text lives in the pygls workspace, but changes are applied here with exact LSP
semantics (UTF-16 columns, only \\n, \\r\\n and \\r break lines, out-of-range
positions clamp, reversed ranges are swapped), where pygls would drop or misplace
text. ``SyntaxStore`` mirrors each change into a ``SyntaxDocument`` so the tree is
edited incrementally rather than reparsed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from mmlsp.positions import offset_at, position_at
from mmlsp.syntax import SyntaxDocument, language_for

log = logging.getLogger(__name__)


def apply_change(text: str, change: types.TextDocumentContentChangeEvent) -> str:
    """``text`` after one ``didChange`` content change."""
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return change.text
    start = offset_at(text, change.range.start.line, change.range.start.character)
    end = offset_at(text, change.range.end.line, change.range.end.character)
    start, end = min(start, end), max(start, end)
    return text[:start] + change.text + text[end:]


def apply_changes(text: str, changes: Sequence[types.TextDocumentContentChangeEvent]) -> str:
    for change in changes:
        text = apply_change(text, change)
    return text


def edit_end(
    text: str, changes: Sequence[types.TextDocumentContentChangeEvent]
) -> types.Position | None:
    """Where the last change's inserted text ends in ``text`` (the document after all
    of ``changes``): the cursor, typically. None for a whole-document replacement."""
    if not changes or not isinstance(change := changes[-1], types.TextDocumentContentChangePartial):
        return None
    start, end = change.range.start, change.range.end
    if (end.line, end.character) < (start.line, start.character):
        start = end  # reversed ranges are swapped, as apply_change does
    offset = offset_at(text, start.line, start.character) + len(change.text)
    line, character = position_at(text, min(offset, len(text)))
    return types.Position(line=line, character=character)


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The document if the client opened it; None for unknown or closed URIs.

    (``Workspace.get_text_document`` would instead invent one from disk.)
    """
    return workspace.text_documents.get(unquote(uri))


def document_summary(
    document: TextDocument | None, syntax: SyntaxDocument | None
) -> dict[str, Any]:
    """A fingerprint of a document's text, and whether its syntax tree matches it."""
    if document is None:
        return {"open": False}
    data = document.source.encode("utf-8", "surrogatepass")
    return {
        "open": True,
        "version": document.version,
        "length": len(document.source),
        "sha256": hashlib.sha256(data).hexdigest(),
        "syntaxInSync": None if syntax is None else syntax.text == document.source,
    }


# Past this many content changes in one didChange, the tree is parsed anew once.
MANY_CHANGES = 16


class SyntaxStore:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._docs: dict[str, SyntaxDocument] = {}
        self._languages: dict[str, str] = {}

    def get(self, uri: str) -> SyntaxDocument | None:
        return self._docs.get(uri)

    def _too_big(self, text: str) -> bool:
        return len(text) > self.max_bytes

    def open(self, uri: str, language_id: str | None, text: str) -> SyntaxDocument | None:
        self.close(uri)
        language = language_for(language_id, uri)
        if language is None:
            return None
        self._languages[uri] = language
        return self._reparse(uri, text)

    def _reparse(self, uri: str, text: str) -> SyntaxDocument | None:
        self._docs.pop(uri, None)
        if self._too_big(text):
            return None
        doc = self._docs[uri] = SyntaxDocument(text, self._languages[uri])
        return doc

    def change(
        self,
        uri: str,
        changes: Sequence[types.TextDocumentContentChangeEvent],
        workspace_text: str,
    ) -> SyntaxDocument | None:
        if uri not in self._languages:
            return None
        doc = self._docs.get(uri)
        if doc is None or self._too_big(workspace_text):
            # Skipped while too big; parse again once it is small enough.
            return self._reparse(uri, workspace_text)
        if len(changes) > MANY_CHANGES:
            # A formatter's or a multi-cursor edit's thousands of changes: one parse
            # of the text the protocol already built, not one incremental parse each
            # (2,000 changes on a 20k-line file froze the server 23 s).
            doc.replace_text(workspace_text)
            return doc
        doc.apply_changes(changes)
        if doc.text != workspace_text:
            log.warning("syntax mirror of %s diverged from the workspace; reparsing", uri)
            doc.replace_text(workspace_text)
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)
        self._languages.pop(uri, None)
