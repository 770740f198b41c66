"""Loading the models as the user sees it: which models the settings ask for, the load
shown as work-done progress, and failures and warnings shown once.

The engine host does the loading itself, in the background (``engine/host.py``);
this module decides what to ask of it when the settings change, and turns its
progress and outcome into what the editor shows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.engine import EngineHost, LoadSpec, Status
from mmlsp.features.client import Client

log = logging.getLogger(__name__)

# (message, level): show a message in the editor unless it was shown before.
NotifyOnce = Callable[[str, int], None]


class ModelLoading:
    """Asks the host for the models the settings name, and shows how it goes."""

    def __init__(self, host: EngineHost, client: Client, notify_once: NotifyOnce) -> None:
        self.host = host
        self.client = client
        self.notify_once = notify_once
        # A remote backend's failures (server down, 401, 404...) are shown once each.
        host.on_backend_error = lambda message: notify_once(message, logging.ERROR)

    def load(self, settings: Settings) -> None:
        """Load (or keep) the main model and, when chatModel names another, the chat model."""
        self.load_main(settings)
        self.load_chat(settings)
        self.load_vision(settings)

    def load_chat(self, s: Settings) -> None:
        """Load a separate chat model only when chatModel names another model."""
        other = s.chat_model if s.chat_model not in ("", s.model) else None
        spec = LoadSpec.from_settings(s, model=other, fim_template="none") if other else None

        def done(status: Status) -> None:
            if status.state == "failed":
                self.client.notify_user(
                    f"chat model {status.model!r} failed to load: {status.message}"
                )
            elif status.warning:
                self.notify_once(status.warning, logging.WARNING)

        self.host.load_chat(spec, lambda message, _pct: log.info("chat model: %s", message), done)

    def load_vision(self, s: Settings) -> None:
        """Load the vision-language model while visionModel names one; else hold none."""
        spec = (
            LoadSpec.from_settings(s, model=s.vision_model, fim_template="none")
            if s.vision_model
            else None
        )

        def done(status: Status) -> None:
            if status.state == "failed":
                self.client.notify_user(
                    f"vision model {status.model!r} failed to load: {status.message}"
                )
            elif status.warning:
                self.notify_once(status.warning, logging.WARNING)

        self.host.load_vision(
            spec, lambda message, _pct: log.info("vision model: %s", message), done
        )

    def load_main(self, s: Settings) -> None:
        token = f"mmlsp-load-{uuid.uuid4()}"
        shown = self.client.capabilities.work_done_progress

        def progress(message: str, percentage: int | None) -> None:
            log.info("model: %s", message)
            if shown:
                report = types.WorkDoneProgressReport(message=message, percentage=percentage)
                self.client.report_progress(token, report)

        def done(status: Status) -> None:
            if shown:
                self.client.end_progress(token, types.WorkDoneProgressEnd(message=status.message))
            if status.state == "failed":
                self.client.notify_user(f"model {status.model!r} failed to load: {status.message}")
                return
            log.info(
                "model %s ready on %s (%s, %s backend, %s decode, template %s: %s) in %ss",
                status.model,
                status.device,
                status.dtype,
                status.backend,
                status.decode,
                status.template,
                status.template_source,
                status.load_seconds,
            )
            if status.warning:
                self.notify_once(status.warning, logging.WARNING)

        if not self.host.load(LoadSpec.from_settings(s), progress, done):
            return
        if shown:
            begin = types.WorkDoneProgressBegin(
                title="mmlsp: loading model", message=s.model, percentage=0, cancellable=False
            )
            self.client.announce_progress(token, begin)
