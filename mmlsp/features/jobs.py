"""One generation in flight for one document state, and how requests share it.

This module owns ``Job``: the generation the completion feature started for a
document at one cursor (what was before and after it, the raw text generated so far,
its cancel event and task), ``Job.wait``, by which requests await it (the last
request to go away stops it, unless an edit typed what it had produced or it is the
speculative next suggestion), ``Job.typed_into``, what an edit typed at its cursor,
and ``consume_error``, which logs the failure of a background task nobody awaits.
The feature (``features.completion``) decides when to start, adopt or stop a job.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmlsp.engine import EngineError, GenerationResult
from mmlsp.features.typeahead import typed_since

if TYPE_CHECKING:
    from mmlsp.features.completion import Suggestion

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One generation for one document state, which later requests may adopt."""

    uri: str
    before: str  # document text before the cursor it completes
    after: str
    cancel: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Future[Suggestion | None] | None = None
    partial: str = ""  # raw text generated so far (written by the generation thread)
    waiters: int = 0
    # An edit typed what it had produced: a request cancelled meanwhile must not stop it.
    adoptable: bool = False
    speculative: bool = False
    result: GenerationResult | None = None  # the model's work, even with no suggestion
    empty_reason: str | None = None  # why it gave no suggestion (Outcome.empty_reason)

    async def wait(self) -> Suggestion | None:
        """Await the job; when the last request waiting for it goes away, stop it."""
        assert self.task is not None
        self.waiters += 1
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.waiters == 1 and not (self.adoptable or self.speculative):
                self.cancel.set()
            raise
        finally:
            self.waiters -= 1

    def typed_into(self, text: str) -> str | None:
        """What an edit typed at the job's cursor, or None for any other edit."""
        cut = len(text) - len(self.after)
        if cut < len(self.before):
            return None
        return typed_since(self.before, self.after, text[:cut], text[cut:])


def consume_error(task: asyncio.Future[Any]) -> None:
    # A job nobody waits for any more may still fail; log it instead of asyncio's warning.
    if not task.cancelled() and (exc := task.exception()) is not None:
        if isinstance(exc, EngineError):
            log.debug("background completion failed: %s", exc)
        else:
            log.error("background completion failed", exc_info=exc)
