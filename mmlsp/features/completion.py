"""The completion feature: inline completion and the completion fallback, per document.

The path from a document and a cursor to one cleaned suggestion is the pipeline's
(``mmlsp.complete``). This module owns ``Completions``, the server's per-document
completion state that avoids model calls where it can:

* typed-ahead reuse (``typeahead.TypeaheadCache``): a suggestion the user is typing
  is answered with its rest, at once; backspace-and-retype too;
* in-flight reuse: an edit that types what the running generation has produced
  so far keeps it running, and the next request takes its answer;
* speculative next suggestion: when the document comes to contain a whole
  suggestion (accepted), the one after it is computed in the background;
* adaptive debounce (``debounce.TypingPace``) before a model call;
* the newest request for a document supersedes the ones before it;

and the conversion of a suggestion to LSP items (``inline_items``,
``completion_items``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lsprotocol import types

from mmlsp.complete import complete, replace_chars_at
from mmlsp.config import Settings
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.engine import EngineHost, GenerationResult
from mmlsp.features.debounce import TypingPace
from mmlsp.features.jobs import Job, consume_error
from mmlsp.features.typeahead import Entry, TypeaheadCache, remainder, typed_since
from mmlsp.features.warming import Warmups
from mmlsp.syntax import SyntaxDocument
from mmlsp.text.positions import offset_at

Source = Literal["model", "typeahead", "inflight", "speculative"]


@dataclass(frozen=True)
class Suggestion:
    text: str
    # The generation it came from (for typed-ahead hits: None, no model call).
    result: GenerationResult | None
    source: Source = "model"
    # Characters right of the cursor it replaces: brackets and quotes the editor
    # auto-closed that the suggestion writes itself (``postprocess.replace_suffix_chars``).
    replace_chars: int = 0


# How many recent requests ``Completions.stats`` reports, for the latency benchmark.
RECENT = 1024
# Outcomes of the requests the user waited for: those whose answer reached the screen
# (or would have, had it not been empty). The rest were overtaken by further typing.
ANSWERED = ("model", "empty", "typeahead", "inflight", "speculative")
# Request outcomes that tell the debounce whether the user typed on before the answer
# (True) or had it (False). Typed-ahead answers are instant: they tell neither.
SUPERSEDED = {
    "superseded": True,
    "debounced": True,
    "cancelled": True,
    "model": False,
    "empty": False,
    "inflight": False,
    "speculative": False,
}


class Completions:
    """The server's completion state per document; the server hands it requests and edits."""

    def __init__(
        self,
        host: EngineHost,
        syntax: Callable[[str], SyntaxDocument | None] | None = None,
        workspace: WorkspaceIndex | None = None,
    ) -> None:
        self.host = host
        # The document's syntax tree by URI (the server's SyntaxStore.get), for the
        # tree-sitter shape decision and parse check; the index, for cross-file context.
        self.syntax = syntax or (lambda _uri: None)
        self.workspace = workspace
        self.typeahead = TypeaheadCache()
        self.jobs: dict[str, Job] = {}
        self.paces: dict[str, TypingPace] = {}
        self.latest: dict[str, int] = {}  # newest request number per document
        self.lengths: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        # Requests the user waited for (not superseded): shown or empty, and why empty.
        self.pauses: Counter[str] = Counter()
        self.empty_reasons: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._numbers = itertools.count(1)
        # Background prefills of a document's prompt (``warm``), one per document.
        self.warmups = Warmups(host, self.syntax, workspace, self.counts)
        self.requested_at: dict[str, float] = {}  # when each document's last request came

    def _pace(self, uri: str) -> TypingPace:
        """The document's typing pace, started on its first use."""
        if (pace := self.paces.get(uri)) is None:
            pace = self.paces[uri] = TypingPace()
        return pace

    # -- document events ----------------------------------------------------------
    def changed(self, uri: str, text: str, settings: Settings) -> None:
        """After an edit: track typing pace, keep or stop the running generation, and
        start the next suggestion when the edit accepted the one shown."""
        old_length = self.lengths.get(uri, len(text))
        self.lengths[uri] = len(text)
        self._pace(uri).edit(time.monotonic(), len(text) < old_length)
        if (job := self.jobs.get(uri)) is not None:
            typed = job.typed_into(text) if settings.typeahead else None
            if typed is not None and job.partial.startswith(typed):
                job.adoptable = True  # the user is typing what it generates: let it run
            else:
                self._stop(job)
        if settings.typeahead and (entry := self.typeahead.accepted(uri, text)) is not None:
            self._start(uri, text, len(entry.before) + len(entry.text), settings, True)

    def closed(self, uri: str) -> None:
        if (job := self.jobs.get(uri)) is not None:
            self._stop(job)
        self.warmups.stop(uri)
        for table in (self.paces, self.latest, self.lengths, self.requested_at):
            table.pop(uri, None)
        self.typeahead.forget(uri)
        self.host.forget(uri)

    # -- warming ---------------------------------------------------------------------
    def warm(
        self,
        uri: str,
        text: str,
        offset: int | None,
        settings: Settings,
        since: float = float("-inf"),
    ) -> bool:
        """Prefill the prompt at ``offset`` (None: ``warm_offset``) in the background, so
        that the first suggestion in a newly opened (or long untouched) document reuses
        its KV cache instead of starting with a multi-second prefill (as llama.vim warms
        its server's cache). Any real request stops it at once, keeping what it has
        prefilled. Not when a request came after ``since`` (the cache is as warm as a
        request makes it). Only for engines that keep per-document caches; returns
        whether it started."""
        if uri in self.jobs or self.requested_at.get(uri, float("-inf")) >= since:
            return False
        return self.warmups.start(uri, text, offset, settings)

    # -- requests -------------------------------------------------------------------
    async def suggestion_at(
        self, uri: str, text: str, position: types.Position, settings: Settings
    ) -> Suggestion | None:
        """The suggestion for a request; the newest request for a document wins."""
        number = next(self._numbers)
        self.latest[uri] = number
        self.requested_at[uri] = time.monotonic()
        self.lengths.setdefault(uri, len(text))
        started = time.monotonic()
        offset = offset_at(text, position.line, position.character)
        before, after = text[:offset], text[offset:]
        suggestion: Suggestion | None = None
        outcome, work = "none", None
        reason: str | None = "error"
        try:
            suggestion, outcome, work, reason = await self._answer(
                uri, text, offset, settings, number
            )
        except asyncio.CancelledError:
            # By the client: typically the user typed on. Not an error in the records.
            outcome, reason = "cancelled", "cancelled by the client"
            raise
        finally:
            self.counts[outcome] += 1
            if outcome in ANSWERED:  # the user waited for this one: a pause in typing
                self.pauses["shown" if suggestion is not None else "empty"] += 1
                if suggestion is None:
                    self.empty_reasons[reason or "unknown"] += 1
            if (superseded := SUPERSEDED.get(outcome)) is not None:
                self._pace(uri).request_ended(superseded)
            result = suggestion.result if suggestion is not None else work
            self.recent.append(
                {
                    "line": position.line,
                    "character": position.character,
                    "outcome": outcome,
                    "ms": round((time.monotonic() - started) * 1000, 2),
                    "prefilled": result.prefilled_tokens if result else None,
                    "reused": result.reused_tokens if result else None,
                    "prompt_tokens": result.prompt_tokens if result else None,
                    "generated": result.generated_tokens if result else None,
                    "length": len(before) + len(after),
                    "reason": reason if suggestion is None else None,
                }
            )
        return suggestion

    async def _answer(
        self, uri: str, text: str, offset: int, settings: Settings, number: int
    ) -> tuple[Suggestion | None, str, GenerationResult | None, str | None]:
        """The suggestion, how it was found (the ``recent`` outcome), the model's work
        behind it (for an empty answer too, so the records count every call), and why
        there is no suggestion when there is none."""
        before, after = text[:offset], text[offset:]
        if settings.typeahead and (rest := self.typeahead.lookup(uri, before, after)):
            replace = replace_chars_at(text, offset, rest, self.syntax(uri))
            return Suggestion(rest, None, "typeahead", replace), "typeahead", None, None
        if (job := self.jobs.get(uri)) is not None:
            if typed_since(job.before, job.after, before, after) is not None:
                adopted = await job.wait()
                if self.latest.get(uri) != number:
                    return None, "superseded", None, "superseded"
                if adopted is not None:
                    entry = Entry(job.before, job.after, adopted.text)
                    if (rest := remainder(entry, before, after)) is not None:
                        source: Source = "speculative" if job.speculative else "inflight"
                        replace = replace_chars_at(text, offset, rest, self.syntax(uri))
                        return Suggestion(rest, adopted.result, source, replace), source, None, None
            else:
                self._stop(job)  # computed for another place: no longer wanted
        pace = self._pace(uri)
        if (delay := pace.delay(time.monotonic(), settings.debounce_max_ms / 1000)) > 0:
            await asyncio.sleep(delay)
            if self.latest.get(uri) != number:
                return None, "debounced", None, "debounced"
        if (job := self.jobs.get(uri)) is not None:
            self._stop(job)
        job = self._start(uri, text, offset, settings, False)
        suggestion = await job.wait()
        if self.latest.get(uri) != number:
            return None, "superseded", None, "superseded"
        if suggestion is None:
            return None, "empty", job.result, job.empty_reason
        return suggestion, "model", job.result, None

    # -- jobs ---------------------------------------------------------------------------
    def _start(
        self, uri: str, text: str, offset: int, settings: Settings, speculative: bool
    ) -> Job:
        if (old := self.jobs.get(uri)) is not None:
            self._stop(old)
        self.warmups.stop_all()  # the user is waiting now; what was prefilled is kept
        job = Job(uri, text[:offset], text[offset:], speculative=speculative)
        job.task = asyncio.ensure_future(self._run(job, text, offset, settings))
        job.task.add_done_callback(consume_error)
        self.jobs[uri] = job
        self.counts["speculative_started" if speculative else "model_calls"] += 1
        return job

    async def _run(self, job: Job, text: str, offset: int, settings: Settings) -> Suggestion | None:
        def seen(generated: str) -> None:
            job.partial = generated

        syntax_doc = self.syntax(job.uri)
        try:
            outcome = await complete(
                text,
                offset,
                settings,
                self.host,
                job.cancel,
                cache_key=job.uri,
                on_text=seen,
                syntax_doc=syntax_doc,
                workspace=self.workspace,
                uri=job.uri,
            )
        finally:
            if self.jobs.get(job.uri) is job:
                del self.jobs[job.uri]
        completion, result = outcome.completion, outcome.result
        job.result, job.empty_reason = result, outcome.empty_reason
        if result is not None and result.finish_reason != "cancelled":
            self._pace(job.uri).model_latency(result.seconds)
        if completion is None or result is None:
            return None
        if settings.typeahead:
            self.typeahead.add(job.uri, job.before, job.after, completion.text)
        source: Source = "speculative" if job.speculative else "model"
        return Suggestion(completion.text, result, source, completion.replace_chars)

    def _stop(self, job: Job) -> None:
        job.cancel.set()
        if self.jobs.get(job.uri) is job:
            del self.jobs[job.uri]

    def stats(self) -> dict[str, Any]:
        """Counters and recent requests, for ``mmlsp/status`` and the benchmark."""
        cache = self.host.cache_usage()
        return {
            "counts": dict(self.counts),
            "pauses": dict(self.pauses),
            "shownRate": (
                round(self.pauses["shown"] / total, 3)
                if (total := self.pauses["shown"] + self.pauses["empty"])
                else None
            ),
            "emptyReasons": dict(self.empty_reasons),
            "activeJobs": len(self.jobs),
            "typeaheadEntries": len(self.typeahead),
            "typeaheadChars": self.typeahead.chars,
            "kvCacheEntries": cache.entries,
            "kvCacheBytes": cache.nbytes,
            "recent": list(self.recent),
        }


