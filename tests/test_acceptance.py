"""Acceptance statistics and gating: the store (retention, delete, off), the gate's
regression and confidence (fake results and fake confidences, named so), the events
as the server infers them, and ``mmlsp stats``."""

from __future__ import annotations

import io
import math
import random
import time
from argparse import Namespace

import pytest

from mmlsp.acceptance.gate import (
    MIN_EVENTS,
    Confidence,
    Gate,
    Logistic,
    confidence,
    fit,
    position_features,
    shows,
)
from mmlsp.acceptance.report import plot, render, summarize
from mmlsp.acceptance.store import Event, EventStore
from mmlsp.cli import run_stats
from mmlsp.config import Settings
from mmlsp.engine import GenerationResult
from mmlsp.features.acceptance import Acceptance


def event(outcome="pending", mean=-0.5, **kw) -> Event:
    values = dict(
        kind="completion",
        language="python",
        model="m",
        length=12,
        lines=1,
        latency_ms=120.0,
        mean_logprob=mean,
        min_logprob=mean - 1,
        outcome=outcome,
    )
    values.update(kw)
    return Event(**values)


# -- the store ---------------------------------------------------------------------------
def test_store_keeps_events_and_their_outcomes(tmp_path):
    store = EventStore.in_dir(tmp_path)
    first = store.add(event())
    store.add(event("hidden"))
    store.settle(first, "partial", "word", 4)
    store.close()
    again = EventStore.in_dir(tmp_path)
    rows = again.events()
    assert [(e.outcome, e.how, e.accepted_chars) for e in rows] == [
        ("partial", "word", 4),
        ("hidden", None, 0),
    ]
    assert [e.outcome for e in again.settled()] == ["partial"]


def test_retention_drops_old_and_surplus_events(tmp_path):
    store = EventStore(tmp_path / "a.sqlite3", retention_days=30, max_events=5)
    old = time.time() - 31 * 86400
    store.add(event(ts=old))
    for _ in range(7):
        store.add(event())
    assert store.prune() == 3  # the old one, and the two oldest beyond five
    assert store.count() == 5
    assert all(e.ts > old for e in store.events())


def test_delete_removes_the_file(tmp_path):
    store = EventStore.in_dir(tmp_path)
    store.add(event())
    assert store.path.exists()
    assert store.delete() is True
    assert not any(tmp_path.iterdir())
    assert store.delete() is False


def test_nothing_is_recorded_when_turned_off(tmp_path):
    settings = Settings(cache_dir=str(tmp_path), acceptance_stats=False)
    acceptance = Acceptance(lambda: settings)
    text = "x = "
    assert acceptance.offer("u", text, 4, "1", None, language="python", latency_ms=5) == 1
    acceptance.accepted([{"id": 1}])
    acceptance.shutdown()
    assert acceptance.store() is None
    assert not any(tmp_path.iterdir())


# -- confidence and the gate --------------------------------------------------------------
def fake_result(pieces: list[tuple[str, float]]) -> GenerationResult:
    """A fake generation: text pieces (tokens) with their log-probabilities."""
    text, ends = "", []
    for piece, _ in pieces:
        text += piece
        ends.append(len(text))
    return GenerationResult(
        text,
        "stop",
        10,
        len(pieces),
        0.1,
        token_logprobs=tuple(lp for _, lp in pieces),
        token_ends=tuple(ends),
    )


def test_confidence_covers_the_tokens_of_what_is_shown():
    result = fake_result([("foo", -0.1), ("(", -0.5), ("x", -2.0), (")\n", -0.2), ("junk", -9)])
    conf = confidence(result, "foo(x)")  # post-processing cut the junk
    assert conf == Confidence(pytest.approx((-0.1 - 0.5 - 2.0 - 0.2) / 4), -2.0)
    tail = confidence(result, "x)")  # the rest of it, while the user types
    assert tail == Confidence(pytest.approx(-1.1), -2.0)
    assert confidence(GenerationResult("a", "eos", 1, 1, 0.1), "a") is None
    assert confidence(None, "a") is None


