"""The next-edit pipeline: a document, a cursor and the user's recent edits in, the
follow-up edits out.

The path mirrors ``complete``: the editable region around the cursor, snapped to the
syntax tree (``context.region``); the prompt in the model's next-edit format
(``prompt.next_edit``), with excerpts of related files (``prompt.crossfile``) and the
edit history (``context.history``); one generation on the engine host; then the
rewritten region as minimal edits, kept only when worth showing
(``postprocess.next_edit``). No LSP types, no server state: the feature
(``features.next_edit``) calls ``predict`` per request; the benchmark calls it
directly.

Two things keep it fast. Rewriting a region mostly copies it, so the request drafts
tokens from the prompt (``prompt_lookup``). And once the model's rewrite has changed
something and then copies ``RESYNC_LINES`` lines of the old region again, the rest of
the region is taken as it was (``Resync``): the model writes the change and two lines
after it, not the whole region.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mmlsp.config import Settings
from mmlsp.context.history import Edit
from mmlsp.context.region import Region, editable_region
from mmlsp.context.window import build_context
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.engine import EngineHost, GenerationRequest, GenerationResult
from mmlsp.postprocess.next_edit import TextEdit, region_edits, repeats_below, worth_showing
from mmlsp.prompt import next_edit as formats
from mmlsp.prompt.crossfile import cross_file_pieces
from mmlsp.syntax import SyntaxDocument

log = logging.getLogger(__name__)

# Lines of the file shown above and below the region (Zeta's excerpt; Sweep's file).
EXCERPT_ABOVE = 40
EXCERPT_BELOW = 20
# Characters of edit history in the prompt (about 500 tokens, as Zeta and Continue).
HISTORY_CHARS = 2000
RESYNC_LINES = 2
# Tokens drafted from the prompt per step: the rewrite mostly copies the region.
PROMPT_LOOKUP = 16


@dataclass(frozen=True)
class Prediction:
    """The edits to show (empty: nothing to show, and ``reason`` says why), with the
    region they came from and the generation behind them."""

    edits: list[TextEdit]
    region: Region | None = None
    result: GenerationResult | None = None
    reason: str | None = None
    format: str = ""
    # The document with the edits applied (what typing toward them leads to).
    target: str | None = None
    seconds: float = 0.0


class Resync:
    """A stop check for a region rewrite: stop once the rewrite, after changing
    something, copies ``lines`` non-blank old lines in a row again; ``tail`` is then the
    old region's rest, which the rewrite would have copied too."""

    def __init__(self, old_region: str, stops: Sequence[str], lines: int = RESYNC_LINES) -> None:
        self.old = old_region.splitlines(keepends=True)
        self.stops = stops
        self.lines = lines
        self.tail = ""

    def __call__(self, text: str) -> int | None:
        cuts = [i for stop in self.stops if (i := text.find(stop)) >= 0]
        if cuts:
            self.tail = ""
            return min(cuts)
        return self._resync(text)

    def _resync(self, text: str) -> int | None:
        # A cursor marker the model copied is no change.
        done = text.replace(formats.ZETA_CURSOR, "").splitlines(keepends=True)
        if done and not done[-1].endswith("\n"):
            done.pop()  # the line being written
        n = self.lines
        if len(done) <= n:
            return None
        last = done[-n:]
        if not any(line.strip() for line in last):
            return None
        head = done[:-n]
        for j in range(len(self.old) - n + 1):
            if self.old[j : j + n] != last:
                continue
            if self.old[:j] == head:
                return None  # copying so far: nothing changed yet
            self.tail = "".join(self.old[j + n :])
            return _end_of_line(text, len(done))
        return None


def _end_of_line(text: str, lines: int) -> int:
    """The offset just after the ``lines``-th line break of ``text``."""
    at = -1
    for _ in range(lines):
        at = text.find("\n", at + 1)
    return at + 1


@dataclass(frozen=True)
class Inputs:
    """What a next-edit request knows besides the document: the edit history (most
    recent first, this document's and others'), related files, and where it lives."""

    uri: str
    path: str
    history: Sequence[Edit] = ()
    workspace: WorkspaceIndex | None = None
    syntax_doc: SyntaxDocument | None = None
    language: str | None = None
    cache_key: str | None = None
    format: str = "generic"
    cancel: threading.Event = field(default_factory=threading.Event)


