"""The completion pipeline: one document and one cursor in, one cleaned suggestion out.

This module owns the path from a document to a suggestion at one code point offset,
with no LSP types and no server state: the cursor context (``context``), the prompt
with its cross-file pieces (``crossfile``, ``prompts``), one generation on the engine
host (``engine``), and the post-processing that cleans it or says why there is
nothing to show (``postprocess``). ``complete`` is that path; ``prepare_prompt`` its
prompt half, ``generate_completion`` its view for the CLI and the benchmarks;
``replace_chars_at`` the replace range of a suggestion reused without a generation,
``warm_offset`` where to prefill a document whose cursor is unknown. The
completion feature (``features.completion``) calls it per request and keeps what
spans requests (jobs, typed-ahead text, the typing pace); ``mmlsp complete`` and the
benchmarks call it directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmlsp.config import Settings
from mmlsp.context.window import CursorContext, TokenCounter, build_context
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.engine import EngineHost, GenerationRequest, GenerationResult
from mmlsp.engine.healing import partial_word
from mmlsp.postprocess import finish_why, replace_suffix_chars, stop_at
from mmlsp.prompt.crossfile import cross_file_pieces
from mmlsp.prompt.fim import FimTemplate, build_prompt, render_context
from mmlsp.syntax import SyntaxDocument
from mmlsp.syntax.shape import CLOSERS

log = logging.getLogger(__name__)


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
        heal=0 if warm_up or not settings.token_healing else heal_chars(prompt, ctx.prefix),
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


def heal_chars(prompt: str, prefix: str) -> int:
    """How many characters at the end of ``prompt`` the engine may heal: the word the
    cursor is inside (``prefix`` ends at the cursor), where the prompt ends with it
    (a FIM template that ends with its middle marker does not)."""
    chars = partial_word(prefix)
    return chars if chars and prompt.endswith(prefix[-chars:]) else 0


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
