"""Typed-ahead cache and adaptive debounce: pure unit tests."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from mmlsp.config import TYPING_PAUSE_S
from mmlsp.features.debounce import SUPERSEDED_SHARE, TypingPace
from mmlsp.features.typeahead import Entry, TypeaheadCache, remainder, typed_since

URI = "file:///a.py"
BEFORE = "import os\nx = os.path."
AFTER = "\nprint(x)\n"
SUGGESTION = "join(a, b)"


def cache_with(text: str = SUGGESTION) -> TypeaheadCache:
    cache = TypeaheadCache()
    cache.add(URI, BEFORE, AFTER, text)
    return cache


def test_same_place_gives_the_whole_suggestion():
    assert cache_with().lookup(URI, BEFORE, AFTER) == SUGGESTION


def test_typing_the_suggestion_gives_the_rest():
    cache = cache_with()
    for i in range(1, len(SUGGESTION)):
        assert cache.lookup(URI, BEFORE + SUGGESTION[:i], AFTER) == SUGGESTION[i:]


def test_typing_all_of_it_or_something_else_misses():
    cache = cache_with()
    assert cache.lookup(URI, BEFORE + SUGGESTION, AFTER) is None
    assert cache.lookup(URI, BEFORE + "split", AFTER) is None
    assert cache.lookup(URI, BEFORE + "jx", AFTER) is None


def test_backspace_and_retype_are_served():
    cache = cache_with()
    # type "jo", backspace twice, retype "j": every state is a prefix of the suggestion
    for typed in ("j", "jo", "j", "", "j", "jo", "joi"):
        assert cache.lookup(URI, BEFORE + typed, AFTER) == SUGGESTION[len(typed) :]
    # backspace past where the suggestion was made: an older entry answers
    cache.add(URI, BEFORE[:-1], AFTER, ".getsize(p)")
    assert cache.lookup(URI, BEFORE[:-1], AFTER) == ".getsize(p)"
    assert cache.lookup(URI, BEFORE, AFTER) == "getsize(p)"  # newest that applies wins


def test_deletions_and_edits_elsewhere_miss():
    cache = cache_with()
    assert cache.lookup(URI, BEFORE[:-1], AFTER) is None  # deleted the "."
    assert cache.lookup(URI, "#\n" + BEFORE, AFTER) is None  # edit above
    assert cache.lookup(URI, BEFORE, AFTER + "y = 1\n") is None  # edit below
    assert cache.lookup(URI, BEFORE, AFTER[1:]) is None


def test_cursor_jumps_miss():
    cache = cache_with()
    text = BEFORE + AFTER
    for cut in range(len(text) + 1):
        if cut == len(BEFORE):
            continue
        assert cache.lookup(URI, text[:cut], text[cut:]) is None


def test_other_documents_miss_and_forget():
    cache = cache_with()
    assert cache.lookup("file:///b.py", BEFORE, AFTER) is None
    cache.forget(URI)
    assert cache.lookup(URI, BEFORE, AFTER) is None and len(cache) == 0


def test_whitespace_only_rest_is_not_served():
    cache = cache_with("x  ")
    assert cache.lookup(URI, BEFORE + "x", AFTER) is None


def test_accepted_detects_the_whole_suggestion_in_the_document():
    cache = cache_with()
    entry = cache.accepted(URI, BEFORE + SUGGESTION + AFTER)
    assert entry == Entry(BEFORE, AFTER, SUGGESTION)
    assert cache.accepted(URI, BEFORE + SUGGESTION[:-1] + AFTER) is None
    assert cache.accepted(URI, BEFORE + AFTER) is None


def test_bounded_by_entries_and_chars():
    cache = TypeaheadCache(max_entries=3, max_chars=10_000)
    for i in range(10):
        cache.add(URI, f"x{i} = ", "", f"value_{i}")
    assert len(cache) == 3
    assert cache.lookup(URI, "x9 = ", "") == "value_9"
    assert cache.lookup(URI, "x0 = ", "") is None
    cache.add(URI, "y" * 20_000, "", "big")
    assert cache.chars <= 10_000


def test_typed_since():
    assert typed_since("ab", "cd", "abxy", "cd") == "xy"
    assert typed_since("ab", "cd", "ab", "cd") == ""
    assert typed_since("ab", "cd", "a", "cd") is None
    assert typed_since("ab", "cd", "abx", "d") is None


@given(
    st.text("ab(\n ", max_size=12),
    st.text("ab(\n ", min_size=1, max_size=8),
    st.text("ab(\n ", max_size=12),
    st.lists(st.sampled_from(["type", "typo", "backspace", "jump"]), max_size=20),
)
def test_model_of_random_sessions(before, suggestion, after, actions):
    """Whatever the user does, a hit is exactly the rest of the suggestion they typed into."""
    cache = TypeaheadCache()
    cache.add(URI, before, after, suggestion)
    text, cursor = before + after, len(before)
    rng = random.Random(len(actions))
    for action in actions:
        if action == "type":
            typed = text[len(before) : cursor] if text.endswith(after) else ""
            char = suggestion[len(typed)] if len(typed) < len(suggestion) else "z"
            text, cursor = text[:cursor] + char + text[cursor:], cursor + 1
        elif action == "typo":
            text, cursor = text[:cursor] + "#" + text[cursor:], cursor + 1
        elif action == "backspace" and cursor:
            text, cursor = text[: cursor - 1] + text[cursor:], cursor - 1
        elif action == "jump":
            cursor = rng.randrange(len(text) + 1)
        got = cache.lookup(URI, text[:cursor], text[cursor:])
        expected = remainder(Entry(before, after, suggestion), text[:cursor], text[cursor:])
        assert got == expected
        if got is not None:
            assert text[:cursor] + got + text[cursor:] == before + suggestion + after


def test_debounce_fires_at_once_without_typing_history():
    pace = TypingPace()
    assert pace.delay(0.0, 0.2) == 0.0
    pace.edit(0.0, deleted=False)
    assert pace.delay(0.01, 0.2) == 0.0  # one edit: no speed known yet


def test_debounce_waits_while_typing_faster_than_the_model():
    pace = TypingPace()
    pace.model_latency(1.0)
    for i in range(5):
        pace.edit(i * 0.1, deleted=False)
    assert 0.1 <= pace.delay(0.41, 0.2) <= 0.2
    assert pace.delay(0.41, 0.0) == 0.0  # disabled
    assert pace.delay(0.4 + TYPING_PAUSE_S, 0.2) == 0.0  # the user paused


def test_debounce_fires_at_once_when_the_model_is_faster_than_typing():
    pace = TypingPace()
    pace.model_latency(0.02)
    for i in range(5):
        pace.edit(i * 0.1, deleted=False)
    assert pace.delay(0.41, 0.2) == 0.0


def test_debounce_holds_back_on_backspace_bursts():
    pace = TypingPace()
    pace.model_latency(0.01)  # even a fast model is not asked during the burst
    pace.edit(0.0, deleted=False)
    pace.edit(0.1, deleted=True)
    assert pace.delay(0.11, 0.2) == 0.0  # one backspace is not a burst
    pace.edit(0.15, deleted=True)
    pace.edit(0.2, deleted=True)
    assert pace.delay(0.21, 0.2) == 0.2
    pace.edit(0.3, deleted=False)
    assert pace.delay(0.31, 0.2) == 0.0


def test_debounce_fires_at_once_while_the_user_waits_for_answers():
    """Typing gaps shorter than the model's latency, but the recent requests were
    answered before the next keystroke: waiting would only add to each answer."""
    pace = TypingPace()
    pace.model_latency(1.0)
    for i in range(5):
        pace.edit(i * 0.1, deleted=False)
    for _ in range(3):
        pace.request_ended(superseded=False)
    assert pace.delay(0.41, 0.2) == 0.0
    # Requests superseded again (the user types on over them): the wait comes back.
    for _ in range(3):
        pace.request_ended(superseded=True)
    assert pace.superseded is not None and pace.superseded >= SUPERSEDED_SHARE
    assert 0.1 <= pace.delay(0.41, 0.2) <= 0.2
    # Backspace bursts hold back whatever the history.
    answered = TypingPace()
    answered.request_ended(superseded=False)
    for i in range(3):
        answered.edit(i * 0.05, deleted=True)
    assert answered.delay(0.11, 0.2) == 0.2
