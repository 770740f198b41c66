"""mmlsp.memory: glibc arena cap and idle trimming."""

from __future__ import annotations

import platform

from mmlsp.memory import IdleTrim, limit_malloc_arenas, release_free_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_arenas_are_capped_and_memory_released_on_glibc() -> None:
    assert limit_malloc_arenas() is GLIBC
    assert release_free_memory() is GLIBC


def test_idle_trim_runs_at_most_once_per_period() -> None:
    trim = IdleTrim(every_s=30)
    start = trim.last
    assert not trim.due(start + 1)
    assert trim.due(start + 31)
    assert not trim.due(start + 40)  # the period restarts at the last trim
    assert trim.due(start + 62)
