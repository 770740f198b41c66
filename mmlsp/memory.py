"""Process memory hygiene for a server that runs for days: glibc's malloc, tamed.

Each thread that allocates (the event loop, the generation worker, the loader,
torch's pool) gets its own malloc arena by default, and memory freed by tensors,
prompts and parse trees can stay fragmented across them. This module caps the arenas
and gives freed pages back to the system when the worker is idle. Both are no-ops
where libc is not glibc. (The soak's steady RSS growth was not the allocator but
pygls keeping a future per notification; lsp.protocol.MmlspProtocol stops that.)
"""

from __future__ import annotations

import ctypes
import functools
import sys
import time
from typing import Any

_M_ARENA_MAX = -8  # glibc's malloc.h
# Least seconds between two trims: a trim walks the heap (milliseconds for a large one).
TRIM_EVERY_S = 30.0


@functools.cache
def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; False where that is not possible."""
    libc = _glibc()
    return bool(libc.mallopt(_M_ARENA_MAX, arenas)) if libc is not None else False


def release_free_memory() -> bool:
    """Return free heap pages to the system (``malloc_trim``); False where not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class IdleTrim:
    """When to trim: after work, at most once every ``every_s`` seconds."""

    def __init__(self, every_s: float = TRIM_EVERY_S) -> None:
        self.every_s = every_s
        self.last = time.monotonic()

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self.last < self.every_s:
            return False
        self.last = now
        return True