def test_position_features():
    assert position_features("    ret\n", 7) == {"line_rest": 0.0, "line_start": 0.0}
    assert position_features("f(    )\n", 2) == {"line_rest": 1.0, "line_start": 0.0}
    assert position_features("x\n    \n", 6) == {"line_rest": 0.0, "line_start": 1.0}


def fake_history(n: int, seed: int = 0) -> list[Event]:
    """Fake events whose chance of acceptance rises with the (fake) confidence."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        mean = -3 * rng.random()
        accepted = rng.random() < 1 / (1 + math.exp(-(3 * mean + 3)))
        out.append(event("accepted" if accepted else "overtaken", mean=mean))
    return out


def test_regression_learns_and_is_calibrated():
    history = fake_history(600)
    gate = Gate("m")
    assert gate.source == "none"
    assert gate.refit(history, settled=len(history))
    assert gate.source == "history"
    sure = gate.probability("completion", "x" * 12, Confidence(-0.1, -1.1), {})
    unsure = gate.probability("completion", "x" * 12, Confidence(-2.8, -3.8), {})
    assert sure is not None and unsure is not None and sure > 0.8 > 0.2 > unsure
    # Calibrated on what it saw: the mean prediction is the accept rate.
    rows = [
        gate.probability("completion", "x" * 12, Confidence(e.mean_logprob, e.min_logprob), {})
        for e in history
    ]
    rate = sum(e.outcome == "accepted" for e in history) / len(history)
    assert sum(rows) / len(rows) == pytest.approx(rate, abs=0.02)


def test_too_little_history_or_one_sided_history_fits_nothing():
    gate = Gate("m")
    assert not gate.refit(fake_history(MIN_EVENTS - 1), settled=100)
    one_sided = [event("accepted") for _ in range(200)]
    assert not gate.refit(one_sided, settled=200, force=True)
    other_model = [Event(**{**e.__dict__, "model": "other", "id": None}) for e in fake_history(300)]
    assert not gate.refit(other_model, settled=300, force=True)
    assert gate.learned is None


def test_fit_separates_a_fake_feature():
    rows = [{"mean_logprob": v} for v in (-3, -2.5, -2, -1, -0.5, -0.2)]
    model = fit(rows, [0, 0, 0, 1, 1, 1], ("mean_logprob",))
    assert (
        model.probability({"mean_logprob": -0.3}) > 0.5 > model.probability({"mean_logprob": -2.8})
    )


def test_no_confidence_or_no_model_means_shown():
    assert shows(None, 0.9)
    assert shows(0.5, 0.5) and not shows(0.49, 0.5)
    assert (
        Gate("a model nobody measured").probability("completion", "x", Confidence(-9, -9), {})
        is None
    )


# -- the events the server infers ----------------------------------------------------------
FAKE_PRIOR = Logistic(("mean_logprob",), (0.0,), (1.0,), (4.0,), 2.0)  # p(-0.5)=0.5


def tracker(tmp_path, threshold=0.0, prior: Logistic | None = None) -> Acceptance:
    settings = Settings(cache_dir=str(tmp_path), suggestion_threshold=threshold, model="m")
    acceptance = Acceptance(lambda: settings)
    if prior is not None:
        acceptance.gate().prior = prior
    return acceptance


def outcomes(acceptance: Acceptance) -> list[tuple[str, str | None]]:
    store = acceptance.store()
    assert store is not None
    return [(e.outcome, e.how) for e in store.events()]


DOC = "def f(x):\n    return \n"
AT = DOC.index("return ") + len("return ")


def offer(acceptance, text=DOC, at=AT, shown="x + 1", result=None):
    return acceptance.offer("u", text, at, shown, result, language="python", latency_ms=50)


def test_accept_by_command_and_by_edit(tmp_path):
    acceptance = tracker(tmp_path)
    ident = offer(acceptance)
    acceptance.changed("u", DOC[:AT] + "x + 1" + DOC[AT:])  # the client inserted it
    acceptance.accepted([{"id": ident, "how": "whole"}])  # then ran the command
    assert outcomes(acceptance) == [("accepted", "whole")]


def test_typing_along_keeps_the_suggestion_then_typing_else_overtakes_it(tmp_path):
    acceptance = tracker(tmp_path)
    ident = offer(acceptance, shown="xy + 1")
    typed = DOC[:AT] + "x" + DOC[AT:]
    acceptance.changed("u", typed)
    assert offer(acceptance, typed, AT + 1, "y + 1") == ident  # its rest, same id
    acceptance.changed("u", DOC[:AT] + "xz" + DOC[AT:])
    assert outcomes(acceptance) == [("overtaken", None)]


def test_a_request_elsewhere_dismisses_and_partial_accepts_count(tmp_path):
    acceptance = tracker(tmp_path)
    offer(acceptance)
    second = offer(acceptance, at=AT - 1, shown=" y")  # cursor moved, text unchanged
    acceptance.accepted([{"id": second, "how": "word", "chars": 2}])
    assert outcomes(acceptance) == [("dismissed", None), ("partial", "word")]
    acceptance.accepted([{"id": second, "how": "line"}])
    acceptance.accepted([{"id": second}])
    assert outcomes(acceptance)[-1] == ("accepted", "whole")


def test_bad_accept_arguments_are_refused(tmp_path):
    from pygls.exceptions import JsonRpcInvalidParams

    acceptance = tracker(tmp_path)
    for bad in ([{"id": "1"}], [{"id": 1, "how": "all"}], [], [{"id": True}]):
        with pytest.raises(JsonRpcInvalidParams):
            acceptance.accepted(bad)
    acceptance.accepted([{"id": 99}])  # unknown: ignored


def test_gate_hides_unsure_suggestions_and_their_typed_rest(tmp_path):
    acceptance = tracker(tmp_path, threshold=0.3, prior=FAKE_PRIOR)
    sure = fake_result([("x", -0.05), (" + 1", -0.1)])
    assert offer(acceptance, result=sure) is not None
    unsure = fake_result([("y", -2.0), (" * 2", -1.5)])
    assert offer(acceptance, at=AT - 1, shown="y * 2", result=unsure) is None
    typed = DOC[: AT - 1] + "y" + DOC[AT - 1 :]
    assert offer(acceptance, typed, AT, " * 2") is None  # its rest stays hidden
    assert [o for o, _ in outcomes(acceptance)] == ["dismissed", "hidden"]
    assert acceptance.summary()["session"]["hidden"] == 1


def test_default_threshold_gates_nothing_without_a_prior_or_history(tmp_path):
    acceptance = tracker(tmp_path, threshold=Settings().suggestion_threshold)
    hopeless = fake_result([("zz", -9.0)])  # as unsure as a random-weight model
    assert offer(acceptance, result=hopeless) is not None
    assert acceptance.gate().source == "none"


def test_history_replaces_the_prior(tmp_path):
    acceptance = tracker(tmp_path, threshold=0.5, prior=FAKE_PRIOR)
    store = acceptance.store()
    assert store is not None
    # Fake history where even unsure suggestions are taken: the prior would hide them.
    for n in range(120):
        store.add(event("accepted" if n % 4 else "dismissed", mean=-2.0 + (n % 7) * 0.01))
    acceptance._gate = None  # as at the next start
    unsure = fake_result([("y", -2.0)])
    assert offer(acceptance, shown="y", result=unsure) is not None
    assert acceptance.gate().source == "history"


# -- mmlsp stats -------------------------------------------------------------------------
def test_stats_prints_rates_by_group_and_plots(tmp_path):
    store = EventStore.in_dir(tmp_path)
    for n in range(10):
        store.add(event("accepted" if n < 3 else "overtaken", length=5 + 50 * n, latency_ms=80))
    store.add(event("hidden"))
    store.add(event("accepted", kind="next_edit", language="rust"))
    store.close()
    summary = summarize(EventStore.in_dir(tmp_path).events())
    assert summary["total"]["shown"] == 11 and summary["total"]["hidden"] == 1
    assert summary["kind"]["completion"]["acceptRate"] == 0.3
    assert summary["kind"]["next_edit"]["acceptRate"] == 1.0
    text = render(summary, "here")
    assert "accept rate 36%" in text and "shown rate 92%" in text
    assert "by latency" in text and "<100 ms" in text and "rust" in text
    out = io.StringIO()
    args = Namespace(delete=False, days=None, json=False, plot=tmp_path / "p.png")
    assert run_stats(args, Settings(cache_dir=str(tmp_path)), out) == 0
    assert "Suggestions recorded" in out.getvalue()
    from PIL import Image

    with Image.open(tmp_path / "p.png") as image:
        assert image.size[0] > 600 and image.getcolors(1 << 16)  # drawn, not blank
        assert len(image.getcolors(1 << 16)) > 2
    plot(summarize([]), tmp_path / "empty.png")  # no events: an empty chart, no error
    args = Namespace(delete=True, days=None, json=False, plot=None)
    assert run_stats(args, Settings(cache_dir=str(tmp_path)), out) == 0
    assert not (tmp_path / "acceptance.sqlite3").exists()


def test_whole_words_typed_before_moving_on_count_as_a_partial_accept(tmp_path):
    acceptance = tracker(tmp_path)
    offer(acceptance, shown="total + 1")
    acceptance.changed("u", DOC[:AT] + "total" + DOC[AT:])  # VS Code's accept-word
    acceptance.changed("u", DOC[:AT] + "total - 2" + DOC[AT:])
    offer(acceptance, shown="tot")
    acceptance.changed("u", DOC[:AT] + "to" + DOC[AT:])  # half a word, then elsewhere
    acceptance.changed("u", DOC[:AT] + "tx" + DOC[AT:])
    assert outcomes(acceptance) == [("partial", "typed"), ("overtaken", None)]


def test_a_store_deleted_under_a_running_server_starts_again(tmp_path):
    store = EventStore.in_dir(tmp_path)
    store.add(event())
    EventStore.in_dir(tmp_path).delete()  # mmlsp stats --delete, from another process
    store.add(event("hidden"))
    assert [e.outcome for e in EventStore.in_dir(tmp_path).events()] == ["hidden"]


def test_stats_says_what_is_wrong_with_a_bad_file_or_plot_path(tmp_path, capsys):
    (tmp_path / "acceptance.sqlite3").write_bytes(b"not a database at all" * 100)
    args = Namespace(delete=False, days=None, json=False, plot=None)
    assert run_stats(args, Settings(cache_dir=str(tmp_path)), io.StringIO()) == 1
    assert "cannot read" in capsys.readouterr().err
    good = tmp_path / "good"
    EventStore.in_dir(good).add(event())
    args = Namespace(delete=False, days=None, json=False, plot=tmp_path / "no" / "such" / "p.png")
    assert run_stats(args, Settings(cache_dir=str(good)), io.StringIO()) == 1
    assert "cannot write the plot" in capsys.readouterr().err


def test_a_broken_store_costs_no_suggestion(tmp_path):
    (tmp_path / "acceptance.sqlite3").write_bytes(b"not a database at all" * 100)
    acceptance = tracker(tmp_path)
    assert offer(acceptance) is not None
    acceptance.accepted([{"id": 1}])
    assert acceptance.summary()["session"]["store_errors"] >= 1


def test_the_builtin_models_prior_at_the_default_threshold_hides_only_the_hopeless():
    gate = Gate(Settings().model)
    assert gate.source == "benchmark prior"
    threshold = Settings().suggestion_threshold
    line = {"line_rest": 0.0, "line_start": 0.0}
    # Typical single-line suggestions of the built-in model on real code: shown.
    for mean, low in ((-0.1, -0.5), (-0.5, -2.0), (-1.5, -4.0)):
        chance = gate.probability("completion", "total += price", Confidence(mean, low), line)
        assert chance is not None and chance >= threshold
    # A long block written at random-model confidence: hidden.
    block = "\n".join(["x = foo(bar)"] * 20)
    chance = gate.probability("completion", block, Confidence(-6.0, -12.0), line)
    assert chance is not None and chance < threshold
    # Surer is likelier, longer is less likely.
    sure = gate.probability("completion", "x + 1", Confidence(-0.1, -0.3), line)
    unsure = gate.probability("completion", "x + 1", Confidence(-2.0, -3.0), line)
    longer = gate.probability("completion", "x + 1" * 30, Confidence(-0.1, -0.3), line)
    assert sure is not None and unsure is not None and longer is not None
    assert sure > unsure and sure > longer
