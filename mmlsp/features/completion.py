"""Completion: document and cursor in, one suggestion out.

The one path every caller takes (inline completion, the completion fallback and
``mmlsp complete``): context, prompt, engine, post-processing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.context import build_context
from mmlsp.engine import EngineHost, GenerationRequest, GenerationResult
from mmlsp.positions import offset_at
from mmlsp.postprocess import finish, stop_at
from mmlsp.prompts import build_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    text: str
    result: GenerationResult


async def suggest(
    text: str,
    position: types.Position,
    settings: Settings,
    host: EngineHost,
    cancel: threading.Event | None = None,
) -> Suggestion | None:
    """The suggestion at ``position`` in ``text``, or None when there is nothing to offer."""
    engine = host.engine
    if engine is None or len(text.encode("utf-8", "surrogatepass")) > settings.max_file_bytes:
        return None
    offset = offset_at(text, position.line, position.character)
    ctx = build_context(
        text,
        offset,
        prefix_tokens=settings.prefix_tokens,
        suffix_tokens=settings.suffix_tokens,
        count=engine.count_tokens,
    )
    prompt = build_prompt(host.template, ctx.prefix, ctx.suffix)
    request = GenerationRequest(
        prompt=prompt,
        max_new_tokens=(
            settings.max_new_tokens if ctx.mode == "single" else settings.max_new_tokens_multiline
        ),
        stop_at=stop_at(ctx),
        deadline=time.monotonic() + settings.time_budget_ms / 1000,
    )
    if cancel is not None:
        request.cancel = cancel
    result = await host.generate(request)
    log.debug(
        "generated %d tokens (prompt %d) in %.0f ms, %s",
        result.generated_tokens,
        result.prompt_tokens,
        result.seconds * 1000,
        result.finish_reason,
    )
    if result.finish_reason == "cancelled":
        return None
    cleaned = finish(result.text, ctx)
    return Suggestion(cleaned, result) if cleaned else None


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
                insert_text=suggestion.text, range=types.Range(position, position)
            )
        ]
    )


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
                    range=types.Range(position, position), new_text=suggestion.text
                ),
                insert_text_format=types.InsertTextFormat.PlainText,
                filter_text="",
                sort_text="0",
                preselect=True,
            )
        ],
    )
