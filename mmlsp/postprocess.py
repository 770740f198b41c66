"""Turning raw model output into a suggestion worth showing.

This module owns the post-processing pipeline: an ordered list of small pure filters
(``PIPELINE``), each ``(text, ctx) -> text | None`` (None: nothing worth showing).
Entry points:

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

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import tree_sitter

from mmlsp.context import CursorContext
from mmlsp.positions import encode_utf8, offset_to_byte, ts_point_after, ts_point_at
from mmlsp.shape import (
    CLOSERS,
    OPENERS,
    BracketEvent,
    Lexicon,
    ScanState,
    indent_width,
    scan,
)
from mmlsp.syntax import PYTHON_COMPOUND_STATEMENTS, get_parser, iter_problem_nodes, parse

Filter = Callable[[str, CursorContext], str | None]
StopRule = Callable[[str, CursorContext, bool], int | None]

MAX_BLOCK_LINES = 16
# Shorter suggestions (after stripping) are not worth the distraction.
MIN_LENGTH = 2
# Identical consecutive lines needed before the run counts as a loop; a repeated
# block of 2..MAX_PERIOD lines counts at its second copy.
REPEATED_LINE_RUN = 3
MAX_PERIOD = 4
# Top-level statements that own an indented block, per grammar (syntax scope limit).
COMPOUND_NODES: dict[str, frozenset[str]] = {"python": PYTHON_COMPOUND_STATEMENTS}
_QUOTE_CHARS = "\"'`"


# --- lines of a completion, as they will read in the document ----------------------


@dataclass(frozen=True)
class _Line:
    index: int
    start: int  # offset of the completion's part of this line in the completion
    full: str  # the whole document line (line 0 includes the text left of the cursor)
    in_string: bool  # starts inside a string: its indentation means nothing
    in_brackets: bool  # starts inside a bracket the suggestion opened: a continuation
    complete: bool  # the model has finished this line

    @property
    def exempt(self) -> bool:
        """Not the start of a statement."""
        return self.in_string or self.in_brackets

    @property
    def blank(self) -> bool:
        return not self.full.strip()

    @property
    def indent(self) -> int:
        return indent_width(self.full)


def _lines(text: str, ctx: CursorContext, final: bool) -> list[_Line]:
    parts = text.split("\n")
    lex = ctx.lexicon
    state = ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote)
    base = len(ctx.shape.stack)
    out: list[_Line] = []
    start = 0
    for index, part in enumerate(parts):
        in_string = index > 0 and state.quote is not None
        in_brackets = index > 0 and len(state.stack) > base
        full = (ctx.line_prefix + part if index == 0 else part).rstrip("\r")
        complete = final or index < len(parts) - 1
        out.append(_Line(index, start, full, in_string, in_brackets, complete))
        state = scan(part + "\n", state, lex)
        start += len(part) + 1
    return out


def _before(line: _Line) -> int:
    """Cut index that drops ``line`` and everything after it."""
    return max(0, line.start - 1)


def _after(text: str, line: _Line) -> int | None:
    """Cut index that keeps ``line`` and drops the rest (None: nothing follows)."""
    end = text.find("\n", line.start)
    return None if end < 0 else end


def _code(line: str, lex: Lexicon) -> str:
    """``line`` without a trailing line comment."""
    quote: str | None = None
    for match in lex.pattern.finditer(line):
        tok, at = match.group(), match.start()
        if quote is not None:
            if tok == quote:
                quote = None
        elif tok in lex.quotes:
            quote = tok
        elif tok in lex.line_comments:
            if tok == "#" and lex.hash_needs_space and at > 0 and not line[at - 1].isspace():
                continue
            return line[:at]
    return line


def _opens_block(line: str, lex: Lexicon) -> bool:
    return _code(line, lex).rstrip().endswith((":", "{"))


def _first_word(line: str) -> str:
    word = line.strip().split(maxsplit=1)
    return word[0].rstrip(":({") if word else ""


def _next_suffix_line(ctx: CursorContext) -> str | None:
    """The first non-blank line below the cursor's line, without its line break."""
    below = ctx.suffix.split("\n")[1:]
    return next((line.rstrip("\r") for line in below if line.strip()), None)


# --- stop rules: shared by streaming (stop_at) and the final filters ---------------


