"""Tests for mmlsp.text.positions: LSP UTF-16 positions, offsets and tree-sitter coordinates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from mmlsp.text import positions
from mmlsp.text.changes import FEW_CHANGES, apply_change, apply_changes
from mmlsp.text.positions import (
    LineIndex,
    byte_to_offset,
    encode_utf8,
    index_to_utf16,
    line_count,
    line_starts,
    line_text,
    offset_at,
    offset_to_byte,
    position_at,
    position_at_byte,
    ts_point_after,
    ts_point_at,
    utf8_len,
    utf16_len,
    utf16_to_index,
)

# --- reference implementations, deliberately naive -------------------------------


def ref_lines(text: str) -> list[tuple[int, int]]:
    """(start, end-before-break) of every LSP line, by walking characters."""
    lines, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\r" and text[i + 1 : i + 2] == "\n":
            lines.append((start, i))
            i += 2
            start = i
        elif text[i] in "\r\n":
            lines.append((start, i))
            i += 1
            start = i
        else:
            i += 1
    lines.append((start, len(text)))
    return lines


def ref_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def ref_utf16_to_index(line: str, character: int) -> int:
    units = 0
    for i, ch in enumerate(line):
        if units + ref_units(ch) > character:
            return i
        units += ref_units(ch)
    return len(line)


def ref_offset_at(text: str, line: int, character: int) -> int:
    lines = ref_lines(text)
    line = max(line, 0)
    if line >= len(lines):
        return len(text)
    start, end = lines[line]
    return start + ref_utf16_to_index(text[start:end], max(character, 0))


def ref_position_at(text: str, offset: int) -> tuple[int, int]:
    offset = min(max(offset, 0), len(text))
    for number, (start, end) in enumerate(ref_lines(text)):
        if start <= offset <= end:
            return number, sum(ref_units(c) for c in text[start:offset])
    # Only reachable for an offset inside a CRLF: it belongs to the line before.
    for number, (start, end) in enumerate(ref_lines(text)):
        if offset == end + 1:
            return number, sum(ref_units(c) for c in text[start:end])
    raise AssertionError("unreachable")


# --- strategies ---------------------------------------------------------------------

INTERESTING = ["a", "Z", " ", "é", "中", "😀", "𝄞", "\n", "\r", "\r\n", "\t", "\x0b", "\x0c"]
INTERESTING += ["\u2028", "\x85", "\x1c", "\ud83d", "\ude00"]

texts = st.one_of(
    st.lists(st.sampled_from(INTERESTING), max_size=40).map("".join),
    st.text(max_size=40),
)


# --- lengths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "units", "nbytes"),
    [
        ("", 0, 0),
        ("abc", 3, 3),
        ("é", 1, 2),
        ("中", 1, 3),
        ("😀", 2, 4),
        ("a😀é中", 5, 10),
        ("\ud83d", 1, 1),  # lone surrogate: one unit, one replacement byte
    ],
)
def test_lengths(s: str, units: int, nbytes: int) -> None:
    assert utf16_len(s) == units
    assert utf8_len(s) == nbytes
    assert len(encode_utf8(s)) == nbytes


def test_encode_utf8_never_raises_on_lone_surrogates() -> None:
    assert encode_utf8("a\ud83d\ude00b") == b"a??b"


# --- columns within a line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("character", "index"),
    [(-3, 0), (0, 0), (1, 1), (2, 1), (3, 2), (4, 3), (5, 4), (6, 4), (100, 4)],
)
def test_utf16_to_index_with_surrogate_pair(character: int, index: int) -> None:
    # 'a' | '😀' (2 units) | 'é' | '中'; column 2 lands inside the pair -> rounds down.
    assert utf16_to_index("a😀é中", character) == index


def test_utf16_to_index_bmp_only() -> None:
    assert utf16_to_index("é中x", 2) == 2
    assert utf16_to_index("é中x", 3) == 3
    assert utf16_to_index("é中x", 9) == 3
    assert utf16_to_index("", 5) == 0


@pytest.mark.parametrize(("index", "character"), [(-1, 0), (0, 0), (1, 1), (2, 3), (3, 4), (9, 5)])
def test_index_to_utf16(index: int, character: int) -> None:
    assert index_to_utf16("a😀é中", index) == character


@given(st.text(max_size=30), st.integers(-5, 80))
def test_utf16_to_index_matches_reference(line: str, character: int) -> None:
    assert utf16_to_index(line, character) == ref_utf16_to_index(line, max(character, 0))


@given(st.text(max_size=30), st.data())
def test_index_utf16_round_trip(line: str, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(line)))
    assert utf16_to_index(line, index_to_utf16(line, index)) == index


# --- lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        ("", [0]),
        ("abc", [0]),
        ("a\nb", [0, 2]),
        ("a\r\nb", [0, 3]),
        ("a\rb", [0, 2]),
        ("a\n", [0, 2]),
        ("\r\n\r\n", [0, 2, 4]),
        ("\n\r", [0, 1, 2]),  # LF then CR is two breaks, not one
        ("a\r\rb", [0, 2, 3]),
        ("x\x0by\x0cz\u2028w\x85v\x1cu", [0]),  # only \n, \r\n and \r break lines
    ],
)
def test_line_starts(text: str, starts: list[int]) -> None:
    assert line_starts(text) == starts
    assert line_count(text) == len(starts)
    assert LineIndex(text).starts == starts


def test_line_text() -> None:
    text = "one\r\ntwo\rthree\n"
    assert [line_text(text, n) for n in range(5)] == ["one", "two", "three", "", ""]
    assert line_text(text, -1) == "one"
    index = LineIndex(text)
    assert [index.line_text(n) for n in range(5)] == ["one", "two", "three", "", ""]


# --- offsets and positions ----------------------------------------------------------

SAMPLE = "é中😀x\r\nab\rc\n\n😀"


@pytest.mark.parametrize(
    ("line", "character", "offset"),
    [
        (0, 0, 0),
        (0, 1, 1),  # after é
        (0, 2, 2),  # after 中
        (0, 3, 2),  # inside 😀 -> start of 😀
        (0, 4, 3),  # after 😀
        (0, 5, 4),  # end of line, before \r\n
        (0, 99, 4),  # past end of line clamps before the break
        (1, 0, 6),
        (1, 2, 8),
        (1, 3, 8),
        (2, 0, 9),
        (2, 5, 10),  # before \n
        (3, 0, 11),
        (3, 4, 11),  # empty line
        (4, 0, 12),
        (4, 1, 12),
        (4, 2, 13),
        (5, 0, 13),  # past the last line
        (500, 7, 13),
        (-1, 0, 0),
        (1, -4, 6),
    ],
)
def test_offset_at(line: int, character: int, offset: int) -> None:
    assert offset_at(SAMPLE, line, character) == offset
    assert LineIndex(SAMPLE).offset_at(line, character) == offset


@pytest.mark.parametrize(
    ("offset", "position"),
    [
        (-5, (0, 0)),
        (0, (0, 0)),
        (2, (0, 2)),
        (3, (0, 4)),
        (4, (0, 5)),
        (5, (0, 5)),  # between \r and \n: still the end of line 0
        (6, (1, 0)),
        (8, (1, 2)),
        (9, (2, 0)),
        (11, (3, 0)),
        (12, (4, 0)),
        (13, (4, 2)),
        (99, (4, 2)),
    ],
)
def test_position_at(offset: int, position: tuple[int, int]) -> None:
    assert position_at(SAMPLE, offset) == position
    assert LineIndex(SAMPLE).position_at(offset) == position


def test_lone_cr_and_trailing_break() -> None:
    assert position_at("a\r", 2) == (1, 0)
    assert offset_at("a\r", 1, 0) == 2
    assert position_at("a\r\n", 3) == (1, 0)
    assert offset_at("a\r\n", 0, 5) == 1


@settings(max_examples=300)
@given(texts, st.integers(-2, 50), st.integers(-2, 50))
def test_offset_at_matches_reference(text: str, line: int, character: int) -> None:
    offset = offset_at(text, line, character)
    assert offset == ref_offset_at(text, line, character)
    assert LineIndex(text).offset_at(line, character) == offset
    # Positions snap onto real places, so converting back and forth is stable.
    assert offset_at(text, *position_at(text, offset)) == offset


@settings(max_examples=200)
@given(texts, st.integers(0, 45), st.integers(0, 6))
def test_line_lookup_across_chunk_boundaries(text: str, line: int, character: int) -> None:
    # Tiny chunks put chunk edges everywhere, including inside CRLFs.
    expected = ref_offset_at(text, line, character)
    saved = positions._CHUNK
    try:
        for chunk in (1, 2, 3, 5):
            positions._CHUNK = chunk
            assert offset_at(text, line, character) == expected
    finally:
        positions._CHUNK = saved


def test_line_lookup_in_large_text() -> None:
    text = "ab\r\n中😀\rz\n" * 20_000
    assert offset_at(text, 3 * 12_345, 1) == 9 * 12_345 + 1
    assert offset_at(text, 3 * 12_345 + 1, 3) == 9 * 12_345 + 6  # after 中😀
    assert offset_at(text, 3 * 12_345 + 2, 9) == 9 * 12_345 + 8
    assert offset_at(text, 60_000, 0) == len(text)
    assert offset_at(text, 60_001, 0) == len(text)
    assert line_text(text, 59_999) == "z"


@settings(max_examples=300)
@given(texts, st.data())
def test_position_round_trip(text: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(text)))
    position = position_at(text, offset)
    assert position == ref_position_at(text, offset)
    assert LineIndex(text).position_at(offset) == position
    inside_crlf = 0 < offset < len(text) and text[offset - 1 : offset + 1] == "\r\n"
    expected = offset - 1 if inside_crlf else offset
    assert offset_at(text, *position) == expected


# --- bytes and tree-sitter points ---------------------------------------------------


def test_offset_byte_conversions() -> None:
    text = "a é中😀\nz"
    assert [offset_to_byte(text, i) for i in range(len(text) + 1)] == [0, 1, 2, 4, 7, 11, 12, 13]
    assert byte_to_offset(text, 4) == 3
    assert byte_to_offset(text, 5) == 3  # inside 中 rounds down
    assert byte_to_offset(text, 10) == 4  # inside 😀 rounds down
    assert byte_to_offset(text, 99) == len(text)
    assert byte_to_offset(text, -1) == 0
    assert position_at_byte(text, 11) == (0, 6)
    assert position_at_byte(text, 12) == (1, 0)


def test_ts_points_count_rows_by_newline_only() -> None:
    text = "é\r中\r\n😀x"
    # Tree-sitter's row ignores the lone \r; columns are bytes since the last \n.
    assert ts_point_at(text, 2) == (0, 3)
    assert ts_point_at(text, 3) == (0, 6)
    assert ts_point_at(text, 5) == (1, 0)
    assert ts_point_at(text, 6) == (1, 4)
    assert ts_point_at(text, 100) == (1, 5)
    assert ts_point_after((3, 4), "é") == (3, 6)
    assert ts_point_after((3, 4), "ab\r\n中x") == (4, 4)


@settings(max_examples=300)
@given(texts, st.data())
def test_byte_properties(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    data_bytes = encode_utf8(text)
    byte = offset_to_byte(text, start)
    assert byte == len(encode_utf8(text[:start]))
    assert byte_to_offset(text, byte) == start
    index = LineIndex(text)
    assert index.offset_to_byte(start) == byte
    assert index.byte_to_offset(byte) == start
    assert index.position_at_byte(byte) == position_at_byte(text, byte) == position_at(text, start)
    prefix = data_bytes[:byte]
    expected_point = (prefix.count(b"\n"), len(prefix) - (prefix.rfind(b"\n") + 1))
    assert ts_point_at(text, start) == expected_point
    assert ts_point_after(ts_point_at(text, start), text[start:end]) == ts_point_at(text, end)


@given(texts, st.integers(-3, 200))
def test_byte_to_offset_agrees_with_line_index(text: str, byte: int) -> None:
    assert LineIndex(text).byte_to_offset(byte) == byte_to_offset(text, byte)


# -- many content changes at once ----------------------------------------------------
_TEXT = st.lists(st.sampled_from(["a", "b", " ", "\n", "\r", "\r\n", "é", "😀", "\ud800"])).map(
    "".join
)


@st.composite
def _partial_change(draw: st.DrawFn) -> types.TextDocumentContentChangePartial:
    def position() -> types.Position:
        return types.Position(line=draw(st.integers(0, 6)), character=draw(st.integers(0, 8)))

    return types.TextDocumentContentChangePartial(
        range=types.Range(start=position(), end=position()), text=draw(_TEXT)
    )


@settings(max_examples=400, deadline=None)
@given(text=_TEXT, changes=st.lists(_partial_change(), min_size=5, max_size=12))
def test_many_changes_on_lines_match_one_at_a_time(text, changes):
    """The line-list path for big didChanges builds exactly the text that applying each
    change to the whole string builds (CRLF joins, clamping, reversed ranges)."""
    expected = text
    for change in changes:
        expected = apply_change(expected, change)
    assert len(changes) > FEW_CHANGES
    assert apply_changes(text, changes) == expected
