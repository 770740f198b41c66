"""Typed-ahead reuse: answer from suggestions already made, with no model call.

This module owns ``TypeaheadCache``, an LRU of recent suggestions per document,
each keyed by the exact text before and after the cursor it was made for. A request
is served when the text before the cursor is an entry's text plus the start of its
suggestion (the user typed that much of it) and the text after the cursor did not
change; the answer is the rest of the suggestion. Since every entry serves every
typed prefix of its suggestion, backspace-and-retype and partial acceptance are
hits as well. Pure: strings in, strings out; bounded by entries and characters.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_MAX_ENTRIES = 32
# Entries hold whole document halves; this caps the memory (about 4 bytes a char).
DEFAULT_MAX_CHARS = 8_000_000


@dataclass(frozen=True)
class Entry:
    before: str  # document text before the cursor when the suggestion was made
    after: str  # document text after the cursor
    text: str  # the suggestion (as shown: post-processed, document line endings)

    @property
    def size(self) -> int:
        return len(self.before) + len(self.after) + len(self.text)


def typed_since(before0: str, after0: str, before: str, after: str) -> str | None:
    """What was typed at the cursor to go from ``before0|after0`` to ``before|after``.

    None when the change was anything but an insertion at the old cursor (a
    deletion, a jump, an edit elsewhere).
    """
    if len(before) < len(before0) or len(after) != len(after0):
        return None
    if after != after0 or not before.startswith(before0):
        return None
    return before[len(before0) :]


def remainder(entry: Entry, before: str, after: str) -> str | None:
    """The rest of ``entry``'s suggestion at ``before|after``, or None when it does not apply."""
    # Cheap length test first: most entries are for other cursor positions.
    if not 0 <= len(before) - len(entry.before) < len(entry.text):
        return None
    typed = typed_since(entry.before, entry.after, before, after)
    if typed is None or not entry.text.startswith(typed):
        return None
    rest = entry.text[len(typed) :]
    return rest if rest.strip() else None


class TypeaheadCache:
    """Recent suggestions per document, most recently used last."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[tuple[str, str, str], tuple[str, Entry]] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chars(self) -> int:
        return self._chars

    def add(self, uri: str, before: str, after: str, text: str) -> None:
        if self.max_entries <= 0 or not text.strip():
            return
        entry = Entry(before, after, text)
        key = (uri, before[-64:], text)  # cheap identity; the full check is in lookup
        if (old := self._entries.pop(key, None)) is not None:
            self._chars -= old[1].size
        self._entries[key] = (uri, entry)
        self._chars += entry.size
        while self._entries and (
            len(self._entries) > self.max_entries or self._chars > self.max_chars
        ):
            _, (_, evicted) = self._entries.popitem(last=False)
            self._chars -= evicted.size

    def lookup(self, uri: str, before: str, after: str) -> str | None:
        """The rest of the newest suggestion that still applies at ``before|after``."""
        for key in reversed(self._entries):
            owner, entry = self._entries[key]
            if owner != uri:
                continue
            if (rest := remainder(entry, before, after)) is not None:
                self._entries.move_to_end(key)
                return rest
        return None

    def accepted(self, uri: str, text: str) -> Entry | None:
        """The newest entry whose whole suggestion ``text`` now contains at its cursor."""
        for key in reversed(self._entries):
            owner, entry = self._entries[key]
            if owner != uri:
                continue
            if len(text) != entry.size:
                continue
            if text.startswith(entry.before) and text.endswith(entry.after):
                middle = text[len(entry.before) : len(text) - len(entry.after)]
                if middle == entry.text:
                    return entry
        return None

    def forget(self, uri: str) -> None:
        for key in [k for k, (owner, _) in self._entries.items() if owner == uri]:
            self._chars -= self._entries.pop(key)[1].size

    def clear(self) -> None:
        self._entries.clear()
        self._chars = 0
