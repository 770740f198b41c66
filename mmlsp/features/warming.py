"""Warm-ups: background prefills of a document's prompt before its first request.

This module owns ``Warmups``: at most one warm-up per document, which prefills the
prompt at a cursor (one generated token) so that the document's first suggestion
reuses the KV cache instead of starting with a multi-second prefill, as llama.vim
warms its server's cache. A warm-up is background work that gives way to requests
the user waits for (``EngineHost.generate``); any request stops all of them, keeping
what they prefilled, and closing a document stops its own. The completion feature
(``features.completion``) decides when a document is worth warming.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from mmlsp.complete import complete, warm_offset
from mmlsp.config import Settings
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.engine import EngineHost
from mmlsp.features.jobs import consume_error
from mmlsp.syntax import SyntaxDocument

# A warm-up may take its time: it runs while the user is not waiting for anything.
WARM_BUDGET_MS = 60_000


class Warmups:
    """The warm-ups running, one per document at most."""

    def __init__(
        self,
        host: EngineHost,
        syntax: Callable[[str], SyntaxDocument | None],
        workspace: WorkspaceIndex | None,
        counts: Counter[str],
    ) -> None:
        self.host = host
        self.syntax = syntax
        self.workspace = workspace
        self.counts = counts  # the feature's counters: warm-ups started, tokens prefilled
        self.running: dict[str, threading.Event] = {}

    def start(self, uri: str, text: str, offset: int | None, settings: Settings) -> bool:
        """Prefill the prompt at ``offset`` (None: ``warm_offset``) in the background,
        replacing the document's running warm-up. Only for engines that keep
        per-document caches, with ``kvReuse`` on, while no generation is in flight;
        returns whether it started."""
        engine = self.host.engine
        if engine is None or not settings.kv_reuse:
            return False
        if not engine.keeps_prompt_caches or self.host.status.in_flight:
            return False
        if len(text.encode("utf-8", "surrogatepass")) > settings.max_file_bytes:
            return False
        if offset is None:
            offset = warm_offset(text, settings, engine.count_tokens)
        self.stop(uri)
        cancel = self.running[uri] = threading.Event()
        budget = replace(settings, time_budget_ms=max(settings.time_budget_ms, WARM_BUDGET_MS))

        async def run() -> None:
            try:
                outcome = await complete(
                    text,
                    offset,
                    budget,
                    self.host,
                    cancel,
                    cache_key=uri,
                    syntax_doc=self.syntax(uri),
                    workspace=self.workspace,
                    uri=uri,
                    warm_up=True,
                )
                if outcome.result is not None:
                    self.counts["warmed_tokens"] += outcome.result.prefilled_tokens
            finally:
                if self.running.get(uri) is cancel:
                    del self.running[uri]

        self.counts["warmups"] += 1
        asyncio.ensure_future(run()).add_done_callback(consume_error)
        return True

    def stop(self, uri: str) -> None:
        """Stop the document's warm-up, if one runs."""
        if (cancel := self.running.pop(uri, None)) is not None:
            cancel.set()

    def stop_all(self) -> None:
        """Stop every warm-up (a request came: the user is waiting now)."""
        for cancel in self.running.values():
            cancel.set()
