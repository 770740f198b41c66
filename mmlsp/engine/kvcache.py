"""Prompt KV caches kept between requests, so a new prompt prefills only what changed.

This module owns ``PrefixCache``: the attention key/value cache of the last prompt
(plus the tokens generated after it) per cache key (the document URI), in a small
LRU bounded by entry count and bytes. ``take`` hands out the cache cropped to the
longest common token prefix with the new prompt, with the tokens the crop dropped
(a draft source); the engine prefills the rest and gives the cache back with
``put``. An entry is owned by one generation at a time (``take`` removes it), so the
single generation thread never shares a cache.

Only caches whose every layer is a plain ``DynamicLayer`` or ``StaticLayer`` are
kept: those crop exactly (``crop``); sliding-window or recurrent layers cannot be
rolled back, so such caches are simply not reused. A static cache crops by moving
its write position back: the causal mask hides the stale positions after it, and
the next tokens overwrite them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_ENTRIES = 4
DEFAULT_MAX_BYTES = 1 << 30


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    # Compare in blocks first: prompts share long runs, and slice equality runs in C.
    lo, step = 0, 256
    while lo < n:
        hi = min(n, lo + step)
        if a[lo:hi] != b[lo:hi]:
            break
        lo = hi
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo


def croppable(cache: Any) -> bool:
    """Whether every layer of ``cache`` can be cut back to any length exactly."""
    from transformers.cache_utils import DynamicLayer, StaticLayer

    layers = getattr(cache, "layers", None) or ()
    return bool(layers) and all(type(layer) in (DynamicLayer, StaticLayer) for layer in layers)


def seq_length(cache: Any) -> int:
    """Positions ``cache`` holds (a static cache reports a tensor; make it an int)."""
    return int(cache.get_seq_length())


def crop(cache: Any, length: int) -> None:
    """Cut ``cache`` (``croppable``) back to its first ``length`` positions."""
    from transformers.cache_utils import StaticLayer

    for layer in cache.layers:
        if type(layer) is StaticLayer:
            # In place: the compiled decode step holds this tensor's address.
            if layer.is_initialized:
                layer.cumulative_length.fill_(length)
        elif (extra := layer.get_seq_length() - length) > 0:
            layer.crop(-extra)


def cache_bytes(cache: Any) -> int:
    total = 0
    for layer in getattr(cache, "layers", ()):
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if tensor is not None:
                total += tensor.numel() * tensor.element_size()
    return total


@dataclass
class _Entry:
    tokens: list[int]  # the token at each cached position
    cache: Any  # a transformers DynamicCache
    nbytes: int


@dataclass(frozen=True)
class Reuse:
    cache: Any | None  # None: start with a fresh cache
    reused: int  # leading prompt tokens already in ``cache``
    # The cached tokens after the shared prefix, which the crop dropped (mostly the
    # last request's generation): a draft source for this one (lookup.py).
    previous: list[int] = field(default_factory=list)


class PrefixCache:
    """LRU of KV caches by key; thread-safe, each entry lent to one generation at a time."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def take(self, key: str, ids: Sequence[int]) -> Reuse:
        """The cache for ``key`` cropped to its common prefix with ``ids``.

        At least the last prompt token is always left to prefill: its logits give the
        first generated token.
        """
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return Reuse(None, 0)
        if seq_length(entry.cache) != len(entry.tokens):  # never trust a mismatch
            return Reuse(None, 0)
        keep = min(common_prefix(entry.tokens, ids), len(ids) - 1)
        if keep <= 0:
            return Reuse(None, 0)
        previous = entry.tokens[keep:]
        if previous:
            crop(entry.cache, keep)
        return Reuse(entry.cache, keep, previous)

    def put(self, key: str, tokens: Sequence[int], cache: Any) -> None:
        """Keep ``cache`` (holding exactly ``tokens``) for ``key``, evicting the oldest."""
        if self.max_entries <= 0 or not croppable(cache):
            return
        if seq_length(cache) != len(tokens):
            return
        entry = _Entry(list(tokens), cache, cache_bytes(cache))
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = entry
            total = sum(e.nbytes for e in self._entries.values())
            while self._entries and (
                len(self._entries) > self.max_entries or total > self.max_bytes
            ):
                _, evicted = self._entries.popitem(last=False)
                total -= evicted.nbytes

    def drop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
