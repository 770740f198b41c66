"""The document as an action reads it: one snapshot's text, version and tree, with
conversions between LSP positions, string offsets and tree-sitter bytes."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from mmlsp.session import DocumentSnapshot
from mmlsp.text.positions import LineIndex, encode_utf8


@dataclass(frozen=True)
class Doc(DocumentSnapshot):
    """One document as an action sees it (a snapshot: text, version, syntax tree if
    any), with the conversions actions make on it."""

    @property
    def index(self) -> LineIndex:
        return self.syntax.line_index if self.syntax is not None else LineIndex(self.text)

    @property
    def source(self) -> bytes:
        return self.syntax.source if self.syntax is not None else encode_utf8(self.text)

    def offset(self, position: types.Position) -> int:
        return self.index.offset_at(position.line, position.character)

    def code_offset(self, position: types.Position) -> int:
        """Like ``offset``, but a position in a line's indentation moves to its code."""
        offset = self.offset(position)
        line = self.index.line_text(position.line)
        indent = len(line) - len(line.lstrip())
        if line.strip() and position.character <= indent:
            return self.index.offset_at(position.line, 0) + indent
        return offset

    def position(self, offset: int) -> types.Position:
        line, character = self.index.position_at(offset)
        return types.Position(line=line, character=character)

    def byte(self, offset: int) -> int:
        return self.index.offset_to_byte(offset)

    def from_byte(self, byte: int) -> int:
        return self.index.byte_to_offset(byte)

    def valid(self, rng: types.Range) -> bool:
        lines = self.index.line_count
        return all(0 <= p.line < lines and p.character >= 0 for p in (rng.start, rng.end))
