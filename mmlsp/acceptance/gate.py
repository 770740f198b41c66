"""Whether a suggestion is worth showing: its predicted chance of being accepted against
the ``suggestionThreshold`` setting.

The chance comes from a small logistic regression over the model's confidence in the
suggestion (mean and minimum token log-probability of what is shown), its length and
shape, its kind and where the cursor is:

* before the user has history, a **prior** fitted on the benchmarks (``bench/gating.py``:
  HumanEval-infilling and real-code holes, the chance that what is shown is right) for
  the models it was measured on; other models have no prior and are not gated until
  the user's own events teach one;
* once the store holds ``MIN_EVENTS`` settled suggestions of the current model (at
  least ``MIN_EACH`` accepted and as many not), a regression fitted **on the user's
  own events**, in process, by a few Newton steps with an L2 penalty (milliseconds
  for thousands of events), refitted every ``REFIT_EVERY`` new settlements.

A suggestion with no confidence (a backend that reports no log-probabilities) is
always shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mmlsp.acceptance.store import ACCEPTED, Event
from mmlsp.engine import GenerationResult

# A token's log-probability is floored here: one near-impossible token should not
# dominate the mean (and -inf has no place in a regression).
FLOOR = -20.0
MIN_EVENTS = 50
MIN_EACH = 5
REFIT_EVERY = 25
HISTORY_LIMIT = 5000

# Features of the regression fitted on the user's events. The prior uses a subset.
FEATURES = (
    "mean_logprob",
    "min_logprob",
    "log_length",
    "multiline",
    "next_edit",
    "line_rest",
    "line_start",
)


@dataclass(frozen=True)
class Confidence:
    """The model's confidence in what is shown: mean and minimum log-probability of the
    tokens that wrote it."""

    mean: float
    minimum: float


def confidence(result: GenerationResult | None, shown: str) -> Confidence | None:
    """The confidence of the tokens of ``result`` that wrote ``shown`` (found in the
    generated text: post-processing trims and cuts it, and a suggestion reused while
    the user types is a tail of it); None without log-probabilities."""
    if result is None or not result.token_logprobs or not shown:
        return None
    text, ends = result.text, result.token_ends
    at = text.find(shown)
    if at < 0:
        at = text.find(shown.strip())
    start, stop = (at, at + len(shown)) if at >= 0 else (0, len(shown))
    chosen: list[float] = []
    begin = 0
    for logprob, end in zip(result.token_logprobs, ends, strict=False):
        if end > start and begin < stop:
            chosen.append(max(FLOOR, logprob))
        begin = end
    if not chosen:
        chosen = [max(FLOOR, lp) for lp in result.token_logprobs]
    return Confidence(sum(chosen) / len(chosen), min(chosen))


def position_features(text: str, offset: int) -> dict[str, float]:
    """Where the cursor is: text right of it on its line, only indentation left of it."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    rest = text[offset : len(text) if line_end < 0 else line_end]
    return {
        "line_rest": float(bool(rest.strip())),
        "line_start": float(not text[line_start:offset].strip()),
    }


def features(
    kind: str, shown: str, conf: Confidence, position: dict[str, float]
) -> dict[str, float]:
    return {
        "mean_logprob": conf.mean,
        "min_logprob": conf.minimum,
        "log_length": math.log1p(len(shown)),
        "multiline": float("\n" in shown.rstrip("\n")),
        "next_edit": float(kind == "next_edit"),
        **position,
    }


def event_features(event: Event) -> dict[str, float] | None:
    if event.mean_logprob is None or event.min_logprob is None:
        return None
    return {
        "mean_logprob": event.mean_logprob,
        "min_logprob": event.min_logprob,
        "log_length": math.log1p(event.length),
        "multiline": float(event.lines > 1),
        "next_edit": float(event.kind == "next_edit"),
        "line_rest": float(event.features.get("line_rest", 0.0)),
        "line_start": float(event.features.get("line_start", 0.0)),
    }


