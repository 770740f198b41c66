"""What ``mmlsp stats`` prints and plots from the local events: accept rate by kind,
language, length, latency and confidence, and the shown rate (of the suggestions the
model wrote, the share the gate let through).

Accept rate = suggestions accepted (whole or in part) / suggestions shown and settled
(accepted, partly accepted, dismissed or overtaken); pending ones are not counted.
The plot is drawn with matplotlib when it is installed, else with Pillow.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlsp.acceptance.store import ACCEPTED, SETTLED, Event

LENGTHS = ((10, "1-10 chars"), (30, "11-30"), (80, "31-80"), (200, "81-200"), (None, ">200"))
LATENCIES = (
    (100, "<100 ms"),
    (300, "100-300 ms"),
    (1000, "0.3-1 s"),
    (3000, "1-3 s"),
    (None, ">3 s"),
)
CONFIDENCES = (
    (-1.0, "mean logprob < -1"),
    (-0.3, "-1 .. -0.3"),
    (-0.1, "-0.3 .. -0.1"),
    (None, ">= -0.1"),
)


@dataclass
class Tally:
    """Counts for one group of events."""

    shown: int = 0
    settled: int = 0
    accepted: int = 0
    whole: int = 0
    partial: int = 0
    dismissed: int = 0
    overtaken: int = 0
    hidden: int = 0

    def add(self, event: Event) -> None:
        if event.outcome == "hidden":
            self.hidden += 1
            return
        if event.outcome == "empty":
            return
        self.shown += 1
        if event.outcome in SETTLED:
            self.settled += 1
        if event.outcome in ACCEPTED:
            self.accepted += 1
        if event.outcome == "accepted":
            self.whole += 1
        elif event.outcome == "partial":
            self.partial += 1
        elif event.outcome == "dismissed":
            self.dismissed += 1
        elif event.outcome == "overtaken":
            self.overtaken += 1

    @property
    def accept_rate(self) -> float | None:
        return self.accepted / self.settled if self.settled else None

    @property
    def shown_rate(self) -> float | None:
        total = self.shown + self.hidden
        return self.shown / total if total else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "acceptRate": _round(self.accept_rate),
            "shownRate": _round(self.shown_rate),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _bucket(value: float | None, edges: Sequence[tuple[float | None, str]]) -> str:
    if value is None:
        return "unknown"
    for edge, label in edges:
        if edge is None or value <= edge:
            return label
    return edges[-1][1]


GROUPS: dict[str, Callable[[Event], str]] = {
    "kind": lambda e: e.kind,
    "language": lambda e: e.language,
    "length": lambda e: _bucket(e.length, LENGTHS),
    "latency": lambda e: _bucket(e.latency_ms, LATENCIES),
    "confidence": lambda e: _bucket(e.mean_logprob, CONFIDENCES),
}
ORDER = {
    "length": [label for _, label in LENGTHS],
    "latency": [label for _, label in LATENCIES],
    "confidence": [label for _, label in CONFIDENCES],
}


def summarize(events: Iterable[Event]) -> dict[str, Any]:
    """Tallies overall and per group (``GROUPS``)."""
    total = Tally()
    groups: dict[str, dict[str, Tally]] = {name: {} for name in GROUPS}
    count = 0
    first = last = None
    for event in events:
        count += 1
        first = event.ts if first is None else min(first, event.ts)
        last = event.ts if last is None else max(last, event.ts)
        total.add(event)
        for name, key in GROUPS.items():
            groups[name].setdefault(key(event), Tally()).add(event)
    ordered: dict[str, dict[str, Any]] = {}
    for name, table in groups.items():
        order = ORDER.get(name)
        keys = sorted(table, key=lambda k: (order.index(k) if order and k in order else 99, k))
        ordered[name] = {k: table[k].as_dict() for k in keys}
    return {"events": count, "from": first, "to": last, "total": total.as_dict(), **ordered}


def render(summary: dict[str, Any], where: str) -> str:
    """The summary as plain-text tables."""
    total = summary["total"]
    if not summary["events"]:
        return f"No suggestions recorded yet ({where})."
    lines = [
        f"Suggestions recorded in {where}: {summary['events']}",
        f"shown {total['shown']}, hidden by the gate {total['hidden']} "
        f"(shown rate {_percent(total['shownRate'])}); accepted {total['whole']} whole and "
        f"{total['partial']} in part, dismissed {total['dismissed']}, overtaken "
        f"{total['overtaken']} (accept rate {_percent(total['acceptRate'])})",
    ]
    for name in GROUPS:
        lines += ["", f"{'by ' + name:<22} {'shown':>6} {'accepted':>9} {'accept rate':>12}"]
        for key, row in summary[name].items():
            lines.append(
                f"  {key:<20} {row['shown']:>6} {row['accepted']:>9} "
                f"{_percent(row['acceptRate']):>12}"
            )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2)


# -- the plot ---------------------------------------------------------------------------
PANELS = ("length", "latency", "confidence", "kind")


def plot(summary: dict[str, Any], path: Path) -> str:
    """Accept rate by length, latency, confidence and kind as bar charts in a PNG; the
    library that drew it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _plot_pillow(summary, path)
        return "Pillow"
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.6))
    for ax, name in zip(axes, PANELS, strict=True):
        keys, rates, shown = _panel(summary, name)
        ax.bar(range(len(keys)), rates, color="#4c78a8")
        ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"accept rate by {name}", fontsize=10)
        for x, (rate, n) in enumerate(zip(rates, shown, strict=True)):
            ax.text(x, rate + 0.02, f"n={n}", ha="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return "matplotlib"


def _panel(summary: dict[str, Any], name: str) -> tuple[list[str], list[float], list[int]]:
    rows = summary[name]
    keys = list(rows)
    rates = [rows[k]["acceptRate"] or 0.0 for k in keys]
    return keys, rates, [rows[k]["settled"] for k in keys]


def _plot_pillow(summary: dict[str, Any], path: Path) -> None:
    from PIL import Image, ImageDraw

    panel_w, height, margin = 300, 320, 40
    image = Image.new("RGB", (panel_w * len(PANELS), height), "white")
    draw = ImageDraw.Draw(image)
    top, bottom = 30, height - 90
    for p, name in enumerate(PANELS):
        left = p * panel_w + margin
        right = (p + 1) * panel_w - 10
        draw.text((left, 8), f"accept rate by {name}", fill="black")
        draw.line((left, bottom, right, bottom), fill="black")
        draw.line((left, top, left, bottom), fill="black")
        for tick in (0.0, 0.5, 1.0):
            y = bottom - tick * (bottom - top)
            draw.text((left - 30, y - 6), f"{tick:.1f}", fill="black")
        keys, rates, shown = _panel(summary, name)
        if not keys:
            continue
        slot = (right - left) / len(keys)
        for i, (key, rate, n) in enumerate(zip(keys, rates, shown, strict=True)):
            x0 = left + i * slot + slot * 0.15
            x1 = left + (i + 1) * slot - slot * 0.15
            y = bottom - rate * (bottom - top)
            draw.rectangle((x0, y, x1, bottom), fill=(76, 120, 168))
            draw.text((x0, y - 12), f"n={n}", fill="black")
            for line, part in enumerate(_wrap(key, 9)):
                draw.text((x0, bottom + 4 + 11 * line), part, fill="black")
    image.save(path, format="PNG")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line][:6]
