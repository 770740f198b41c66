"""The order the filters run in, and the entry points that run them.

This module owns composition only: ``STOP_RULES`` (the rules that end a suggestion,
checked after every streamed token by ``stop_at`` and again on the final text), and
``PIPELINE``, the ordered filters that ``finish`` runs over the final text. Each step
lives in its own module of this package.
"""

from __future__ import annotations

from collections.abc import Callable

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.balance import stop_at_balance
from mmlsp.postprocess.base import Filter, StopRule
from mmlsp.postprocess.block_length import limit_block_length
from mmlsp.postprocess.closing_line import drop_duplicate_closing_line
from mmlsp.postprocess.indent_scope import limit_scope_by_indent
from mmlsp.postprocess.line_endings import normalize_line_endings, restore_line_endings
from mmlsp.postprocess.parse_check import check_parse
from mmlsp.postprocess.repetition import remove_repeated_lines
from mmlsp.postprocess.single_line import stop_at_line_end
from mmlsp.postprocess.suffix_line import stop_at_suffix_line
from mmlsp.postprocess.suffix_overlap import trim_suffix_overlap
from mmlsp.postprocess.syntax_scope import limit_scope_by_syntax
from mmlsp.postprocess.trivial import drop_trivial
from mmlsp.postprocess.undecodable import cut_undecodable
from mmlsp.postprocess.whitespace import drop_doubled_space, strip_trailing_whitespace

STOP_RULES: tuple[StopRule, ...] = (
    stop_at_line_end,
    stop_at_balance,
    limit_block_length,
    limit_scope_by_indent,
    remove_repeated_lines,
    stop_at_suffix_line,
)


def stop_at(ctx: CursorContext) -> Callable[[str], int | None]:
    """Return a streaming stop check for this cursor: text so far -> cut index or None."""

    def check(text: str) -> int | None:
        cuts = [cut for rule in STOP_RULES if (cut := rule(text, ctx, False)) is not None]
        return min(cuts) if cuts else None

    return check


def as_filter(rule: StopRule) -> Filter:
    """The stop rule as a filter over the final text: cut where the rule says."""

    def apply(text: str, ctx: CursorContext) -> str | None:
        cut = rule(text, ctx, True)
        return text if cut is None else text[:cut]

    apply.__name__ = apply.__qualname__ = rule.__name__
    apply.__doc__ = rule.__doc__
    apply.__module__ = rule.__module__
    return apply


# In order. Each is pure and small; each has golden cases in tests/golden/postprocess.
PIPELINE: tuple[Filter, ...] = (
    normalize_line_endings,
    cut_undecodable,
    drop_doubled_space,
    as_filter(stop_at_line_end),
    as_filter(stop_at_balance),
    as_filter(limit_block_length),
    as_filter(limit_scope_by_indent),
    limit_scope_by_syntax,
    as_filter(remove_repeated_lines),
    as_filter(stop_at_suffix_line),
    drop_duplicate_closing_line,
    strip_trailing_whitespace,
    trim_suffix_overlap,
    drop_trivial,
    check_parse,
    restore_line_endings,
)
FILTERS: dict[str, Filter] = {f.__name__: f for f in PIPELINE}


def finish(raw: str, ctx: CursorContext) -> str | None:
    """Clean the generated text; None when nothing worth showing is left."""
    return finish_why(raw, ctx)[0]


def finish_why(raw: str, ctx: CursorContext) -> tuple[str | None, str | None]:
    """``finish``, and when it leaves nothing, the name of the filter that dropped it
    (``"no text"`` when the model wrote nothing at all), for the empty-answer counts."""
    if not raw:
        return None, "no text"
    text = raw
    for step in PIPELINE:
        kept = step(text, ctx)
        if kept is None:
            return None, step.__name__
        text = kept
    return text, None
