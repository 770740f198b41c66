"""The local record of suggestions and what became of them, in SQLite (Python's own
``sqlite3``) at ``<cacheDir>/acceptance.sqlite3``.

One row per suggestion the server answered with: its kind (inline ``completion`` or
``next_edit``), language, length, lines, latency, the model's confidence in it (mean
and minimum token log-probability), the gate's predicted chance of acceptance, a few
position features, and its outcome: ``pending`` until it is ``accepted`` (whole),
``partial`` (by word or line), ``dismissed`` (the user moved on without editing),
``overtaken`` (the user typed something else), ``hidden`` (the gate did not show it),
or ``empty`` (nothing to show: counted for the shown rate). No code and no file names
are stored, and nothing is ever sent anywhere.

Retention: rows older than ``retention_days`` and the oldest beyond ``max_events``
are deleted when the store opens and every ``PRUNE_EVERY`` rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

FILE_NAME = "acceptance.sqlite3"
MAX_EVENTS = 100_000
PRUNE_EVERY = 500

Kind = Literal["completion", "next_edit"]
Outcome = Literal["pending", "accepted", "partial", "dismissed", "overtaken", "hidden", "empty"]
# Outcomes of a suggestion that was shown and is settled: what the gate learns from.
SETTLED = ("accepted", "partial", "dismissed", "overtaken")
ACCEPTED = ("accepted", "partial")
SHOWN = ("pending", *SETTLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    language TEXT NOT NULL,
    model TEXT NOT NULL,
    length INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    latency_ms REAL,
    mean_logprob REAL,
    min_logprob REAL,
    probability REAL,
    features TEXT NOT NULL DEFAULT '{}',
    outcome TEXT NOT NULL,
    how TEXT,
    accepted_chars INTEGER NOT NULL DEFAULT 0,
    resolved_ts REAL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""


@dataclass
class Event:
    """One suggestion as recorded (``outcome`` and ``how`` change as it settles)."""

    kind: Kind
    language: str
    model: str
    length: int
    lines: int
    latency_ms: float | None
    mean_logprob: float | None
    min_logprob: float | None
    probability: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    outcome: Outcome = "pending"
    how: str | None = None
    accepted_chars: int = 0
    ts: float = field(default_factory=time.time)
    resolved_ts: float | None = None
    id: int | None = None


class EventStore:
    """The SQLite file of events; opened on first use, created with its folder."""

    def __init__(self, path: Path, retention_days: int = 90, max_events: int = MAX_EVENTS) -> None:
        self.path = path
        self.retention_days = retention_days
        self.max_events = max_events
        self._db: sqlite3.Connection | None = None
        self._since_prune = 0

    @classmethod
    def in_dir(cls, cache_dir: str | Path, retention_days: int = 90) -> EventStore:
        return cls(Path(cache_dir).expanduser() / FILE_NAME, retention_days)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is not None and not self.path.exists():
            self.close()  # deleted under us (``mmlsp stats --delete``): start a new one
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
            self.prune()
        return self._db

    # -- writing -------------------------------------------------------------------------
    def add(self, event: Event) -> int:
        row = asdict(event)
        row.pop("id")
        row["features"] = json.dumps(event.features, sort_keys=True)
        names = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        cursor = self.db.execute(f"INSERT INTO events ({names}) VALUES ({marks})", row)
        event.id = int(cursor.lastrowid or 0)
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self.prune()
        return event.id

    def settle(
        self, event_id: int, outcome: Outcome, how: str | None = None, accepted_chars: int = 0
    ) -> None:
        self.db.execute(
            "UPDATE events SET outcome = ?, how = ?, accepted_chars = ?, resolved_ts = ? "
            "WHERE id = ?",
            (outcome, how, accepted_chars, time.time(), event_id),
        )

    def prune(self, now: float | None = None) -> int:
        """Delete rows past the retention limits; how many went."""
        self._since_prune = 0
        cutoff = (now if now is not None else time.time()) - self.retention_days * 86400
        db = self.db
        gone = db.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
        gone += db.execute(
            "DELETE FROM events WHERE id NOT IN (SELECT id FROM events ORDER BY id DESC LIMIT ?)",
            (self.max_events,),
        ).rowcount
        return gone

    def delete(self) -> bool:
        """Delete every event: the file itself (and SQLite's side files). Whether
        there was one."""
        self.close()
        existed = self.path.exists()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()
        return existed

    def close(self) -> None:
        if self._db is not None:
            with suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    # -- reading -------------------------------------------------------------------------
    def events(self, since: float | None = None, limit: int | None = None) -> list[Event]:
        """Events, oldest first (``limit``: the newest that many)."""
        query = "SELECT * FROM events"
        params: list[Any] = []
        if since is not None:
            query += " WHERE ts >= ?"
            params.append(since)
        query += " ORDER BY id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        return list(reversed([_event(row) for row in self.db.execute(query, params)]))

    def settled(self, limit: int = 5000) -> list[Event]:
        """The newest shown and settled events with a confidence: what the gate learns from."""
        marks = ", ".join("?" for _ in SETTLED)
        rows = self.db.execute(
            f"SELECT * FROM events WHERE outcome IN ({marks}) AND mean_logprob IS NOT NULL "
            "ORDER BY id DESC LIMIT ?",
            (*SETTLED, limit),
        )
        return list(reversed([_event(row) for row in rows]))

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())


def _event(row: sqlite3.Row) -> Event:
    values = dict(row)
    try:
        values["features"] = json.loads(values["features"] or "{}")
    except ValueError:
        values["features"] = {}
    return Event(**values)
