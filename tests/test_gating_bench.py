"""bench/gating.py's analysis on fake holes (no model): the curve, the cross-validated
chances and the rule that picks the default threshold."""

from __future__ import annotations

import random

from bench.gating import THRESHOLDS, chosen_threshold, curve, predictions, real_holes, table


def fake_rows(n: int = 200, seed: int = 0) -> list[dict]:
    """Fake holes: right more often the more confident (fake) the model was."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        mean = -2.5 * rng.random()
        right = rng.random() < 0.9 + mean / 3
        rows.append(
            {
                "kind": ("single", "multi", "real")[i % 3],
                "text": "" if i % 10 == 0 else "x = 1",
                "right": right and i % 10 != 0,
                "mean": mean,
                "min": mean - 0.5,
                "position": {"line_rest": 0.0, "line_start": 1.0},
            }
        )
    return rows


def test_gating_raises_precision_and_lowers_coverage():
    rows = fake_rows()
    chance, prior = predictions(rows, 1)
    assert prior.trained_on == sum(bool(r["text"]) for r in rows)
    assert all((p is None) == (not r["text"]) for p, r in zip(chance, rows, strict=True))
    points = curve(rows, chance)
    assert points[0][1] == 180  # the ungated pipeline shows every non-empty answer
    shown = [s for _, s, _ in points]
    assert shown == sorted(shown, reverse=True)
    precision = [right / s for _, s, right in points if s > 20]
    assert precision[-1] > precision[0] + 0.1


def test_the_default_rule_keeps_most_suggestions():
    rows = fake_rows()
    chosen = chosen_threshold(rows)
    assert chosen in THRESHOLDS and chosen > 0
    cross, _ = predictions(rows, 2)
    kept = dict((t, s) for t, s, _ in curve(rows, cross))
    assert kept[chosen] >= 0.8 * kept[0.0]
    assert "**0.10 (default)**" in table(rows, 0.1)


def test_real_code_holes_are_rests_of_lines():
    holes = real_holes(20, seed=1)
    assert len(holes) == 20
    for hole in holes:
        line = hole.prefix.rsplit("\n", 1)[-1] + hole.target
        assert len(hole.target) >= 4 and line.strip() and "\n" not in hole.target
        assert hole.suffix.startswith("\n")