@dataclass(frozen=True)
class Logistic:
    """P(accepted) = sigmoid(bias + Σ weight·(x - center)/scale) over named features."""

    names: tuple[str, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    trained_on: int = 0

    def probability(self, values: dict[str, float]) -> float:
        z = self.bias
        for name, c, s, w in zip(self.names, self.center, self.scale, self.weights, strict=True):
            z += w * (values.get(name, 0.0) - c) / s
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def fit(
    rows: Sequence[dict[str, float]],
    labels: Sequence[int],
    names: Sequence[str] = FEATURES,
    l2: float = 1.0,
    steps: int = 25,
) -> Logistic:
    """A logistic regression by Newton's method (IRLS) on standardized features, with an
    L2 penalty on the weights (not the bias), so that it is calibrated on ``rows``."""
    import numpy as np

    x = np.array([[row.get(n, 0.0) for n in names] for row in rows], dtype=float)
    y = np.array(labels, dtype=float)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - center) / scale])
    beta = np.zeros(z.shape[1])
    penalty = np.eye(z.shape[1]) * l2
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -60, 60)))
        gradient = z.T @ (p - y) + penalty @ beta
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty + np.eye(z.shape[1]) * 1e-9
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return Logistic(
        tuple(names),
        tuple(float(v) for v in center),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in beta[1:]),
        float(beta[0]),
        len(rows),
    )


# Priors fitted by ``python bench/gating.py`` (the chance that a shown completion is
# right, on HumanEval-infilling and real-code holes), per model. BENCHMARKS.md,
# "Confidence gating", has the runs and the curve.
PRIORS: dict[str, Logistic] = {
    # 158 holes with a suggestion (39 right), 2026-12-07.
    "builtin:gemma-3-270m": Logistic(
        names=("mean_logprob", "min_logprob", "log_length", "multiline"),
        center=(-0.6738, -2.1645, 3.4895, 0.3924),
        scale=(1.6801, 3.2648, 1.1405, 0.4883),
        weights=(1.9188, -0.0347, -0.6107, -0.5685),
        bias=-1.5618,
        trained_on=158,
    ),
}


class Gate:
    """The predicted chance of acceptance; the prior until the user's events suffice."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.prior = PRIORS.get(model)
        self.learned: Logistic | None = None
        self._settled_at_fit = 0

    @property
    def source(self) -> str:
        """Where the predictions come from: "history", "benchmark prior" or "none"."""
        return "history" if self.learned else "benchmark prior" if self.prior else "none"

    def probability(
        self, kind: str, shown: str, conf: Confidence | None, position: dict[str, float]
    ) -> float | None:
        """The chance that ``shown`` is accepted; None when there is nothing to predict
        from (no confidence, or no model for this kind yet)."""
        if conf is None:
            return None
        model = self.learned or (self.prior if kind == "completion" else None)
        if model is None:
            return None
        return model.probability(features(kind, shown, conf, position))

    def refit(self, events: Sequence[Event], settled: int, force: bool = False) -> bool:
        """Fit on ``events`` (the store's settled ones) when ``settled`` (a count of
        settlements) grew by ``REFIT_EVERY`` since the last fit, or when ``force``d;
        whether a new fit is in use."""
        if not force and settled - self._settled_at_fit < REFIT_EVERY:
            return False
        self._settled_at_fit = settled
        rows, labels = [], []
        for event in events:
            if event.model != self.model or (values := event_features(event)) is None:
                continue
            rows.append(values)
            labels.append(int(event.outcome in ACCEPTED))
        yes = sum(labels)
        if len(rows) < MIN_EVENTS or yes < MIN_EACH or len(rows) - yes < MIN_EACH:
            return False
        self.learned = fit(rows, labels)
        return True


def shows(probability: float | None, threshold: float) -> bool:
    """Whether a suggestion with this predicted chance is shown."""
    return probability is None or probability >= threshold
