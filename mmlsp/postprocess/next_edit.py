"""Next-edit answers: the rewritten region as minimal edits, and whether they are worth
showing.

``region_edits`` turns an old and a new region into the smallest edits that make one
the other: a line diff (``difflib``), each changed run of lines trimmed to the
characters that differ. ``worth_showing`` says why a set of edits is not shown (the
model kept the region, changed only whitespace, undid the user's last edit, or left
more syntax errors than there were), or None when it is. ``follow`` says what is left of a
prediction after the user typed part of it, so the rest can be shown again without a
model call. Pure functions over text and offsets.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from mmlsp.syntax.problems import error_count


@dataclass(frozen=True)
class TextEdit:
    """Replace code points ``[start, end)`` of a document with ``text``."""

    start: int
    end: int
    text: str


def apply(text: str, edits: Sequence[TextEdit]) -> str:
    """``text`` with ``edits`` (not overlapping) applied."""
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text


def region_edits(old: str, new: str, offset: int = 0) -> list[TextEdit]:
    """The minimal edits from ``old`` to ``new``, at document offset ``offset``."""
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    starts = [0]
    for line in old_lines:
        starts.append(starts[-1] + len(line))
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    edits: list[TextEdit] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        # A run of lines rewritten one for one is an edit per line (a renamed
        # parameter and its use are two edits); otherwise one edit for the run.
        pairs = (
            [(i, i + 1, j, j + 1) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
            if tag == "replace" and i2 - i1 == j2 - j1
            else [(i1, i2, j1, j2)]
        )
        for a1, a2, b1, b2 in pairs:
            before, after = "".join(old_lines[a1:a2]), "".join(new_lines[b1:b2])
            head, end, new_end = trimmed(before, after)
            if end > head or new_end > head:
                at = offset + starts[a1]
                edits.append(TextEdit(at + head, at + end, after[head:new_end]))
    return edits


def repeats_below(old: str, new: str, below: str, lines: int = 2) -> bool:
    """Whether the rewrite inserts ``lines`` or more non-blank lines that are, in order,
    the lines below the region: a model that ran past the region's end copies what
    follows it, and taken as an edit that duplicates code."""
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    after = below.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        added = [line for line in new_lines[j1:j2] if line.strip()] if tag != "equal" else []
        if len(added) >= lines and _contains(after, added[:lines]):
            return True
    return False


def _contains(lines: list[str], run: list[str]) -> bool:
    n = len(run)
    return any(lines[i : i + n] == run for i in range(len(lines) - n + 1))


def trimmed(old: str, new: str) -> tuple[int, int, int]:
    """(start, end in ``old``, end in ``new``) of the span where two texts differ."""
    head = len(os.path.commonprefix([old, new]))
    limit = min(len(old), len(new)) - head
    tail = len(os.path.commonprefix([old[head:][::-1], new[head:][::-1]]))
    tail = min(tail, limit)
    return head, len(old) - tail, len(new) - tail


def worth_showing(
    text: str,
    edits: Sequence[TextEdit],
    *,
    before_last_edit: str | None,
    language: str | None,
    excerpt: tuple[int, int] | None = None,
) -> str | None:
    """Why ``edits`` to ``text`` are not worth showing, or None when they are.

    ``before_last_edit``: the document as it was before the user's last edit (an edit
    that brings it back is an undo). ``excerpt``: the span whose syntax errors are
    counted before and after (the region with some lines around it; the same span in
    both, so an excerpt that does not parse alone cancels out).
    """
    if not edits:
        return "no change"
    after = apply(text, edits)
    if "".join(after.split()) == "".join(text.split()):
        return "whitespace only"
    if before_last_edit is not None and after == before_last_edit:
        return "undoes your last edit"
    if language is not None:
        lo, hi = excerpt if excerpt is not None else (0, len(text))
        grown = len(after) - len(text)
        if error_count(after[lo : hi + grown], language) > error_count(text[lo:hi], language):
            return "more syntax errors"
    return None


def follow(source: str, now: str, edits: Sequence[TextEdit]) -> list[TextEdit] | None:
    """What is left of ``edits`` (proposed for ``source``) after the user changed
    ``source`` into ``now``, when that change typed part of one of them and nothing
    else; None when it did not (or when nothing is left)."""
    start, old_end, now_end = trimmed(source, now)
    inserted = now[start:now_end]
    delta = len(inserted) - (old_end - start)
    for i, edit in enumerate(edits):
        if not edit.start <= start <= old_end <= edit.end:
            continue
        done = start - edit.start + len(inserted)
        if edit.text[:done] != source[edit.start : start] + inserted:
            return None
        rest = TextEdit(start + len(inserted), edit.end + delta, edit.text[done:])
        shifted = [TextEdit(e.start + delta, e.end + delta, e.text) for e in edits[i + 1 :]]
        left = [*edits[:i], *([rest] if rest.text or rest.end > rest.start else []), *shifted]
        return left or None
    return None