def stop_at_line_end(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Single-line shapes (code to the right, comments, strings) end at the line break."""
    if ctx.mode not in ("single", "line"):
        return None
    newline = text.find("\n")
    return None if newline < 0 else newline


def stop_at_balance(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Balance mode: stop at the end of the line that closes the cursor's brackets.

    A closing bracket that matches nothing ends the suggestion right before it.
    """
    if ctx.mode != "balance":
        return None
    events: list[BracketEvent] = []
    scan(text, ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote), ctx.lexicon, events)
    for event in events:
        if not event.matched:
            return event.index
        if event.depth == 0:
            newline = text.find("\n", event.index)
            return None if newline < 0 else newline
    return None


def limit_block_length(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """At most MAX_BLOCK_LINES lines, and a run of two blank lines ends a block."""
    if not ctx.multiline:
        return None
    blank_run = 0
    for line in _lines(text, ctx, final):
        if not line.complete:
            break
        if line.index >= MAX_BLOCK_LINES:
            return _before(line)
        blank_run = blank_run + 1 if line.blank else 0
        if blank_run >= 2 and line.index > 1:
            return _before(line)
    return None


def limit_scope_by_indent(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """End the suggestion where its block ends, judged by indentation.

    The scope is the block the first statement of the suggestion sits in: a later
    line indented less leaves it. In balance mode, the bracket's line bounds it. When
    the suggestion's first statement opens a block itself (``if x:``, ``{``), the
    suggestion ends with that block (continuations like ``else:`` stay).
    """
    if not ctx.multiline:
        return None
    lex = ctx.lexicon
    lines = [line for line in _lines(text, ctx, final) if line.complete]
    if ctx.mode == "balance":
        for line in lines[1:]:
            if not line.blank and not line.in_string and line.indent < ctx.shape.scope_indent:
                return _before(line)
        return None

    code_lines = [line for line in lines if not line.blank and not line.exempt]
    if not code_lines:
        return None
    first, rest = code_lines[0], code_lines[1:]
    cursor_opened = (
        first.index == 0 and bool(ctx.line_prefix.strip()) and bool(_opens_block(first.full, lex))
    )
    if cursor_opened:
        # The cursor's line opened the block: its body must be indented deeper.
        if not rest:
            return None
        body = rest[0]
        if body.indent <= first.indent:
            return _before(body)
        reference, after = body.indent, body.index
    else:
        reference, after = first.indent, first.index
    floor = reference if cursor_opened else _dedent_floor(ctx, reference)
    # Continuation lines count too (only string contents do not): code that leaves the
    # block inside an unclosed bracket has still left it.
    dedent = next(
        (
            _before(line)
            for line in lines
            if line.index > after and not line.blank and not line.in_string and line.indent < floor
        ),
        None,
    )
    if cursor_opened:
        return dedent
    block_end = _end_of_opened_block(text, code_lines, lex)
    if dedent is None or block_end is None:
        return block_end if dedent is None else dedent
    return min(dedent, block_end)


_DEFINITION_LINE = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]")


def _dedent_floor(ctx: CursorContext, reference: int) -> int:
    """The least indentation a Python suggestion may dedent to before it has left scope.

    Normally the cursor's block. But when the code below the cursor is already outside
    that block (the block ends here), the suggestion may finish the enclosing
    statements too: an ``else:`` of the enclosing ``if``, the ``return`` after a loop.
    It stays within the enclosing definition, and above the code that follows.
    """
    if ctx.language != "python":
        return reference
    below = _next_suffix_line(ctx)
    following = indent_width(below) if below is not None else 0
    if following >= reference:
        return reference
    definition = next(
        (
            indent_width(line)
            for line in reversed(ctx.prefix.split("\n")[:-1])
            if _DEFINITION_LINE.match(line) and indent_width(line) < reference
        ),
        None,
    )
    inside = definition + 1 if definition is not None else 0
    return max(following, inside)


def _end_of_opened_block(text: str, code_lines: list[_Line], lex: Lexicon) -> int | None:
    """Where the block opened by the suggestion's first statement ends, if it opens one."""
    opener = next((line for line in code_lines if not line.full.lstrip().startswith("@")), None)
    if opener is None or not _opens_block(opener.full, lex):
        return None
    for line in code_lines:
        if line.index <= opener.index or line.indent > opener.indent:
            continue
        stripped = line.full.strip()
        if _first_word(stripped) in lex.block_keywords:
            continue
        if stripped[0] in CLOSERS:
            if _opens_block(stripped, lex):
                continue  # `} else {`
            return _after(text, line)
        return _before(line)
    return None


def remove_repeated_lines(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Cut a loop: a line repeated REPEATED_LINE_RUN times, or a block repeated twice.

    The first copy stays; the cut falls right before the second.
    """
    if not ctx.multiline:
        return None
    code = [line for line in _lines(text, ctx, final) if line.complete and not line.blank]
    keys = [line.full.rstrip() for line in code]
    for end in range(1, len(keys)):
        for period in range(1, MAX_PERIOD + 1):
            copies = REPEATED_LINE_RUN if period == 1 else 2
            span = period * copies
            if end + 1 < span:
                continue
            block = keys[end + 1 - period : end + 1]
            if sum(len(key.strip()) for key in block) < 2:
                continue  # lines of a bracket or two repeat legitimately
            window = keys[end + 1 - span : end + 1]
            if all(window[i] == block[i % period] for i in range(span)):
                return _before(code[end + 1 - span + period])
    return None


def stop_at_suffix_line(text: str, ctx: CursorContext, final: bool = True) -> int | None:
    """Stop at a line that is the next line of the document below the cursor.

    The model has then reached text that is already there.
    """
    if not ctx.multiline:
        return None
    target = _next_suffix_line(ctx)
    if target is None:
        return None
    for line in _lines(text, ctx, final):
        if not line.complete:
            break
        if line.index == 0 and ctx.line_prefix.strip():
            continue  # the cursor's own line, finished by the suggestion
        if not line.blank and line.full.rstrip() == target.rstrip():
            return _before(line)
    return None


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


# --- filters -------------------------------------------------------------------------


def _as_filter(rule: StopRule) -> Filter:
    def apply(text: str, ctx: CursorContext) -> str | None:
        cut = rule(text, ctx, True)
        return text if cut is None else text[:cut]

    apply.__name__ = rule.__name__
    apply.__doc__ = rule.__doc__
    return apply


def normalize_line_endings(text: str, ctx: CursorContext) -> str | None:
    """Work on ``\\n`` only; ``restore_line_endings`` puts the document's back."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def limit_scope_by_syntax(text: str, ctx: CursorContext) -> str | None:
    """With a grammar: a suggestion that starts a compound statement ends with it.

    The suggestion from its first statement is parsed on its own (dedented); when the
    first top-level node is a compound statement that parses cleanly, everything
    after it goes. This sees what indentation cannot: strings and brackets that run
    over lines, decorators, ``else`` branches.
    """
    compound = COMPOUND_NODES.get(ctx.language or "")
    if ctx.mode != "multi" or not compound:
        return text
    lines = _lines(text, ctx, True)
    anchor = next((line for line in lines if not line.blank), None)
    if anchor is None:
        return text
    # Dedent by the anchor's indentation only: lines inside a string may sit further left.
    width = len(anchor.full) - len(anchor.full.lstrip(" \t"))
    snippet = "\n".join(_dedent(line.full, width) for line in lines[anchor.index :])
    first = parse(snippet, ctx.language or "").root_node.named_child(0)
    if first is None or first.type not in compound or first.has_error:
        return text
    row, column = first.end_point
    if column == 0:
        row -= 1  # ends at the start of the next line
    last = anchor.index + row
    if last + 1 >= len(lines):
        return text
    return text[: _before(lines[last + 1])]


def _dedent(line: str, width: int) -> str:
    stripped = line[:width].lstrip(" \t")
    return stripped + line[width:]


def drop_duplicate_closing_line(text: str, ctx: CursorContext) -> str | None:
    """Remove last lines that close a block the document already closes below the cursor.

    Only bracket lines (``}``, ``)``, ``});``) count, and only when the suggestion does
    not balance them itself.
    """
    if not ctx.multiline:
        return text
    target = _next_suffix_line(ctx)
    if target is None:
        return text
    closing = target.strip()
    if not closing or any(ch.isalnum() for ch in closing):
        return text  # only bracket/punctuation lines (`}`, `)`, `});`) count as closing
    lines = text.split("\n")
    while len(lines) > 1 and lines[-1].strip() == closing and _closes_outer("\n".join(lines), ctx):
        lines.pop()
    return "\n".join(lines)


def _closes_outer(text: str, ctx: CursorContext) -> bool:
    """Whether ``text`` closes a bracket it did not open (one open at the cursor, or none).

    A closing line that only ends a block the suggestion opened is its own, not a copy.
    """
    events: list[BracketEvent] = []
    start = ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote)
    scan(text, start, ctx.lexicon, events)
    return any(not event.matched or event.depth < len(start.stack) for event in events)


def strip_trailing_whitespace(text: str, ctx: CursorContext) -> str | None:
    return text.rstrip()


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


def trim_suffix_overlap(text: str, ctx: CursorContext) -> str | None:
    """Drop the end of ``text`` that the text right of the cursor already has.

    Editors auto-close brackets and quotes, and models then emit them again. A bracket
    is only trimmed when the suggestion would otherwise close it twice: ``bar(1)`` at
    ``foo(|)`` keeps its own ``)``.
    """
    rest = ctx.line_suffix.rstrip()
    if not rest:
        return text
    if ctx.shape.in_comment:  # prose: no brackets to keep balanced
        return next(
            (text[:-n] for n in range(min(len(rest), len(text)), 0, -1) if text.endswith(rest[:n])),
            text,
        )
    start = ScanState(stack=ctx.shape.stack, quote=ctx.shape.quote)
    for size in range(min(len(rest), len(text)), 0, -1):
        if not text.endswith(rest[:size]):
            continue
        kept = text[:-size]
        after = scan(kept, start, ctx.lexicon)
        if after.stack == start.stack and after.quote == start.quote:
            return kept
    return text


def cut_undecodable(text: str, ctx: CursorContext) -> str | None:
    """Drop U+FFFD at the end: the bytes of a character that generation stopped in the
    middle of (an emoji or CJK text cut by the token limit), which would show as junk."""
    return text.rstrip("\ufffd")


def drop_trivial(text: str, ctx: CursorContext) -> str | None:
    """Nothing shorter than MIN_LENGTH, and nothing that is only punctuation or space."""
    stripped = text.strip()
    if len(stripped) < MIN_LENGTH or not any(ch.isalnum() for ch in stripped):
        return None
    return text


def _errors(tree: tree_sitter.Tree) -> int:
    if not tree.root_node.has_error:
        return 0
    return sum(1 for _ in iter_problem_nodes(tree))


def _candidates(text: str) -> Iterator[str]:
    """``text``, then its prefixes cut at line ends, longest first."""
    yield text
    lines = text.split("\n")
    for keep in range(len(lines) - 1, 0, -1):
        head = "\n".join(lines[:keep]).rstrip()
        if head.strip():
            yield head


def check_parse(text: str, ctx: CursorContext) -> str | None:
    """A block (multi or balance mode) must not add syntax errors to the document.

    Otherwise the longest prefix (cut at a line end) that adds none is kept; if no
    prefix passes, nothing is shown. Reparses incrementally from the document's tree.
    """
    if not ctx.multiline or ctx.tree is None or ctx.language is None:
        return text
    baseline = _errors(ctx.tree)
    source = encode_utf8(ctx.text)
    start_byte = offset_to_byte(ctx.text, ctx.offset)
    start_point = ts_point_at(ctx.text, ctx.offset)
    parser = get_parser(ctx.language)
    for candidate in _candidates(text):
        replaced = replace_suffix_chars(candidate, ctx)
        written = candidate.replace("\n", ctx.eol)
        inserted = encode_utf8(written)
        new_source = source[:start_byte] + inserted + source[start_byte + replaced :]
        tree = ctx.tree.copy()
        tree.edit(
            start_byte=start_byte,
            old_end_byte=start_byte + replaced,
            new_end_byte=start_byte + len(inserted),
            start_point=start_point,
            old_end_point=(start_point[0], start_point[1] + replaced),
            new_end_point=ts_point_after(start_point, written),
        )
        if _errors(parser.parse(new_source, tree)) <= baseline:
            return candidate
    return None


def restore_line_endings(text: str, ctx: CursorContext) -> str | None:
    return text.replace("\n", ctx.eol) if ctx.eol != "\n" else text


# In order. Each is pure and small; each has golden cases in tests/golden/postprocess.
PIPELINE: tuple[Filter, ...] = (
    normalize_line_endings,
    cut_undecodable,
    _as_filter(stop_at_line_end),
    _as_filter(stop_at_balance),
    _as_filter(limit_block_length),
    _as_filter(limit_scope_by_indent),
    limit_scope_by_syntax,
    _as_filter(remove_repeated_lines),
    _as_filter(stop_at_suffix_line),
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
    text: str | None = raw
    for step in PIPELINE:
        text = step(text, ctx)
        if text is None:
            return None, step.__name__
    return text, None
