"""The replace range: auto-closed brackets and quotes right of the cursor that the
suggestion writes itself, so it replaces them instead of doubling them.

Not a filter: ``replace_suffix_chars`` is asked by the completion feature (and by
``check_parse``, which must judge the text as it will be inserted).
"""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.syntax.shape import CLOSERS, OPENERS, BracketEvent, Lexicon, ScanState, scan

_QUOTE_CHARS = "\"'`"


def replace_suffix_chars(text: str, ctx: CursorContext) -> int:
    """How many characters right of the cursor the suggestion ``text`` should replace.

    When the editor auto-closed brackets or quotes (``foo(|)``) and the suggestion
    closes them itself (``a) + 1``), inserting it as is would double them; the
    suggestion replaces them instead. Counted in code points; they are ASCII, so it is
    the same number of UTF-16 units.
    """
    right = _auto_closed(ctx)
    if not right:
        return 0
    closed = _closes_outside(text, ctx)
    size = 0
    while size < min(len(right), len(closed)) and right[size] == closed[size]:
        size += 1
    return size


def _closes_outside(text: str, ctx: CursorContext) -> str:
    """The brackets and quote open at the cursor that ``text`` closes, in order."""
    lex = ctx.lexicon
    out: list[str] = []
    quote = ctx.shape.quote
    rest = text
    if quote is not None:
        end = _string_end(text, quote, lex)
        if end is None:
            return ""
        out.append(quote)
        rest = text[end:]
    events: list[BracketEvent] = []
    scan(rest, ScanState(stack=ctx.shape.stack), lex, events)
    floor = len(ctx.shape.stack)
    for event in events:
        if not event.matched:
            break
        if event.depth < floor:
            out.append(OPENERS[ctx.shape.stack[event.depth]])
            floor = event.depth
    return "".join(out)


def _string_end(text: str, quote: str, lex: Lexicon) -> int | None:
    """Index just past the delimiter that closes a string open at the start of ``text``."""
    for match in lex.pattern.finditer(text):
        if match.group() == quote:
            return match.end()
        if match.group() == "\n" and quote not in lex.multiline_quotes:
            return None
    return None


def _auto_closed(ctx: CursorContext) -> str:
    """The brackets and quotes right of the cursor (as an editor auto-closes them)."""
    run = []
    for ch in ctx.line_suffix:
        if ch not in CLOSERS and ch not in _QUOTE_CHARS:
            break
        run.append(ch)
    return "".join(run)
