"""Applying LSP content changes to a document's text.

Exact LSP semantics (UTF-16 columns, only \\n, \\r\\n and \\r break lines, out-of-range
positions clamp, reversed ranges are swapped), where pygls would drop or misplace
text. The session (``mmlsp.session``) keeps each open document's text with these.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types

from mmlsp.text.positions import (
    BREAK,
    offset_at,
    split_lines,
    utf16_len,
    utf16_to_index,
)


def apply_change(text: str, change: types.TextDocumentContentChangeEvent) -> str:
    """``text`` after one ``didChange`` content change."""
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return change.text
    start = offset_at(text, change.range.start.line, change.range.start.character)
    end = offset_at(text, change.range.end.line, change.range.end.character)
    start, end = min(start, end), max(start, end)
    return text[:start] + change.text + text[end:]


def apply_changes(text: str, changes: Sequence[types.TextDocumentContentChangeEvent]) -> str:
    """``text`` after a ``didChange``'s content changes, in order."""
    if len(changes) > FEW_CHANGES:
        return _apply_on_lines(text, changes)
    for change in changes:
        text = apply_change(text, change)
    return text


# Past this many content changes in one didChange, they are applied to a list of
# lines: each change on the whole string scans and copies all of it, and a
# formatter's 2,000 changes to an 8 MB file took 45 s that way.
FEW_CHANGES = 4


def _locate(lines: list[str], position: types.Position) -> tuple[int, int]:
    """``(line, index in that line)`` of an LSP position, clamped as ``offset_at`` does."""
    line = max(position.line, 0)
    if line >= len(lines):
        return len(lines) - 1, len(lines[-1])
    content = lines[line]
    if (brk := BREAK.search(content)) is not None:
        content = content[: brk.start()]
    return line, utf16_to_index(content, position.character)


def _apply_on_lines(text: str, changes: Sequence[types.TextDocumentContentChangeEvent]) -> str:
    lines = split_lines(text)
    for change in changes:
        if not isinstance(change, types.TextDocumentContentChangePartial):
            lines = split_lines(change.text)
            continue
        start, end = sorted((_locate(lines, change.range.start), _locate(lines, change.range.end)))
        # Re-split one unchanged line either side too: an edit can join a \r and a
        # \n across a line boundary into one break.
        lo, hi = max(start[0] - 1, 0), min(end[0] + 1, len(lines) - 1)
        piece = (
            "".join(lines[lo : start[0]])
            + lines[start[0]][: start[1]]
            + change.text
            + lines[end[0]][end[1] :]
            + "".join(lines[end[0] + 1 : hi + 1])
        )
        replacement = split_lines(piece)
        if hi < len(lines) - 1:
            replacement.pop()  # the piece ends with a break: its empty tail is no line
        lines[lo : hi + 1] = replacement
    return "".join(lines)


def edit_end(
    text: str, changes: Sequence[types.TextDocumentContentChangeEvent]
) -> types.Position | None:
    """Where the last change's inserted text ends in ``text`` (the document after all
    of ``changes``): the cursor, typically. None for a whole-document replacement.

    Counted from the change alone, with no scan of ``text`` (which may be MiBs long):
    a hint for warming the prompt, checked against the text where it is used.
    """
    if not changes or not isinstance(change := changes[-1], types.TextDocumentContentChangePartial):
        return None
    start, end = change.range.start, change.range.end
    if (end.line, end.character) < (start.line, start.character):
        start = end  # reversed ranges are swapped, as apply_change does
    inserted = split_lines(change.text)
    if len(inserted) == 1:
        line, character = start.line, start.character + utf16_len(inserted[0])
    else:
        line, character = start.line + len(inserted) - 1, utf16_len(inserted[-1])
    return types.Position(line=line, character=character)
