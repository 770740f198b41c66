"""The parsed document: one document's text and its tree-sitter tree, kept in step.

Every ``didChange`` goes through ``Tree.edit`` and then one incremental reparse, so
features read a tree that matches the text without parsing it themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import tree_sitter
from lsprotocol import types as lsp

# Parsers are looked up through their module at each parse, so replacing
# ``languages.get_parser`` or ``parse_source`` (tests spy on and count parses) reaches
# documents too.
from mmlsp.syntax import languages
from mmlsp.text.positions import (
    LineIndex,
    encode_utf8,
    offset_at,
    offset_to_byte,
    ts_point_after,
    ts_point_at,
    utf8_len,
)


class SyntaxDocument:
    """The text of one document and its syntax tree, edited in step."""

    def __init__(self, text: str, language: str) -> None:
        self.language = language
        self.text = text
        self._data = encode_utf8(text)
        self.tree: tree_sitter.Tree = languages.parse_source(language, self._data)
        self._index: LineIndex | None = None
        # CPython's verdicts by top-level statement text (see mmlsp.syntax.python_check).
        self.compiled: dict[str, SyntaxError | str | None] = {}

    @property
    def source(self) -> bytes:
        """The UTF-8 bytes the tree was parsed from (node byte offsets index this)."""
        return self._data

    @property
    def line_index(self) -> LineIndex:
        """Line table of the current text, built on first use after each change."""
        if self._index is None:
            self._index = LineIndex(self.text)
        return self._index

    def replace_text(self, text: str) -> None:
        """Full resync: parse ``text`` from scratch."""
        self.text = text
        self._data = encode_utf8(text)
        self.tree = languages.parse_source(self.language, self._data)
        self._index = None

    def edited(self, changes: Sequence[lsp.TextDocumentContentChangeEvent]) -> SyntaxDocument:
        """A new document with ``changes`` applied; this one (which readers may hold)
        is left as it is."""
        new = copy.copy(self)
        new.tree = self.tree.copy()
        new.apply_changes(changes)
        return new

    def apply_change(self, change: lsp.TextDocumentContentChangeEvent) -> None:
        """Apply one ``didChange`` content change and reparse incrementally."""
        self.apply_changes([change])

    def apply_changes(self, changes: Sequence[lsp.TextDocumentContentChangeEvent]) -> None:
        """Apply a ``didChange``'s content changes, then reparse once, incrementally.

        Each change edits the previous tree in place; the one parse at the end reuses
        it (tree-sitter takes any number of edits before a parse).
        """
        if not changes:
            return
        for change in changes:
            if not isinstance(change, lsp.TextDocumentContentChangePartial):
                self.text = change.text
                self._data = encode_utf8(change.text)
                self.tree = languages.parse_source(self.language, self._data)
                continue
            self._edit(change)
        self.tree = languages.parse_source(self.language, self._data, self.tree)
        self._index = None

    def _edit(self, change: lsp.TextDocumentContentChangePartial) -> None:
        """One ranged change to the text, the bytes and the tree, without a parse."""
        text = self.text
        rng = change.range
        start = offset_at(text, rng.start.line, rng.start.character)
        end = offset_at(text, rng.end.line, rng.end.character)
        if end < start:
            start, end = end, start
        new_text = text[:start] + change.text + text[end:]

        start_byte = offset_to_byte(text, start)
        old_end_byte = start_byte + utf8_len(text[start:end])
        new_end_byte = start_byte + utf8_len(change.text)
        start_point = ts_point_at(text, start)
        old_end_point = ts_point_after(start_point, text[start:end])
        new_end_point = ts_point_after(start_point, change.text)

        old_tree = self.tree
        old_tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=start_point,
            old_end_point=old_end_point,
            new_end_point=new_end_point,
        )
        self._data = self._data[:start_byte] + encode_utf8(change.text) + self._data[old_end_byte:]
        self.text = new_text

    def node_range(self, node: tree_sitter.Node) -> lsp.Range:
        """LSP range of a node of this document's tree."""
        return byte_range_to_lsp(self.line_index, node.start_byte, node.end_byte)


def byte_range_to_lsp(index: LineIndex, start_byte: int, end_byte: int) -> lsp.Range:
    """LSP range of a UTF-8 byte range of the text behind ``index``."""
    start = index.position_at_byte(start_byte)
    end = index.position_at_byte(end_byte)
    return lsp.Range(
        start=lsp.Position(line=start[0], character=start[1]),
        end=lsp.Position(line=end[0], character=end[1]),
    )
