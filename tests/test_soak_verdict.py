"""bench.soak's pass/fail rule, on made-up samples (pure logic; the soak itself runs in CI)."""

from __future__ import annotations

from bench.soak import verdict


def samples(rss: list[float], handling: int = 0) -> list[dict]:
    return [
        {"minute": i, "rss_mb": mb, "handling": handling, "requests": 1, "p95_ms": 1.0}
        for i, mb in enumerate(rss)
    ]


def test_flat_memory_passes():
    assert verdict(samples([440, 452, 451, 453, 452, 452]), 5.0, 50.0) is None


def test_memory_that_keeps_growing_fails():
    assert verdict(samples([440 + 20 * i for i in range(10)]), 5.0, 50.0) == (
        "memory keeps growing"
    )


def test_a_fast_but_small_rise_is_not_a_leak():
    # Caches filling early: steep, but far less than the growth limit.
    assert verdict(samples([440, 441, 442, 450, 458, 466]), 5.0, 50.0) is None


def test_messages_still_held_after_every_answer_fail():
    reason = verdict(samples([440, 441, 440, 441], handling=200), 5.0, 50.0)
    assert reason == "the server still holds 200 handled messages"
    assert verdict(samples([440, 441], handling=1), 5.0, 50.0) is None


def test_no_samples_fails():
    assert verdict([], 5.0, 50.0) == "no samples"
