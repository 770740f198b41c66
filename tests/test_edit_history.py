"""The edit history for next-edit suggestions: coalescing, bounds, order, accepted
edits, and diffs that apply (unit tests on ``EditHistory``, and through ``Session``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from mmlsp.context.history import NO_NEWLINE, EditHistory, changed_span
from mmlsp.session import Session
from mmlsp.text.positions import position_at

A = "file:///w/a.py"
B = "file:///w/b.py"
BODY = "".join(f"line {i}\n" for i in range(40))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n$")


def apply_diff(text: str, diff: str) -> str:
    """Apply a hunks-only unified diff with 1-based document line numbers."""
    doc = lines(text)
    rows = diff.splitlines(keepends=True)
    shift, i = 0, 0
    while i < len(rows):
        m = HUNK.match(rows[i])
        assert m, rows[i]
        start, count = int(m[1]), 1 if m[2] is None else int(m[2])
        at = (start - 1 if count else start) + shift
        old: list[str] = []
        new: list[str] = []
        prev = " "
        i += 1
        while i < len(rows) and not rows[i].startswith("@@"):
            row = rows[i]
            if row == NO_NEWLINE:
                # The line before has no break: take it off what was just added.
                target = [old, new] if prev == " " else [old] if prev == "-" else [new]
                for side in target:
                    side[-1] = side[-1][:-1]
            else:
                prev = row[0]
                if prev in " -":
                    old.append(row[1:])
                if prev in " +":
                    new.append(row[1:])
            i += 1
        assert doc[at : at + len(old)] == old, (doc[at : at + len(old)], old)
        doc[at : at + len(old)] = new
        shift += len(new) - len(old)
    return "".join(doc)


def edit(text: str, start: int, end: int, insert: str) -> tuple[str, tuple[int, int, int]]:
    return text[:start] + insert + text[end:], (start, end, start + len(insert))


def type_into(history: EditHistory, clock: Clock, uri: str, text: str, at: int, word: str) -> str:
    """Type ``word`` one character a time at offset ``at``, 0.2 s apart."""
    for ch in word:
        new, span = edit(text, at, at, ch)
        history.record(uri, text, new, span)
        text, at = new, at + 1
        clock.now += 0.2
    return text


def test_typing_in_one_place_coalesces_into_one_diff() -> None:
    clock = Clock()
    history = EditHistory(clock=clock)
    at = BODY.index("line 10") + len("line 10")
    text = type_into(history, clock, A, BODY, at, " = compute(x)")
    [entry] = history.entries(A)
    assert "-line 10\n+line 10 = compute(x)\n" in entry.diff
    assert entry.diff.startswith("@@ -8,7 +8,7 @@\n")  # 3 lines of context either side
    assert apply_diff(BODY, entry.diff) == text
    assert entry.started == 100.0 and entry.time == pytest.approx(100.0 + 0.2 * 12)
    assert not entry.accepted
    # Typing on the next line, and a new line below, still one entry.
    nxt = text.index("line 11") + len("line 11")
    text = type_into(history, clock, A, text, nxt, "!")
    new, span = edit(text, nxt + 2, nxt + 2, "added\n")
    history.record(A, text, new, span)
    [entry] = history.entries(A)
    assert apply_diff(BODY, entry.diff) == new


def test_moving_elsewhere_or_pausing_starts_a_new_entry() -> None:
    clock = Clock()
    history = EditHistory(clock=clock)
    text = type_into(history, clock, A, BODY, BODY.index("line 5\n") + 6, "a")
    # Two lines of gap still coalesce; three do not.
    text = type_into(history, clock, A, text, text.index("line 8\n") + 6, "b")
    assert len(history.entries(A)) == 1
    text = type_into(history, clock, A, text, text.index("line 12\n") + 7, "c")
    assert len(history.entries(A)) == 2
    clock.now += 2.5  # a pause
    after_pause = type_into(history, clock, A, text, text.index("line 12c\n") + 8, "d")
    entries = history.entries(A)
    assert len(entries) == 3
    assert "-line 12c\n+line 12cd\n" in entries[0].diff
    assert "-line 12\n+line 12c\n" in entries[1].diff
    assert apply_diff(text, entries[0].diff) == after_pause


def test_edits_that_cancel_out_leave_no_entry() -> None:
    clock = Clock()
    history = EditHistory(clock=clock)
    text, span = edit(BODY, 3, 3, "x")
    history.record(A, BODY, text, span)
    back, span = edit(text, 3, 4, "")
    assert history.record(A, text, back, span) is None
    assert history.entries(A) == []


def test_bounds_drop_the_oldest() -> None:
    clock = Clock()
    history = EditHistory(max_per_document=3, clock=clock)
    text = BODY
    for n in range(5):
        text = type_into(history, clock, A, text, text.index(f"line {n * 6}\n") + 5, "X")
    entries = history.entries(A)
    assert len(entries) == 3
    assert ["line X24" in e.after for e in entries] == [True, False, False]
    assert "line X12" in entries[-1].after  # the two oldest are gone
    # The character budget: the oldest entries go first, across documents.
    small = EditHistory(max_chars=300, clock=clock)
    text = BODY
    for n in range(6):
        text = type_into(small, clock, B if n % 2 else A, text, text.index(f"line {n * 6}\n"), "Y")
    kept = small.recent(10_000)
    assert sum(len(e.diff) for e in kept) <= 300
    assert 0 < len(kept) < 6
    assert "Yline 30" in kept[0].after


def test_workspace_order_limit_and_exclusion() -> None:
    clock = Clock()
    history = EditHistory(clock=clock)
    type_into(history, clock, A, BODY, 0, "a")
    type_into(history, clock, B, BODY, 0, "b")
    clock.now += 5
    type_into(history, clock, A, "aline 0\n" + BODY[7:], 30, "c")
    order = [(e.uri, e.after.split("\n")[0]) for e in history.recent(10_000)]
    assert [u for u, _ in order] == [A, B, A]
    assert [e.uri for e in history.recent(10_000, exclude_uri=A)] == [B]
    first = len(history.recent(10_000)[0].diff)
    assert len(history.recent(first)) == 1
    assert history.recent(first - 1) == []


def test_accepted_edits_are_marked() -> None:
    clock = Clock()
    history = EditHistory(clock=clock)
    at = BODY.index("line 3\n") + 6
    text = type_into(history, clock, A, BODY, at, " = fo")
    accepted, span = edit(text, at + 5, at + 5, "o(x)")
    history.record(A, text, accepted, span)
    assert len(history.entries(A)) == 1  # typing and acceptance coalesced so far
    assert not history.mark_accepted(A, "something else")
    assert history.mark_accepted(A, "o(x)")
    newest, typed = history.entries(A)
    assert newest.accepted and not typed.accepted
    assert "-line 3 = fo\n+line 3 = foo(x)\n" in newest.diff
    assert apply_diff(BODY, typed.diff) == text
    assert apply_diff(text, newest.diff) == accepted
    # Typing after an acceptance starts a new entry; record(accepted=True) as well.
    more = type_into(history, clock, A, accepted, at + 9, " + 1")
    assert len(history.entries(A)) == 3
    final, span = edit(more, at, at, "!")
    assert (entry := history.record(A, more, final, span, accepted=True)) is not None
    assert entry.accepted and len(history.entries(A)) == 4


def test_forget_drops_a_document() -> None:
    clock = Clock()
    history = EditHistory(clock=clock)
    type_into(history, clock, A, BODY, 0, "a")
    type_into(history, clock, B, BODY, 0, "b")
    history.forget(A)
    assert [e.uri for e in history.recent(10_000)] == [B]


def test_changed_span_scans_from_the_hint() -> None:
    before = "x" * 10_000 + "abc" + "y" * 10_000
    after = "x" * 10_000 + "aXYc" + "y" * 10_000
    assert changed_span(before, after) == (10_001, 10_002, 10_003)
    assert changed_span(before, after, hint=9_000) == (10_001, 10_002, 10_003)
    assert changed_span("same", "same") == (4, 4, 4)
    assert changed_span("aaa", "aaaa") == (3, 3, 4)


def lsp_change(uri: str, version: int, text: str, start: int, end: int, insert: str):
    a, b = position_at(text, start), position_at(text, end)
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[
            types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(*a), types.Position(*b)), text=insert
            )
        ],
    )


def open_session(text: str) -> Session:
    session = Session(10_000_000)
    session.open(types.TextDocumentItem(uri=A, language_id="python", version=0, text=text))
    return session


def test_session_records_typing_as_one_diff_and_forgets_on_close() -> None:
    text = "def f(x):\n    return x\n\n\nprint(f(1))\n"
    session = open_session(text)
    old, version = text, 0
    at = text.index("return x") + len("return x")
    for ch in " + 1":
        version += 1
        session.change(lsp_change(A, version, text, at, at, ch))
        text, at = text[:at] + ch + text[at:], at + 1
    assert session.text(A) == text
    [entry] = session.history.entries(A)
    assert "-    return x\n+    return x + 1\n" in entry.diff
    assert apply_diff(old, entry.diff) == text
    # Several changes at once, and a whole-document replacement, are recorded too.
    session.change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=A, version=version + 1),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text + "z\n")],
        )
    )
    assert "+z\n" in session.history.entries(A)[0].diff
    session.close(A)
    assert session.history.recent(10_000) == []


EDITS = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.floats(0, 1),
        st.sampled_from(["", "a", "bc", "\n", "x\ny", "\r\n", "def g():\n    pass\n"]),
        st.sampled_from([0.1, 0.5, 3.0]),
        st.booleans(),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["", "a\nb\nc\n", BODY[:200], "one\r\ntwo\r\nthree"]), EDITS)
def test_every_entry_diff_takes_its_before_state_to_its_after_state(text, edits) -> None:
    """Through ``Session``: each entry's diff, applied to the document as it was
    before the entry's first change, gives the document right after its last one."""
    session = open_session(text)
    clock = Clock()
    session.history._clock = clock
    states = {clock.now: text}  # the document after the change made at each time
    before_at = {clock.now: text}  # and before it
    for version, (a, b, insert, pause, mark) in enumerate(edits, 1):
        start, end = sorted((int(a * len(text)), int(b * len(text))))
        if text[start - 1 : start + 1] == "\r\n":
            start -= 1  # LSP positions cannot name the inside of a CRLF
        if text[end - 1 : end + 1] == "\r\n":
            end -= 1
        clock.now += pause
        session.change(lsp_change(A, version, text, start, end, insert))
        before_at[clock.now] = text
        text = text[:start] + insert + text[end:]
        states[clock.now] = text
        assert session.text(A) == text
        if mark and insert.strip():
            session.history.mark_accepted(A, insert)
    for entry in session.history.entries(A):
        assert entry.after in states[entry.time]
        assert apply_diff(before_at[entry.started], entry.diff) == states[entry.time]
