"""What an action applies to: the exact span an edit replaces or an explanation
covers (a function, a statement, a docstring slot, whole lines), the definition whose
header or name the cursor is on, and the code and context around a target that the
model is shown."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from mmlsp.features.actions.document import Doc
from mmlsp.syntax.outline import (
    definition_named_at,
    enclosing_definition,
    enclosing_statement,
    fix_target,
    node_text,
    with_decorators,
)

# Context lines around a fix target, for the model to see what the code connects to.
_LINES_BEFORE = 12
_LINES_AFTER = 6
# Longest code sent for a docstring or an explanation, in lines.
_MAX_CODE_LINES = 150


@dataclass(frozen=True)
class Target:
    """The exact text an edit replaces, as string offsets of the document."""

    start: int
    end: int
    name: str | None = None

    def range(self, doc: Doc) -> types.Range:
        return types.Range(start=doc.position(self.start), end=doc.position(self.end))


def _whole_lines(doc: Doc, rng: types.Range) -> Target:
    index = doc.index
    # From the first line's code, not its column 0: a replacement starts after the
    # indentation it keeps (``chat.reindent`` leaves its first line unindented).
    first = index.line_text(rng.start.line)
    start = index.offset_at(rng.start.line, 0) + len(first) - len(first.lstrip())
    end_line = rng.end.line
    if rng.end.character == 0 and rng.end.line > rng.start.line:
        end_line -= 1  # a selection ending at column 0 does not include that line
    end = index.offset_at(end_line, 1 << 30)
    return Target(start, end)


def fix_target_for(doc: Doc, rng: types.Range) -> Target:
    """What a fix replaces: the enclosing function or statement, else the whole lines."""
    start, end = doc.offset(rng.start), doc.offset(rng.end)
    if doc.syntax is not None:
        node = fix_target(doc.syntax.tree, doc.byte(start), doc.byte(end))
        if node is not None and not node.has_error:
            return Target(doc.from_byte(node.start_byte), doc.from_byte(node.end_byte))
    return _whole_lines(doc, rng)


def explain_target_for(doc: Doc, rng: types.Range) -> Target:
    """The selection, else the enclosing definition or statement, else the line."""
    start, end = doc.offset(rng.start), doc.offset(rng.end)
    if start != end:
        return Target(start, end, _selected_definition_name(doc, start, end))
    if doc.syntax is not None:
        tree, byte = doc.syntax.tree, doc.byte(doc.code_offset(rng.start))
        node = enclosing_definition(tree, byte) or enclosing_statement(tree, byte, byte)
        if node is not None:
            name_node = node.child_by_field_name("name")
            name = node_text(doc.source, name_node) if name_node is not None else None
            return Target(doc.from_byte(node.start_byte), doc.from_byte(node.end_byte), name)
    return _whole_lines(doc, rng)


def _selected_definition_name(doc: Doc, start: int, end: int) -> str | None:
    """The name of the one definition a selection covers (whitespace aside), if so."""
    if doc.syntax is None:
        return None
    text = doc.text
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    node = enclosing_definition(doc.syntax.tree, doc.byte(start), doc.byte(end))
    if node is None:
        return None
    whole = with_decorators(node)
    if (doc.from_byte(whole.start_byte), doc.from_byte(whole.end_byte)) != (start, end):
        return None
    name = node.child_by_field_name("name")
    return node_text(doc.source, name) if name is not None else None


def indent_at(text: str, offset: int) -> str:
    """The indentation of the line ``offset`` is on, up to ``offset``."""
    line_start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    prefix = text[line_start:offset]
    return prefix if not prefix.strip() else prefix[: len(prefix) - len(prefix.lstrip())]


def code_of(doc: Doc, target: Target) -> str:
    """The target's text with its first line's indentation, dedented."""
    indent = indent_at(doc.text, target.start)
    return textwrap.dedent(indent + doc.text[target.start : target.end])


def context_around(doc: Doc, target: Target) -> tuple[str, str]:
    """``(lines before, lines after)`` the target, for the model to see what it connects to."""
    index = doc.index
    first, _ = index.position_at(target.start)
    last, _ = index.position_at(target.end)
    before = "\n".join(index.line_text(i) for i in range(max(0, first - _LINES_BEFORE), first))
    after_lines = range(last + 1, min(index.line_count, last + 1 + _LINES_AFTER))
    return before, "\n".join(index.line_text(i) for i in after_lines)


def truncate_lines(code: str, limit: int = _MAX_CODE_LINES) -> str:
    """``code`` cut to ``limit`` lines, with "..." where it was cut."""
    lines = code.split("\n")
    return code if len(lines) <= limit else "\n".join([*lines[:limit], "..."])


def header_definition(doc: Doc, rng: types.Range) -> Any:
    """The definition whose header (decorators to colon) holds the range start, if any."""
    if doc.syntax is None:
        return None
    start = doc.byte(doc.code_offset(rng.start))
    node = enclosing_definition(doc.syntax.tree, start)
    if node is None:
        return None
    top = with_decorators(node)
    body = node.child_by_field_name("body")
    last_header_row = node.start_point.row if body is None else body.start_point.row
    colon = next((c for c in node.children if c.type == ":"), None)
    if colon is not None:
        last_header_row = colon.end_point.row
    if top.start_point.row <= rng.start.line <= last_header_row:
        return node
    return None


def on_definition_name(doc: Doc, position: types.Position) -> bool:
    """Whether the cursor is on (or just after) a ``def``/``class`` name."""
    if doc.syntax is None:
        return False
    byte = doc.byte(doc.offset(position))
    return any(
        definition_named_at(doc.syntax.tree, b) is not None for b in {byte, max(0, byte - 1)}
    )


def enclosing_definition_target(doc: Doc, target: Target) -> Target | None:
    """The definition around a target that is only part of it (a fix of one line in a
    function that does not parse), to widen to when the reply rewrites it whole."""
    if doc.syntax is None:
        return None
    node = enclosing_definition(doc.syntax.tree, doc.byte(target.start), doc.byte(target.end))
    if node is None:
        return None
    node = with_decorators(node)
    wider = Target(doc.from_byte(node.start_byte), doc.from_byte(node.end_byte))
    return wider if (wider.start, wider.end) != (target.start, target.end) else None
