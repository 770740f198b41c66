"""Drafts: guess the next tokens by finding the newest n-gram somewhere else.

Two sources. Prompt lookup (``ngram_draft``): code repeats itself (names, call
patterns, the suffix the cursor is heading into), so the tokens that followed the
last earlier occurrence of the newest n-gram are a cheap draft. Reuse drafts
(``continuation_draft``): the tokens the document's previous request generated.
After one typed character the model mostly says again what it said a keystroke ago,
and without a draft it would decode that again token by token.

The engine verifies a draft in one forward pass and keeps only the tokens greedy
decoding would have produced, so a draft changes speed, not the greedy choice.
Pure functions over token ids.
"""

from __future__ import annotations

from collections.abc import Sequence


def _match_end(seq: Sequence[int], tail: list[int], ends: range) -> int | None:
    """The first index in ``ends`` at which ``tail`` ends in ``seq``, else None."""
    last, n = tail[-1], len(tail)
    for i in ends:
        if seq[i] == last and list(seq[i - n + 1 : i + 1]) == tail:
            return i
    return None


def ngram_draft(
    tokens: Sequence[int], num: int, max_ngram: int = 3, min_ngram: int = 1
) -> list[int]:
    """Up to ``num`` tokens that followed the latest earlier match of the final n-gram.

    Longer n-grams are tried first (they predict better); the most recent match wins
    (it is nearest the cursor). Empty when nothing matches or ``num`` <= 0.
    """
    if num <= 0 or len(tokens) < 2:
        return []
    seq = list(tokens)
    end = len(seq)
    for n in range(min(max_ngram, end - 1), min_ngram - 1, -1):
        # Right to left, excluding the tail itself: at least one token follows a match.
        i = _match_end(seq, seq[end - n :], range(end - 2, n - 2, -1))
        if i is not None:
            return seq[i + 1 : i + 1 + num]
    return []


def continuation_draft(
    previous: Sequence[int], tokens: Sequence[int], num: int, start: int = 0, max_ngram: int = 3
) -> tuple[list[int], int]:
    """Up to ``num`` tokens that followed the final n-gram of ``tokens`` in ``previous``.

    ``previous`` is read forward: the earliest match whose n-gram ends at or after
    ``start`` wins (it follows the part already drafted), longer n-grams first.
    Returns the draft and the index in ``previous`` where it begins (``start`` when
    there is no draft), so the caller can go on from there.
    """
    if num <= 0 or not tokens:
        return [], start
    for n in range(min(max_ngram, len(tokens)), 0, -1):
        i = _match_end(previous, list(tokens[-n:]), range(max(start, n - 1), len(previous) - 1))
        if i is not None:
            return list(previous[i + 1 : i + 1 + num]), i + 1
    return [], start


def accepted(draft: Sequence[int], greedy: Sequence[int]) -> int:
    """How many draft tokens agree with the model's greedy choice at each position."""
    count = 0
    for d, g in zip(draft, greedy, strict=False):
        if d != g:
            break
        count += 1
    return count
