"""Syntax state of open documents, kept in step with the pygls workspace.

pygls owns the text (it applies every ``didChange``); this store mirrors each change
into a ``SyntaxDocument`` so the tree is edited incrementally rather than reparsed.
If the two texts ever disagree (clients send odd ranges), the workspace text wins and
the tree is rebuilt from it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lsprotocol import types

from mmlsp.syntax import SyntaxDocument, language_for

log = logging.getLogger(__name__)


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
        for change in changes:
            doc.apply_change(change)
        if doc.text != workspace_text:
            log.warning("syntax mirror of %s diverged from the workspace; reparsing", uri)
            doc.replace_text(workspace_text)
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)
        self._languages.pop(uri, None)
