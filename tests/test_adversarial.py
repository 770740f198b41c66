"""The standing adversarial suite (issue 22): every case of ``bench.hostile`` against the
real server over stdio, with the tiny model.

One test per case, each asserting what a user should get from it and that the server
survived it (alive, ``mmlsp/status`` answered with the same model state, every status
probe answered, and a sentinel document still holding exactly the client's text).
The cases run once, grouped by the server they share; the response times of
``mmlsp/status`` measured meanwhile are printed (``-s``), never asserted: they go to
BENCHMARKS.md through ``python -m bench.reliability``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.hostile import CASES, Case, Outcome, describe, run_cases, summary

BY_ID = {case.id: case for case in CASES}


def test_case_ids_are_unique_and_every_class_is_covered() -> None:
    assert len(BY_ID) == len(CASES)
    classes = {case.klass for case in CASES}
    assert classes == {
        "malformed framing",
        "invalid params",
        "client answers null",
        "hostile workspace",
        "concurrent background work",
        "settings that redirect traffic",
        "odd text",
    }


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Runs the cases selected in this session (all, unless ``-k`` chose some)."""
    module = sys.modules[__name__]
    chosen = {
        item.callspec.params["case_id"]
        for item in request.session.items
        if item.module is module and hasattr(item, "callspec")
    }
    cases = [case for case in CASES if case.id in chosen]
    done = run_cases(cases, tiny_model_dir, tmp_path_factory.mktemp("hostile"))
    print()
    for outcome in done:
        print(describe(outcome))
    for klass, tried, survived, handled, worst in summary(done):
        print(
            f"{klass}: {tried} tried, {survived} survived, {handled} handled as expected, "
            f"worst mmlsp/status {worst * 1000:.0f} ms"
        )
    return {outcome.case.id: outcome for outcome in done}


@pytest.mark.parametrize("case_id", list(BY_ID))
def test_hostile_case(outcomes: dict[str, Outcome], case_id: str) -> None:
    case: Case = BY_ID[case_id]
    outcome = outcomes[case.id]
    assert outcome.survived, f"the server did not survive: {outcome.problem}"
    assert outcome.error is None, outcome.error
    assert outcome.probe.sent > 0, "no mmlsp/status probe was sent while the case ran"
