"""Completion: document and cursor in, one suggestion out.

This module owns the completion path every caller takes (inline completion, the
completion fallback and ``mmlsp complete``: context, prompt, engine,
post-processing; ``suggest`` and ``generate_completion``), and ``Completions``, the
server's per-document completion state that avoids model calls where it can:

* typed-ahead reuse (``typeahead.TypeaheadCache``): a suggestion the user is typing
  is answered with its rest, at once; backspace-and-retype too;
* in-flight reuse: an edit that types what the running generation has produced
  so far keeps it running, and the next request takes its answer;
* speculative next suggestion: when the document comes to contain a whole
  suggestion (accepted), the one after it is computed in the background;
* adaptive debounce (``debounce.TypingPace``) before a model call;
* the newest request for a document supersedes the ones before it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.context import CursorContext, TokenCounter, build_context
from mmlsp.crossfile import cross_file_pieces
from mmlsp.engine import EngineError, EngineHost, GenerationRequest, GenerationResult
from mmlsp.features.debounce import TypingPace
from mmlsp.features.typeahead import Entry, TypeaheadCache, remainder, typed_since
from mmlsp.positions import offset_at
from mmlsp.postprocess import finish_why, replace_suffix_chars, stop_at
from mmlsp.prompts import FimTemplate, build_prompt, render_context
from mmlsp.shape import CLOSERS
from mmlsp.syntax import SyntaxDocument
from mmlsp.workspace import WorkspaceIndex

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Completion:
    """A cleaned suggestion and the characters right of the cursor it replaces."""

    text: str
    replace_chars: int = 0


def prepare_prompt(
    text: str,
    offset: int,
    settings: Settings,
    count: TokenCounter,
    template: FimTemplate | None,
    *,
    syntax_doc: SyntaxDocument | None = None,
    language: str | None = None,
    workspace: WorkspaceIndex | None = None,
    uri: str | None = None,
) -> tuple[CursorContext, str]:
    """The cursor context and the exact prompt for a completion at ``offset``.

    No model call (the index is only read): the server and the HumanEval benchmark
    both build prompts here. Stable parts come first: cross-file pieces (labelled in
    the model's repo format or as comments), then the current file's out-of-view
    lines, then the window.
    """
    ctx = build_context(
        text,
        offset,
        prefix_tokens=settings.prefix_tokens,
        suffix_tokens=settings.suffix_tokens,
        count=count,
        language=language,
        syntax_doc=syntax_doc,
        # The out-of-view lines get at most half the extra budget; other files the rest.
        preamble_tokens=settings.cross_file_tokens // 2,
    )
    budget = settings.cross_file_tokens - (count(ctx.preamble) if ctx.preamble else 0)
    pieces = cross_file_pieces(workspace, uri, ctx, budget, count, template)
    path = None
    if pieces and uri is not None:
        path = workspace.relative_path(uri) if workspace is not None else uri.rsplit("/", 1)[-1]
    context = render_context(
        template, pieces, path, repo=workspace.repo_name if workspace is not None else None
    )
    prompt = build_prompt(
        template,
        ctx.prefix,
        ctx.suffix,
        context=context,
        preamble=ctx.preamble,
        pieces=pieces,
        first_line=ctx.window_start_line,
    )
    return ctx, prompt


@dataclass(frozen=True)
class Outcome:
    """What one completion call gave: the suggestion, the model's work behind it, and
    for an empty answer, why (``EMPTY_REASONS``'s words or ``filter:<name>``)."""

    completion: Completion | None
    result: GenerationResult | None
    empty_reason: str | None = None


def empty_reason(result: GenerationResult, dropped_by: str | None) -> str:
    """Why a generation left nothing to show, in the words ``mmlsp/status`` counts."""
    if result.finish_reason == "cancelled":
        return "cancelled"
    if not result.text and result.finish_reason == "deadline":
        # The time budget ran out before the first token: a cold prefill, typically.
        return "time budget"
    if not result.text:
        return "model wrote nothing"
    return f"filter:{dropped_by}"


async def generate_completion(
    text: str,
    offset: int,
    settings: Settings,
    host: EngineHost,
    cancel: threading.Event | None = None,
    **options: Any,
) -> tuple[Completion | None, GenerationResult | None]:
    """``complete``'s suggestion and the generation behind it (the CLI's and the
    benchmarks' view, which need no reason for an empty answer)."""
    outcome = await complete(text, offset, settings, host, cancel, **options)
    return outcome.completion, outcome.result


async def complete(
    text: str,
    offset: int,
    settings: Settings,
    host: EngineHost,
    cancel: threading.Event | None = None,
    *,
    cache_key: str | None = None,
    on_text: Callable[[str], None] | None = None,
    syntax_doc: SyntaxDocument | None = None,
    language: str | None = None,
    workspace: WorkspaceIndex | None = None,
    uri: str | None = None,
    warm_up: bool = False,
) -> Outcome:
    """The cleaned completion at code point ``offset``, the generation behind it, and
    why there is none when there is none.

    ``cache_key`` lets the engine reuse that key's prompt KV cache (when the
    ``kvReuse`` setting allows); ``on_text`` sees the raw text after every token.
    ``syntax_doc`` (the document's tree, reused when current) or ``language`` turns on
    the tree-sitter shape decision and parse check; ``workspace`` and ``uri`` give
    cross-file context. A ``warm_up`` only prefills the prompt (one token), as
    background work that gives way to requests the user waits for
    (``EngineHost.generate``) and is not counted as a generation.
    """
    engine = host.engine
    if engine is None:
        return Outcome(None, None, "model not ready")
    if len(text.encode("utf-8", "surrogatepass")) > settings.max_file_bytes:
        return Outcome(None, None, "file too large")
    ctx, prompt = prepare_prompt(
        text,
        offset,
        settings,
        engine.count_tokens,
        host.template,
        syntax_doc=syntax_doc,
        language=language,
        workspace=workspace,
        uri=uri,
    )
    stops = stop_at(ctx)
    if on_text is not None:

        def observed(generated: str) -> int | None:
            on_text(generated)
            return stops(generated)

    max_new_tokens = (
        1
        if warm_up
        else settings.max_new_tokens_multiline
        if ctx.multiline
        else settings.max_new_tokens
    )
    request = GenerationRequest(
        prompt=prompt,
        max_new_tokens=max_new_tokens,
        stop_at=stops if on_text is None else observed,
        deadline=time.monotonic() + settings.time_budget_ms / 1000,
        cache_key=cache_key if settings.kv_reuse else None,
        prompt_lookup=settings.prompt_lookup_tokens,
        reuse_draft=settings.reuse_draft_tokens,
    )
    if cancel is not None:
        request.cancel = cancel
    result = await host.generate(request, background=warm_up, record=not warm_up)
    log.debug(
        "generated %d tokens (prompt %d, prefilled %d) in %.0f ms, %s",
        result.generated_tokens,
        result.prompt_tokens,
        result.prefilled_tokens,
        result.seconds * 1000,
        result.finish_reason,
    )
    if result.finish_reason == "cancelled":
        return Outcome(None, result, "cancelled")
    cleaned, dropped_by = finish_why(result.text, ctx)
    if cleaned is None:
        return Outcome(None, result, empty_reason(result, dropped_by))
    return Outcome(Completion(cleaned, replace_suffix_chars(cleaned, ctx)), result)


def replace_chars_at(
    text: str, offset: int, suggestion: str, syntax_doc: SyntaxDocument | None = None
) -> int:
    """``replace_suffix_chars`` for a suggestion shown at ``offset`` (typed-ahead answers)."""
    rest = text[offset : offset + 1]
    if not rest or (rest not in CLOSERS and rest not in "\"'`"):
        return 0  # nothing auto-closed right of the cursor: the common, free case
    ctx = build_context(
        text, offset, prefix_tokens=16, suffix_tokens=0, count=len, syntax_doc=syntax_doc
    )
    return replace_suffix_chars(suggestion, ctx)


async def suggest(
    text: str,
    position: types.Position,
    settings: Settings,
    host: EngineHost,
    cancel: threading.Event | None = None,
    language: str | None = None,
) -> Suggestion | None:
    """The suggestion at ``position`` in ``text``, or None when there is nothing to offer."""
    offset = offset_at(text, position.line, position.character)
    completion, result = await generate_completion(
        text, offset, settings, host, cancel, language=language
    )
    if completion is None:
        return None
    return Suggestion(completion.text, result, replace_chars=completion.replace_chars)


@dataclass(eq=False)
class _Job:
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


# A warm-up may take its time: it runs while the user is not waiting for anything.
WARM_BUDGET_MS = 60_000


def warm_offset(text: str, settings: Settings, count: TokenCounter) -> int:
    """Where to warm a document whose cursor is unknown (just opened): the end of the
    first prompt window. The cached prompt then covers the text before any cursor in
    that window, since the prompt puts the text before the cursor first."""
    budget = settings.prefix_tokens * 9 // 10
    if count(text) <= budget:
        return len(text)
    lines = text.split("\n")
    low, high = 0, len(lines)  # the most whole lines whose tokens fit the budget
    while low < high:
        mid = (low + high + 1) // 2
        if count("\n".join(lines[:mid])) <= budget:
            low = mid
        else:
            high = mid - 1
    return len("\n".join(lines[:low]))


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
        self.jobs: dict[str, _Job] = {}
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
        self.warming: dict[str, threading.Event] = {}
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
            typed = _typed_into(job, text) if settings.typeahead else None
            if typed is not None and job.partial.startswith(typed):
                job.adoptable = True  # the user is typing what it generates: let it run
            else:
                self._stop(job)
        if settings.typeahead and (entry := self.typeahead.accepted(uri, text)) is not None:
            self._start(uri, text, len(entry.before) + len(entry.text), settings, True)

    def closed(self, uri: str) -> None:
        if (job := self.jobs.get(uri)) is not None:
            self._stop(job)
        if (warming := self.warming.pop(uri, None)) is not None:
            warming.set()
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
        engine = self.host.engine
        if engine is None or not settings.kv_reuse or uri in self.jobs:
            return False
        if self.requested_at.get(uri, float("-inf")) >= since:
            return False
        if not engine.keeps_prompt_caches or self.host.status.in_flight:
            return False
        if len(text.encode("utf-8", "surrogatepass")) > settings.max_file_bytes:
            return False
        if offset is None:
            offset = warm_offset(text, settings, engine.count_tokens)
        if (old := self.warming.pop(uri, None)) is not None:
            old.set()
        cancel = self.warming[uri] = threading.Event()
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
                if self.warming.get(uri) is cancel:
                    del self.warming[uri]

        self.counts["warmups"] += 1
        asyncio.ensure_future(run()).add_done_callback(_consume_error)
        return True

    def _stop_warming(self) -> None:
        for cancel in self.warming.values():
            cancel.set()

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
            outcome = "cancelled"  # by the client: typically the user typed on
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
                adopted = await self._wait(job, number, uri)
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
        suggestion = await self._wait(job, number, uri)
        if self.latest.get(uri) != number:
            return None, "superseded", None, "superseded"
        if suggestion is None:
            return None, "empty", job.result, job.empty_reason
        return suggestion, "model", job.result, None

    async def _wait(self, job: _Job, number: int, uri: str) -> Suggestion | None:
        """Await ``job``; when the last request waiting for it goes away, stop it."""
        assert job.task is not None
        job.waiters += 1
        try:
            return await asyncio.shield(job.task)
        except asyncio.CancelledError:
            if job.waiters == 1 and not (job.adoptable or job.speculative):
                job.cancel.set()
            raise
        finally:
            job.waiters -= 1

    # -- jobs ---------------------------------------------------------------------------
    def _start(
        self, uri: str, text: str, offset: int, settings: Settings, speculative: bool
    ) -> _Job:
        if (old := self.jobs.get(uri)) is not None:
            self._stop(old)
        self._stop_warming()  # the user is waiting now; what was prefilled is kept
        job = _Job(uri, text[:offset], text[offset:], speculative=speculative)
        job.task = asyncio.ensure_future(self._run(job, text, offset, settings))
        job.task.add_done_callback(_consume_error)
        self.jobs[uri] = job
        self.counts["speculative_started" if speculative else "model_calls"] += 1
        return job

    async def _run(
        self, job: _Job, text: str, offset: int, settings: Settings
    ) -> Suggestion | None:
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

    def _stop(self, job: _Job) -> None:
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


def _typed_into(job: _Job, text: str) -> str | None:
    """What an edit typed at ``job``'s cursor, or None for any other edit."""
    cut = len(text) - len(job.after)
    if cut < len(job.before):
        return None
    return typed_since(job.before, job.after, text[:cut], text[cut:])


def _consume_error(task: asyncio.Future[Any]) -> None:
    # A job nobody waits for any more may still fail; log it instead of asyncio's warning.
    if not task.cancelled() and (exc := task.exception()) is not None:
        if isinstance(exc, EngineError):
            log.debug("background completion failed: %s", exc)
        else:
            log.error("background completion failed", exc_info=exc)


def valid_position(text: str, position: types.Position) -> bool:
    """Whether ``position`` names a line that exists; stale requests get nothing."""
    if position.line < 0 or position.character < 0:
        return False
    return position.line <= text.count("\n")


def inline_items(
    suggestion: Suggestion | None, position: types.Position
) -> types.InlineCompletionList:
    if suggestion is None:
        return types.InlineCompletionList(items=[])
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=suggestion.text, range=replace_range(suggestion, position)
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