def valid_position(text: str, position: types.Position) -> bool:
    """Whether ``position`` names a line that exists; stale requests get nothing."""
    if position.line < 0 or position.character < 0:
        return False
    return position.line <= text.count("\n")


def inline_items(
    suggestion: Suggestion | None,
    position: types.Position,
    command: types.Command | None = None,
) -> types.InlineCompletionList:
    """The item for a suggestion; ``command``: what the client runs when it is accepted
    (``features.acceptance``)."""
    if suggestion is None:
        return types.InlineCompletionList(items=[])
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=suggestion.text,
                range=replace_range(suggestion, position),
                command=command,
            )
        ]
    )


def replace_range(suggestion: Suggestion, position: types.Position) -> types.Range:
    """From the cursor over the auto-closed characters the suggestion replaces.

    They are ASCII brackets and quotes: as many UTF-16 units as code points.
    """
    end = types.Position(position.line, position.character + suggestion.replace_chars)
    return types.Range(position, end)


def completion_items(
    suggestion: Suggestion | None, position: types.Position
) -> types.CompletionList:
    # Incomplete, so clients ask again on the next keystroke instead of filtering stale items.
    if suggestion is None:
        return types.CompletionList(is_incomplete=True, items=[])
    first_line = suggestion.text.strip().splitlines()[0]
    return types.CompletionList(
        is_incomplete=True,
        items=[
            types.CompletionItem(
                label=first_line[:80],
                kind=types.CompletionItemKind.Snippet,
                detail="mmlsp",
                documentation=types.MarkupContent(
                    kind=types.MarkupKind.Markdown, value=f"```\n{suggestion.text}\n```"
                ),
                text_edit=types.TextEdit(
                    range=replace_range(suggestion, position), new_text=suggestion.text
                ),
                insert_text_format=types.InsertTextFormat.PlainText,
                filter_text="",
                sort_text="0",
                preselect=True,
            )
        ],
    )
