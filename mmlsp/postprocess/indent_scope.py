"""Where a block suggestion's scope ends, judged by indentation (any language).

This module owns ``limit_scope_by_indent``: a line indented less than the block the
suggestion starts in leaves it, a block the suggestion opens ends it, and in Python the
suggestion may finish the enclosing statements when the code below the cursor already
sits outside the cursor's block.
"""

from __future__ import annotations

import re

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.lines import Line, cut_after, cut_before, next_suffix_line, split_lines
from mmlsp.syntax.shape import CLOSERS, Lexicon, indent_width

_DEFINITION_LINE = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]")


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
    lines = [line for line in split_lines(text, ctx, final) if line.complete]
    if ctx.mode == "balance":
        for line in lines[1:]:
            if not line.blank and not line.in_string and line.indent < ctx.shape.scope_indent:
                return cut_before(line)
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
            return cut_before(body)
        reference, after = body.indent, body.index
    else:
        reference, after = first.indent, first.index
    floor = reference if cursor_opened else _dedent_floor(ctx, reference)
    # Continuation lines count too (only string contents do not): code that leaves the
    # block inside an unclosed bracket has still left it.
    dedent = next(
        (
            cut_before(line)
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


def _dedent_floor(ctx: CursorContext, reference: int) -> int:
    """The least indentation a Python suggestion may dedent to before it has left scope.

    Normally the cursor's block. But when the code below the cursor is already outside
    that block (the block ends here), the suggestion may finish the enclosing
    statements too: an ``else:`` of the enclosing ``if``, the ``return`` after a loop.
    It stays within the enclosing definition, and above the code that follows.
    """
    if ctx.language != "python":
        return reference
    below = next_suffix_line(ctx)
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


def _end_of_opened_block(text: str, code_lines: list[Line], lex: Lexicon) -> int | None:
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
            return cut_after(text, line)
        return cut_before(line)
    return None


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
