"""The edit history: the user's recent edits, per document and across the workspace.

Next-edit suggestions show the model what the user just changed (as Zeta, Copilot NES
and Continue do) as small unified diffs. This module owns that record and nothing
else: no LSP state, no I/O. The session feeds it every change, with the text before
and after and the changed span; it keeps, per document,

* **coalesced** entries: edits that follow each other in one place (their line spans
  touch or lie within ``coalesce_lines`` of each other, less than ``coalesce_seconds``
  apart) merge into one entry whose ``before`` is the region before the first edit
  and whose ``after`` is the region after the last, so a typed word is one diff, not
  one per keystroke;
* **bounded** entries: at most ``max_per_document`` per document and ``max_chars`` of
  diff text in all, the oldest dropped first;
* **accepted** flags for edits that came from accepting a suggestion.

Lines are split at ``\\n`` only (a ``\\r`` stays in its line), so diffs of CRLF files
keep their CRs. Time comes from an injected clock, so tests are deterministic.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Edit:
    """One entry: a region of a document before and after the edits it covers."""

    uri: str
    # 0-based line where ``before`` and ``after`` start (the same line in both: only
    # text below it changed). Line numbers are those at the time of the edit.
    line: int
    before: str
    after: str
    # Unified diff of before → after, with document line numbers in its hunk headers.
    diff: str
    # When the first and the last coalesced change happened (the injected clock).
    started: float
    time: float
    accepted: bool = False


@dataclass
class _Region:
    """Whole lines of one document: ``[start, end)`` offsets in the current text."""

    start: int
    end: int
    line: int
    # The region's text before the first edit it covers.
    before: str


@dataclass
class _Open:
    """The document's latest entry, while edits may still coalesce into it."""

    key: int
    core: _Region
    # The document's length after the entry's last change: a check that the next
    # change starts from that text (it always does when every change is recorded).
    length: int
    # The entry as it was before the last change merged in, and that change alone:
    # what ``mark_accepted`` splits the entry back into.
    previous: Edit | None
    last: _Region
    last_after: str
    last_above: str
    last_below: str


CONTEXT_LINES = 3


