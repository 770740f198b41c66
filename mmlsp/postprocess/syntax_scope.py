"""Where a block suggestion's scope ends, judged by the grammar (languages that have one).

This module owns ``limit_scope_by_syntax``: a suggestion that starts a compound
statement ends with it, which sees what indentation cannot (strings and brackets that
run over lines, decorators, ``else`` branches).
"""

from __future__ import annotations

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.lines import cut_before, split_lines
from mmlsp.syntax import PYTHON_COMPOUND_STATEMENTS, parse

# Top-level statements that own an indented block, per grammar (syntax scope limit).
COMPOUND_NODES: dict[str, frozenset[str]] = {"python": PYTHON_COMPOUND_STATEMENTS}


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
    lines = split_lines(text, ctx, True)
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
    return text[: cut_before(lines[last + 1])]


def _dedent(line: str, width: int) -> str:
    stripped = line[:width].lstrip(" \t")
    return stripped + line[width:]
