"""Conversions between LSP positions, string offsets and tree-sitter coordinates.

This module owns every translation between the three ways the server addresses
a place in a document:

* LSP positions: ``(line, character)`` where lines are split by exactly ``\\n``,
  ``\\r\\n`` or ``\\r`` and ``character`` counts UTF-16 code units;
* string offsets: code point indices into the Python ``str``;
* tree-sitter coordinates: UTF-8 byte offsets and ``(row, byte column)`` points,
  where tree-sitter counts rows by ``\\n`` only.

Text is encoded for tree-sitter with :func:`encode_utf8`, which turns a lone
surrogate (a client may split a pair across edits) into a one-byte ``?``. Every
code point therefore maps to a whole, fixed number of bytes, so offsets convert
both ways without ever raising.

The free functions scan only as far as they need; :class:`LineIndex` is for
many look-ups in one unchanged text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import islice

# LSP's three line breaks; \r\n first so it is one break, not two.
BREAK = re.compile(r"\r\n|\r|\n")
# Characters outside the BMP take two UTF-16 units.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def encode_utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text`` as tree-sitter sees them (lone surrogates become ``?``)."""
    return text.encode("utf-8", "replace")


def utf8_len(s: str) -> int:
    """Number of bytes :func:`encode_utf8` produces for ``s``."""
    if s.isascii():
        return len(s)
    return len(encode_utf8(s))


def utf16_len(s: str) -> int:
    """Number of UTF-16 code units in ``s`` (a lone surrogate counts as one)."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def utf16_to_index(line_text: str, character: int) -> int:
    """Code point index in ``line_text`` for a UTF-16 column.

    Clamps to ``[0, len(line_text)]``; a column inside a surrogate pair rounds
    down to the start of that character.
    """
    if character <= 0:
        return 0
    # Only astral characters (two units for one code point) shift the column, so
    # step over those alone: a per-character walk cost 0.5 s a keystroke on a
    # 500k-character line holding one emoji.
    extra = 0
    for match in _ASTRAL.finditer(line_text):
        unit = match.start() + extra  # the character's first UTF-16 unit
        if unit >= character:
            break
        if unit + 1 == character:
            return match.start()
        extra += 1
    return min(character - extra, len(line_text))


def index_to_utf16(line_text: str, index: int) -> int:
    """UTF-16 column of code point ``index`` in ``line_text`` (clamped to the line)."""
    return utf16_len(line_text[: max(0, index)])


def line_starts(text: str) -> list[int]:
    """Code point offsets where each LSP line of ``text`` starts."""
    return [0, *(m.end() for m in BREAK.finditer(text))]


# Characters str.splitlines breaks at that LSP does not.
_OTHER_BREAKS = re.compile("[\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def split_lines(text: str) -> list[str]:
    """LSP lines of ``text``, each with its break; the last one (maybe empty) without."""
    if not _OTHER_BREAKS.search(text):
        lines = text.splitlines(keepends=True)  # C speed, and the same three breaks
        if not lines or lines[-1][-1:] in ("\n", "\r"):
            lines.append("")
        return lines
    lines, pos = [], 0
    for match in BREAK.finditer(text):
        lines.append(text[pos : match.end()])
        pos = match.end()
    lines.append(text[pos:])
    return lines


def line_count(text: str) -> int:
    """Number of LSP lines in ``text`` (a trailing break starts one more, empty line)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n") + 1


# Chunk size for locating a line: str.count over chunks runs at C speed, and only
# the chunk holding the wanted break is walked break by break.
_CHUNK = 1 << 14


def _line_start(text: str, line: int) -> int | None:
    """Offset where ``line`` (>= 1) starts, or None past the last line."""
    need, pos, n = line, 0, len(text)
    while pos < n:
        end = min(pos + _CHUNK, n)
        if end < n and text[end - 1] == "\r" and text[end] == "\n":
            end += 1  # never split a CRLF between chunks
        breaks = (
            text.count("\n", pos, end) + text.count("\r", pos, end) - text.count("\r\n", pos, end)
        )
        if breaks >= need:
            return next(islice(BREAK.finditer(text, pos, end), need - 1, None)).end()
        need -= breaks
        pos = end
    return None


def _line_bounds(text: str, line: int) -> tuple[int, int] | None:
    """``(start, end)`` of ``line`` without its break, or None past the last line."""
    start = 0 if line <= 0 else _line_start(text, line)
    if start is None:
        return None
    nxt = BREAK.search(text, start)
    return start, (nxt.start() if nxt else len(text))


def line_text(text: str, line: int) -> str:
    """Text of ``line`` without its line break; ``""`` past the last line."""
    bounds = _line_bounds(text, line)
    return "" if bounds is None else text[bounds[0] : bounds[1]]


def offset_at(text: str, line: int, character: int) -> int:
    """Code point offset of an LSP position.

    A line past the end gives ``len(text)``; a character past the end of its
    line gives the end of that line, before the break. Negatives clamp to 0.
    """
    bounds = _line_bounds(text, line)
    if bounds is None:
        return len(text)
    start, end = bounds
    return start + utf16_to_index(text[start:end], character)