class EditHistory:
    def __init__(
        self,
        *,
        max_per_document: int = 8,
        max_chars: int = 8_000,
        max_entry_chars: int = 4_000,
        coalesce_seconds: float = 2.0,
        coalesce_lines: int = 2,
        context_lines: int = CONTEXT_LINES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_document = max_per_document
        self.max_chars = max_chars
        # A larger region (a paste, a formatter's rewrite) is not recorded: its diff
        # would crowd out every other entry and cost a large difflib run.
        self.max_entry_chars = max_entry_chars
        self.coalesce_seconds = coalesce_seconds
        self.coalesce_lines = coalesce_lines
        self.context_lines = context_lines
        self._clock = clock
        # Oldest first; an entry that coalesces a new change moves to the end.
        self._entries: OrderedDict[int, Edit] = OrderedDict()
        self._open: dict[str, _Open] = {}
        self._chars = 0
        self._next_key = 0
        # Features may read from another thread (the generation thread).
        self._lock = threading.Lock()

    # -- what the prompt reads ---------------------------------------------------------
    def recent(self, limit_chars: int, exclude_uri: str | None = None) -> list[Edit]:
        """Most recent first, as many as fit ``limit_chars`` of diff text; stops at the
        first that does not fit, so what is returned is the latest stretch of history."""
        out: list[Edit] = []
        used = 0
        with self._lock:
            for edit in reversed(self._entries.values()):
                if edit.uri == exclude_uri:
                    continue
                if used + len(edit.diff) > limit_chars:
                    break
                used += len(edit.diff)
                out.append(edit)
        return out

    def entries(self, uri: str) -> list[Edit]:
        """The document's entries, most recent first."""
        with self._lock:
            return [e for e in reversed(self._entries.values()) if e.uri == uri]

    def __len__(self) -> int:
        return len(self._entries)

    # -- what the session tells it -----------------------------------------------------
    def record(
        self,
        uri: str,
        before: str,
        after: str,
        span: tuple[int, int, int] | None = None,
        *,
        line: int | None = None,
        accepted: bool = False,
    ) -> Edit | None:
        """Note that ``uri`` went from ``before`` to ``after``; the entry it is now part
        of, or None when nothing was recorded (no change, or too large a one).

        ``span`` is ``(start, end, new_end)``: ``before[start:end]`` became
        ``after[start:new_end]`` and the rest is the same. Without it, it is found by a
        common prefix and suffix scan. ``line`` is the line of ``start`` when the caller
        knows it (else it is counted). ``accepted`` marks an edit that accepted a
        suggestion: it gets an entry of its own.
        """
        if span is None:
            span = changed_span(before, after)
        start, end, new_end = span
        if end - start > self.max_entry_chars or new_end - start > self.max_entry_chars:
            self.close_entry(uri)
            return None
        if before[start:end] == after[start:new_end]:
            return None
        now = self._clock()
        # The change's whole lines, in ``before``; the same offsets hold in ``after``
        # up to the end, which shifts by ``delta``.
        first = before.rfind("\n", 0, start) + 1
        last = _line_end(before, end)
        delta = new_end - end
        if line is None:
            line = before.count("\n", 0, first)
        alone = _Region(first, last + delta, line, before[first:last])
        alone_above, alone_below = above, below = self._context(after, alone)
        with self._lock:
            state = self._open.get(uri)
            merged = None
            if state is not None and not accepted:
                merged = self._merge(state, alone, before, delta, now)
            if state is None or merged is None:
                self._close(uri)
                key, core, previous, started = self._new_key(), alone, None, now
            else:
                key, core = state.key, merged
                previous = self._entries.get(key)
                started = previous.started if previous is not None else now
                above, below = self._context(after, core)
            self._drop(key)
            edit = _edit_from(uri, core, above, after[core.start : core.end], below, self)
            edit = None if edit is None else replace(edit, started=started, time=now)
            if edit is None:
                self._close(uri)  # the edits so far cancel out: nothing to show
                return None
            if accepted:
                edit = replace(edit, accepted=True)
                self._close(uri)  # typing after it starts a new entry
            else:
                self._open[uri] = _Open(
                    key,
                    core,
                    len(after),
                    previous,
                    alone,
                    after[alone.start : alone.end],
                    alone_above,
                    alone_below,
                )
            self._add(key, edit)
            self._bound(uri)
            return self._entries.get(key)

    def mark_accepted(self, uri: str, text: str) -> bool:
        """The document's last change came from accepting a suggestion that inserted
        ``text``: give that change an entry of its own, flagged ``accepted``, and end the
        entry it had coalesced into. False when the last change did not insert it."""
        with self._lock:
            state = self._open.get(uri)
            if state is None or not text.strip() or text not in state.last_after:
                return False
            entry = self._entries.get(state.key)
            if entry is None:
                return False
            self._drop(state.key)
            self._open.pop(uri, None)
            if state.previous is not None:
                self._add(self._new_key(), state.previous)
            # The change alone: its region and context lines as they were right
            # after it, which is now.
            edit = _edit_from(
                uri, state.last, state.last_above, state.last_after, state.last_below, self
            )
            if edit is not None:
                edit = replace(edit, started=entry.time, time=entry.time, accepted=True)
                self._add(self._new_key(), edit)
            self._bound(uri)
            return True

    def close_entry(self, uri: str) -> None:
        """The next change to ``uri`` starts a new entry (the user went elsewhere)."""
        with self._lock:
            self._close(uri)

    def forget(self, uri: str) -> None:
        """The document closed: drop everything recorded for it."""
        with self._lock:
            self._open.pop(uri, None)
            for key in [k for k, e in self._entries.items() if e.uri == uri]:
                self._drop(key)

    # -- internals (under the lock) ----------------------------------------------------
    def _merge(
        self, state: _Open, change: _Region, before: str, delta: int, now: float
    ) -> _Region | None:
        """The entry's region with ``change`` merged in, or None when it is too far (in
        time or lines) or would grow too large."""
        entry = self._entries.get(state.key)
        if entry is None or now - entry.time > self.coalesce_seconds:
            return None
        if state.length != len(before):
            return None
        core = state.core
        old_end = change.end - delta  # the change's end in ``before``
        # Lines between the two spans, counted over a bounded stretch only.
        if old_end <= core.start:
            gap = (old_end, core.start)
        elif core.end <= change.start:
            gap = (core.end, change.start)
        else:
            gap = (0, 0)
        if gap[1] - gap[0] > 200 * (self.coalesce_lines + 1):
            return None
        if before.count("\n", *gap) > self.coalesce_lines:
            return None
        lo, hi = min(core.start, change.start), max(core.end, old_end)
        # Outside the entry's region the text is still what it was before its first
        # edit, so the merged "before" extends it with the current lines.
        first_before = before[lo : core.start] + core.before + before[core.end : hi]
        if len(first_before) + (hi + delta - lo) > self.max_entry_chars:
            return None
        line = change.line if change.start < core.start else core.line
        return _Region(lo, hi + delta, line, first_before)

    def _context(self, after: str, region: _Region) -> tuple[str, str]:
        """The unchanged lines above and below a region, found by local scans."""
        top = region.start
        for _ in range(self.context_lines):
            if top == 0:
                break
            top = after.rfind("\n", 0, top - 1) + 1
        bottom = region.end
        for _ in range(self.context_lines):
            if bottom >= len(after):
                break
            bottom = _line_end(after, bottom)
        return after[top : region.start], after[region.end : bottom]

    def _new_key(self) -> int:
        self._next_key += 1
        return self._next_key - 1

    def _add(self, key: int, edit: Edit) -> None:
        self._entries[key] = edit
        self._chars += len(edit.diff)

    def _drop(self, key: int) -> None:
        if (edit := self._entries.pop(key, None)) is not None:
            self._chars -= len(edit.diff)

    def _close(self, uri: str) -> None:
        self._open.pop(uri, None)

    def _bound(self, uri: str) -> None:
        mine = [k for k, e in self._entries.items() if e.uri == uri]
        for key in mine[: max(len(mine) - self.max_per_document, 0)]:
            self._drop_entry(key)
        while self._chars > self.max_chars and self._entries:
            self._drop_entry(next(iter(self._entries)))

    def _drop_entry(self, key: int) -> None:
        edit = self._entries.get(key)
        self._drop(key)
        if edit is not None and (state := self._open.get(edit.uri)) and state.key == key:
            del self._open[edit.uri]  # never coalesce into an entry that is gone


def _line_end(text: str, offset: int) -> int:
    """Offset after the ``\\n`` that ends the line holding ``offset`` (or the end)."""
    i = text.find("\n", offset)
    return len(text) if i < 0 else i + 1


def _lines(text: str) -> list[str]:
    """Lines split at ``\\n`` only, each keeping its break (not ``str.splitlines``,
    which also breaks at ``\\r``, form feeds and Unicode separators)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")
NO_NEWLINE = "\\ No newline at end of file\n"


def _edit_from(
    uri: str, region: _Region, above: str, after: str, below: str, history: EditHistory
) -> Edit | None:
    """The entry for ``region`` now reading ``after``, between its context lines;
    None when it reads as it did before its first edit. Times are set by the caller."""
    if region.before == after:
        return None
    line = region.line - above.count("\n")
    old, new = above + region.before + below, above + after + below
    diff = unified_diff(old, new, line, history.context_lines)
    return Edit(uri, line, old, new, diff, 0.0, 0.0)


def unified_diff(before: str, after: str, line: int = 0, context: int = CONTEXT_LINES) -> str:
    """A unified diff (hunks only, no file header) of two regions that start at 0-based
    document line ``line``, with document line numbers in the hunk headers."""
    out: list[str] = []
    lines = difflib.unified_diff(_lines(before), _lines(after), n=context, lineterm="\n")
    for i, text in enumerate(lines):
        if i < 2:
            continue  # the "---" and "+++" file header
        if (m := _HUNK.match(text)) is not None:
            # difflib numbers lines from 1 within the regions (an empty range names
            # the line before it); the region starts at document line ``line``.
            text = f"@@ -{int(m[1]) + line}{m[2] or ''} +{int(m[3]) + line}{m[4] or ''} @@\n"
        out.append(text)
        if not text.endswith("\n"):
            out.append("\n" + NO_NEWLINE)
    return "".join(out)


def changed_span(before: str, after: str, hint: int = 0) -> tuple[int, int, int]:
    """``(start, end, new_end)``: the smallest span such that ``before[start:end]``
    became ``after[start:new_end]``. ``hint`` is an offset known to lie in the common
    prefix. Both scans gallop out from what is known with C-speed slice comparisons,
    so their cost grows with the distance scanned, not with the text."""
    limit = min(len(before), len(after))
    start = _gallop(lambda a, b: before[a:b] == after[a:b], min(hint, limit), limit)
    nb, na = len(before), len(after)
    tail = _gallop(lambda a, b: before[nb - b : nb - a] == after[na - b : na - a], 0, limit - start)
    return start, nb - tail, na - tail


def _gallop(same: Callable[[int, int], bool], known: int, limit: int) -> int:
    """The largest ``n`` in ``[known, limit]`` such that the first ``n`` positions agree,
    given that the first ``known`` do; ``same(a, b)`` says whether ``[a, b)`` agrees."""
    step = 64
    lo = known
    while lo < limit:
        probe = min(lo + step, limit)
        if not same(lo, probe):
            hi = probe
            while hi - lo > 1:  # the first disagreement lies in [lo, hi)
                mid = (lo + hi) // 2
                if same(lo, mid):
                    lo = mid
                else:
                    hi = mid
            return lo
        lo, step = probe, step * 2
    return lo
