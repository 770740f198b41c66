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


def hostile_samples(rss: list[float], rounds: list[int]) -> list[dict]:
    return [{**s, "hostile_rounds": r} for s, r in zip(samples(rss), rounds, strict=True)]


def test_hostile_step_before_a_full_round_is_not_judged():
    # A 200k-line case's first run grows the heap once; before every case has run once,
    # that step cannot be told from a leak, so memory is not judged.
    steps = hostile_samples([450, 455, 460, 470, 555, 515, 545], [0] * 7)
    assert verdict(steps, 5.0, 50.0) is None


def test_hostile_growth_after_a_full_round_fails():
    grows = hostile_samples([450 + 30 * i for i in range(10)], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    assert verdict(grows, 5.0, 50.0) == "memory keeps growing"
