"""Work-done progress for the model-backed commands and actions, with cancel.

An explanation or a fix takes seconds to minutes on a CPU; without feedback the user
sees nothing happen. Each such piece of work gets a server-initiated progress token
(``window/workDoneProgress/create``), begins cancellable, reports the text the model
has written so far (throttled), and ends with its outcome. The user's cancel
(``window/workDoneProgress/cancel``) sets the work's cancel event, which the engine
checks after every token, so the model stops at once rather than finishing a reply
nobody wants. Clients without ``window.workDoneProgress`` get no progress; the work
still runs and can still be cancelled with ``$/cancelRequest``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from lsprotocol import types

from mmlsp.features.client import Client

log = logging.getLogger(__name__)

# How often partial text is reported: often enough to look alive, rarely enough to
# keep the client's notification area calm.
REPORT_EVERY_S = 0.5
# How long to wait for the client to accept a progress token before working without.
CREATE_TIMEOUT_S = 2.0
# The tail of the text written so far shown in a report.
PREVIEW_CHARS = 80


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The last words of ``text`` on one line, for a progress message."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return "…" + flat[-(limit - 1) :].lstrip()


class Work:
    """One piece of model-backed work as the user sees it; safe to report from any thread."""

    def __init__(
        self,
        title: str,
        send: Callable[[Any, Any], None] | None,
        token: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.cancel = threading.Event()
        self._send = send  # (token, value) -> None, thread safe; None: no progress shown
        self.token = token
        self._clock = clock
        self._last = float("-inf")
        self._words = 0

    def report(self, message: str, *, force: bool = False) -> None:
        if self._send is None:
            return
        now = self._clock()
        if not force and now - self._last < REPORT_EVERY_S:
            return
        self._last = now
        self._send(self.token, types.WorkDoneProgressReport(message=message, cancellable=True))

    def on_text(self, text: str) -> None:
        """The model's text so far (called from the generation thread after each token)."""
        self.report(f"writing: {preview(text)}" if text.strip() else "thinking…")

    def end(self, message: str) -> None:
        if self._send is not None:
            self._send(self.token, types.WorkDoneProgressEnd(message=message))
            self._send = None


class ProgressService:
    """Creates progress tokens with the client and routes its cancels to the work."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def start(self, title: str, message: str = "") -> Work:
        """Begin showing ``title``; returns the Work whose ``cancel`` the user can set."""
        if not self.client.capabilities.work_done_progress:
            return Work(title, None, None)
        token = f"mmlsp-work-{uuid.uuid4()}"
        try:
            await asyncio.wait_for(self.client.create_progress(token), CREATE_TIMEOUT_S)
        except Exception as exc:  # a client may refuse or never answer: work without
            log.debug("window/workDoneProgress/create failed: %r", exc)
            return Work(title, None, None)
        work = Work(title, self._send, token)
        self.client.on_progress_cancel(token, lambda: self._cancelled(work))
        begin = types.WorkDoneProgressBegin(title=title, message=message or None, cancellable=True)
        self.client.begin_progress(token, begin)
        return work

    def _send(self, token: Any, value: Any) -> None:
        if isinstance(value, types.WorkDoneProgressReport):
            self.client.report_progress(token, value)
        else:
            self.client.end_progress(token, value)

    @staticmethod
    def _cancelled(work: Work) -> None:
        log.info("%s: cancelled by the user", work.title)
        work.cancel.set()
