"""Adaptive debounce: how long a completion request waits before it calls the model.

This module owns ``TypingPace``, per document: the typing speed (a moving average
of the gaps between edits), whether the last edits were a run of deletions, the
model's recent latency, and how often recent requests were superseded before they
were answered. A request waits only when another keystroke is likely to supersede
it before the model could answer: while the user types faster than the model
answers, for about one keystroke gap; during a backspace burst, longer (no firing
on runs of backspaces). When recent requests were answered rather than superseded,
the user is waiting for suggestions, and waiting would only add to each one.
Pure: times are passed in, in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmlsp.config import TYPING_PAUSE_S

# Moving-average weight of the newest observation.
ALPHA = 0.3
# Deletions in a row that make a backspace burst.
BURST = 2
# Below this share of recent requests superseded, requests never wait (outside bursts).
SUPERSEDED_SHARE = 0.5


def moving_average(average: float | None, value: float) -> float:
    """``average`` moved towards ``value`` by ``ALPHA``; the first value starts it."""
    return value if average is None else (1 - ALPHA) * average + ALPHA * value


@dataclass
class TypingPace:
    gap_s: float | None = None  # average gap between edits while typing
    latency_s: float | None = None  # average model-call latency
    last_edit: float | None = None
    deletions_in_row: int = 0
    # Moving average of 1 (superseded before its answer) and 0 (answered) per request.
    superseded: float | None = None

    def edit(self, now: float, deleted: bool) -> None:
        """Record one document change (``deleted``: it removed text and inserted none)."""
        if self.last_edit is not None and (gap := now - self.last_edit) < TYPING_PAUSE_S:
            self.gap_s = moving_average(self.gap_s, gap)
        self.last_edit = now
        self.deletions_in_row = self.deletions_in_row + 1 if deleted else 0

    def model_latency(self, seconds: float) -> None:
        self.latency_s = moving_average(self.latency_s, seconds)

    def request_ended(self, superseded: bool) -> None:
        """Record whether a request was superseded (a newer keystroke, a cancel) or answered."""
        self.superseded = moving_average(self.superseded, 1.0 if superseded else 0.0)

    def delay(self, now: float, max_s: float) -> float:
        """Seconds to wait before calling the model (0: call it now)."""
        if max_s <= 0 or self.gap_s is None or self.last_edit is None:
            return 0.0
        if now - self.last_edit >= TYPING_PAUSE_S:
            return 0.0  # the user stopped typing: answer at once
        if self.deletions_in_row >= BURST:
            return max_s
        if self.superseded is not None and self.superseded < SUPERSEDED_SHARE:
            return 0.0  # the user waits for answers: a wait would only delay them
        if self.latency_s is not None and self.gap_s >= self.latency_s:
            return 0.0  # the model answers before the next keystroke anyway
        return min(max_s, 1.3 * self.gap_s)