def _in_crlf(text: str, offset: int) -> bool:
    return 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n"


def position_at(text: str, offset: int) -> tuple[int, int]:
    """LSP ``(line, character)`` of a code point offset (clamped to the text).

    An offset between the ``\\r`` and ``\\n`` of a CRLF is the end of its line.
    """
    offset = min(max(offset, 0), len(text))
    if _in_crlf(text, offset):
        offset -= 1
    line = text.count("\n", 0, offset) + text.count("\r", 0, offset) - text.count("\r\n", 0, offset)
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    return line, utf16_len(text[start:offset])


def offset_to_byte(text: str, offset: int) -> int:
    """UTF-8 byte offset (as in :func:`encode_utf8`) of a code point offset."""
    return utf8_len(text[: max(0, offset)])


def byte_to_offset(text: str, byte: int) -> int:
    """Code point offset of a UTF-8 byte offset; a byte inside a character rounds down."""
    if byte <= 0:
        return 0
    if text.isascii():
        return min(byte, len(text))
    data = encode_utf8(text)
    if byte >= len(data):
        return len(text)
    # Step back over continuation bytes so the prefix decodes cleanly.
    while byte > 0 and data[byte] & 0xC0 == 0x80:
        byte -= 1
    return len(data[:byte].decode("utf-8"))


def ts_point_at(text: str, offset: int) -> tuple[int, int]:
    """Tree-sitter ``(row, byte column)`` of a code point offset; rows split on ``\\n`` only."""
    offset = min(max(offset, 0), len(text))
    row = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return row, utf8_len(text[start:offset])


def ts_point_after(start: tuple[int, int], inserted: str) -> tuple[int, int]:
    """Tree-sitter point reached by writing ``inserted`` at point ``start``."""
    newlines = inserted.count("\n")
    if newlines == 0:
        return start[0], start[1] + utf8_len(inserted)
    return start[0] + newlines, utf8_len(inserted[inserted.rfind("\n") + 1 :])


def position_at_byte(text: str, byte: int) -> tuple[int, int]:
    """LSP ``(line, character)`` of a UTF-8 byte offset."""
    return position_at(text, byte_to_offset(text, byte))


class LineIndex:
    """Line table of one immutable text, for many look-ups in O(log n + line length)."""

    __slots__ = ("text", "starts", "_byte_starts")

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = line_starts(text)
        self._byte_starts: list[int] | None = None

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def _end(self, line: int) -> int:
        """End of ``line`` before its break."""
        if line + 1 >= len(self.starts):
            return len(self.text)
        end = self.starts[line + 1]
        return end - 2 if self.text.startswith("\r\n", end - 2) else end - 1

    def line_text(self, line: int) -> str:
        if line < 0:
            line = 0
        if line >= len(self.starts):
            return ""
        return self.text[self.starts[line] : self._end(line)]

    def offset_at(self, line: int, character: int) -> int:
        if line < 0:
            line = 0
        if line >= len(self.starts):
            return len(self.text)
        start = self.starts[line]
        return start + utf16_to_index(self.text[start : self._end(line)], character)

    def _line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset) - 1

    def position_at(self, offset: int) -> tuple[int, int]:
        offset = min(max(offset, 0), len(self.text))
        if _in_crlf(self.text, offset):
            offset -= 1
        line = self._line_of(offset)
        return line, utf16_len(self.text[self.starts[line] : offset])

    def _bytes(self) -> list[int]:
        if self._byte_starts is None:
            text, starts = self.text, self.starts
            if text.isascii():
                self._byte_starts = starts
            else:
                acc, out = 0, [0]
                for a, b in zip(starts, starts[1:], strict=False):
                    acc += utf8_len(text[a:b])
                    out.append(acc)
                self._byte_starts = out
        return self._byte_starts

    def offset_to_byte(self, offset: int) -> int:
        offset = min(max(offset, 0), len(self.text))
        line = self._line_of(offset)
        return self._bytes()[line] + utf8_len(self.text[self.starts[line] : offset])

    def byte_to_offset(self, byte: int) -> int:
        byte_starts = self._bytes()
        if byte <= 0:
            return 0
        line = bisect_right(byte_starts, byte) - 1
        start = self.starts[line]
        end = self.starts[line + 1] if line + 1 < len(self.starts) else len(self.text)
        return start + byte_to_offset(self.text[start:end], byte - byte_starts[line])

    def position_at_byte(self, byte: int) -> tuple[int, int]:
        return self.position_at(self.byte_to_offset(byte))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub_surrogates(text: str) -> str:
    """Replace lone surrogates (JSON allows them, tokenizers reject them) with U+FFFD.

    One code point for one, so offsets and UTF-16 columns are unchanged.
    """
    return _LONE_SURROGATE.sub("\ufffd", text)