def build_request(
    text: str, offset: int, inputs: Inputs, settings: Settings, count
) -> tuple[formats.Request, Region, int, str | None]:
    """The prompt request for a cursor at ``offset``, its region, the region's start
    offset, and the document as it was before the user's last edit here (None when
    the last edit is not known)."""
    lines = text.split("\n")
    cursor_line = text.count("\n", 0, offset)
    tree = inputs.syntax_doc.tree if inputs.syntax_doc is not None else None
    region = editable_region(len(lines), cursor_line, tree)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def at(line: int) -> int:
        return min(starts[line], len(text))

    lo, hi = at(region.start), at(region.end)
    above_from = at(max(0, region.start - EXCERPT_ABOVE))
    below_to = at(min(len(lines), region.end + EXCERPT_BELOW))
    region_text = text[lo:hi]
    original, before_last = region_text, None
    mine = [e for e in inputs.history if e.uri == inputs.uri]
    if mine:
        last = mine[0]
        start = at(min(last.line, len(lines)))
        if text.startswith(last.after, start):
            before_last = text[:start] + last.before + text[start + len(last.after) :]
            if lo <= start and start + len(last.after) <= hi:
                original = (
                    region_text[: start - lo]
                    + last.before
                    + region_text[start - lo + len(last.after) :]
                )
    history: list[formats.HistoryEntry] = []
    used = 0
    for edit in inputs.history:
        if used + len(edit.diff) > HISTORY_CHARS:
            break
        used += len(edit.diff)
        path = inputs.path if edit.uri == inputs.uri else _path(inputs.workspace, edit.uri)
        history.append(formats.HistoryEntry(path, edit.before, edit.after, edit.diff))
    history.reverse()  # oldest first
    related: list[tuple[str, str]] = []
    if inputs.workspace is not None and settings.cross_file_tokens > 0:
        ctx = build_context(
            text, offset, prefix_tokens=settings.prefix_tokens // 4, suffix_tokens=0, count=count,
            language=inputs.language, syntax_doc=inputs.syntax_doc,
        )  # fmt: skip
        pieces = cross_file_pieces(
            inputs.workspace, inputs.uri, ctx, settings.cross_file_tokens, count
        )
        related = [(piece.path, piece.text) for piece in pieces]
    request = formats.Request(
        path=inputs.path,
        above=text[above_from:lo],
        region=region_text,
        cursor=offset - lo,
        below=text[hi:below_to],
        original=original,
        file_start=above_from == 0,
        history=history,
        related=related,
    )
    return request, region, lo, before_last


async def predict(
    text: str, offset: int, settings: Settings, host: EngineHost, inputs: Inputs
) -> Prediction:
    """The next edits for a cursor at code point ``offset`` of ``text``."""
    started = time.monotonic()
    engine = host.engine
    if engine is None:
        return Prediction([], reason="model not ready")
    if len(text.encode("utf-8", "surrogatepass")) > settings.max_file_bytes:
        return Prediction([], reason="file too large")
    request, region, lo, before_last = build_request(
        text, offset, inputs, settings, engine.count_tokens
    )
    prompt = formats.build(inputs.format, request)
    resync = Resync(request.region, prompt.stops)
    generation = GenerationRequest(
        prompt=prompt.text,
        # The region once more, and room for what the edit adds.
        max_new_tokens=engine.count_tokens(request.region) + 64,
        stop_at=resync,
        deadline=time.monotonic() + settings.next_edit_time_budget_ms / 1000,
        cache_key=inputs.cache_key if settings.kv_reuse else None,
        prompt_lookup=PROMPT_LOOKUP,
    )
    generation.cancel = inputs.cancel
    result = await host.generate(generation)
    seconds = time.monotonic() - started

    def none(reason: str) -> Prediction:
        return Prediction([], region, result, reason, prompt.format, seconds=seconds)

    if result.finish_reason == "cancelled":
        return none("cancelled")
    if result.finish_reason == "deadline":
        return none("time budget")
    # A rewrite cut short would delete the region's rest: it must end at its end marker
    # (or resync), or at end of text where that is the format's end (Sweep's).
    if result.finish_reason == "length" or (result.finish_reason == "eos" and not prompt.eos_ends):
        return none("rewrite unfinished")
    new_region = formats.region_from(result.text + resync.tail, request)
    if repeats_below(request.region, new_region, request.below):
        return none("repeats the code below")
    edits = region_edits(request.region, new_region, lo)
    excerpt = (lo - len(request.above), lo + len(request.region) + len(request.below))
    if why := worth_showing(
        text, edits, before_last_edit=before_last, language=_language(inputs), excerpt=excerpt
    ):
        return none(why)
    target = text[:lo] + new_region + text[lo + len(request.region) :]
    log.debug("next edit: %d edits in %.0f ms", len(edits), seconds * 1000)
    return Prediction(edits, region, result, None, prompt.format, target, seconds)


def _language(inputs: Inputs) -> str | None:
    return inputs.syntax_doc.language if inputs.syntax_doc is not None else inputs.language


def _path(workspace: WorkspaceIndex | None, uri: str) -> str:
    return workspace.relative_path(uri) if workspace is not None else uri.rsplit("/", 1)[-1]
