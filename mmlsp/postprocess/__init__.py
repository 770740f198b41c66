"""Turning raw model output into a suggestion worth showing.

This package owns the post-processing of completions: an ordered list of small pure
filters (``PIPELINE``), each ``(text, ctx) -> text | None`` (None: nothing worth
showing), one concern per module:

==================  ===============================================================
``line_endings``    work on ``\\n``, give the document's line endings back at the end
``undecodable``     half a multi-byte character at the end
``single_line``     single-line shapes end at the line break (stop rule)
``balance``         balance mode ends with the line that closes the brackets (stop rule)
``block_length``    a line limit, two blank lines end a block (stop rule)
``indent_scope``    the block's scope, judged by indentation (stop rule)
``syntax_scope``    the block's scope, judged by the grammar
``repetition``      loops of repeated lines or blocks (stop rule)
``suffix_line``     the next line below the cursor, written again (stop rule)
``closing_line``    a closing bracket line the document already has
``whitespace``      trailing whitespace
``suffix_overlap``  text right of the cursor, written again
``trivial``         suggestions too small to show
``parse_check``     no new syntax errors in the document
==================  ===============================================================

``pipeline`` composes them; ``lines`` holds what the stop rules share, ``base`` the two
shapes of a step, and ``replace_range`` the auto-closed characters a suggestion
replaces. Entry points:

* ``stop_at(ctx)``: the streaming check, applied after every token, so generation
  ends as soon as the suggestion is complete. It runs the same stop rules
  (``STOP_RULES``) that the first filters of ``finish`` apply to the final text;
* ``finish(raw, ctx)``: runs ``PIPELINE`` over the final text;
* ``replace_suffix_chars(text, ctx)``: how many characters right of the cursor the
  suggestion should replace (brackets and quotes the editor auto-closed and the
  suggestion writes again).

A stop rule is ``(text, ctx, final) -> cut index | None``. While streaming
(``final`` False) the last line may still be growing, so only complete lines are
judged; at the end every line is.
"""

from mmlsp.postprocess.balance import stop_at_balance
from mmlsp.postprocess.base import Filter, StopRule
from mmlsp.postprocess.block_length import MAX_BLOCK_LINES, limit_block_length
from mmlsp.postprocess.closing_line import drop_duplicate_closing_line
from mmlsp.postprocess.indent_scope import limit_scope_by_indent
from mmlsp.postprocess.line_endings import normalize_line_endings, restore_line_endings
from mmlsp.postprocess.parse_check import check_parse
from mmlsp.postprocess.pipeline import FILTERS, PIPELINE, STOP_RULES, finish, finish_why, stop_at
from mmlsp.postprocess.repetition import MAX_PERIOD, REPEATED_LINE_RUN, remove_repeated_lines
from mmlsp.postprocess.replace_range import replace_suffix_chars
from mmlsp.postprocess.single_line import stop_at_line_end
from mmlsp.postprocess.suffix_line import stop_at_suffix_line
from mmlsp.postprocess.suffix_overlap import trim_suffix_overlap
from mmlsp.postprocess.syntax_scope import COMPOUND_NODES, limit_scope_by_syntax
from mmlsp.postprocess.trivial import MIN_LENGTH, drop_trivial
from mmlsp.postprocess.undecodable import cut_undecodable
from mmlsp.postprocess.whitespace import drop_doubled_space, strip_trailing_whitespace

__all__ = [
    "COMPOUND_NODES",
    "FILTERS",
    "MAX_BLOCK_LINES",
    "MAX_PERIOD",
    "MIN_LENGTH",
    "PIPELINE",
    "REPEATED_LINE_RUN",
    "STOP_RULES",
    "Filter",
    "StopRule",
    "check_parse",
    "cut_undecodable",
    "drop_duplicate_closing_line",
    "drop_trivial",
    "finish",
    "finish_why",
    "limit_block_length",
    "limit_scope_by_indent",
    "limit_scope_by_syntax",
    "normalize_line_endings",
    "remove_repeated_lines",
    "replace_suffix_chars",
    "restore_line_endings",
    "stop_at",
    "stop_at_balance",
    "stop_at_line_end",
    "stop_at_suffix_line",
    "drop_doubled_space",
    "strip_trailing_whitespace",
    "trim_suffix_overlap",
]
