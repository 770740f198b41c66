"""The editable region of a next-edit request: the lines around the cursor the model
may rewrite.

A fixed window of lines (``ABOVE`` above the cursor's line, ``BELOW`` below, as Sweep's
21-line window and Zeta's excerpt do) whose two edges are moved, where a tree is at
hand, so that they do not cut through a bracketed expression, a multi-line string or a
single statement: a model asked to rewrite half a call writes the other half too, or
closes it early. An edge between two statements of a block (or of the module) is
clean. An edge that falls inside something else moves out to that thing's end (or up to
its start) when that costs at most ``SNAP_LINES`` lines and keeps the region within
``MAX_LINES``; otherwise it moves in, to the thing's other side, when the cursor's line
stays inside; otherwise it stays where it is. Pure: text and tree in, line numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass

import tree_sitter

ABOVE = 6
BELOW = 12
MAX_LINES = 30
SNAP_LINES = 6
# Node types whose children are statements: an edge between two of them is clean.
_BLOCK_WORDS = ("block", "body", "module", "program", "source_file", "translation_unit")


@dataclass(frozen=True)
class Region:
    """Lines ``[start, end)`` of a document, 0-based; ``end`` may equal the line count."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


def editable_region(
    line_count: int,
    cursor_line: int,
    tree: tree_sitter.Tree | None = None,
    *,
    above: int = ABOVE,
    below: int = BELOW,
) -> Region:
    """The region around ``cursor_line`` of a document of ``line_count`` lines."""
    cursor_line = min(max(cursor_line, 0), max(line_count - 1, 0))
    start = max(0, cursor_line - above)
    end = min(line_count, cursor_line + below + 1)
    if tree is None:
        return Region(start, end)
    root = tree.root_node
    end = _snap_end(root, start, end, cursor_line, line_count)
    start = _snap_start(root, start, end, cursor_line)
    return Region(start, end)


def _unit(root: tree_sitter.Node, line: int) -> tree_sitter.Node | None:
    """The node that an edge just above ``line`` would cut (it starts above ``line`` and
    ends on or below it, and the edge is not between two statements of a block), or
    None where the edge is clean."""
    node = root
    while True:
        child = next(
            (c for c in node.children if c.start_point.row < line <= c.end_point.row), None
        )
        if child is None:
            break
        node = child
    if node is root or any(word in node.type for word in _BLOCK_WORDS):
        return None
    if node.end_point.row == line and node.end_point.column == 0:
        return None  # ends where the line begins (a trailing newline): not cut
    return node


def _snap_end(root: tree_sitter.Node, start: int, end: int, cursor: int, count: int) -> int:
    if end >= count or (unit := _unit(root, end)) is None:
        return end
    out = unit.end_point.row + 1
    if out - end <= SNAP_LINES and out - start <= MAX_LINES:
        return min(out, count)
    inward = unit.start_point.row
    return inward if inward > cursor else end


def _snap_start(root: tree_sitter.Node, start: int, end: int, cursor: int) -> int:
    if start <= 0 or (unit := _unit(root, start)) is None:
        return start
    up = unit.start_point.row
    if start - up <= SNAP_LINES and end - up <= MAX_LINES:
        return up
    inward = unit.end_point.row + 1
    return inward if inward <= cursor else start
