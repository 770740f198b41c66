"""The syntax check: a block suggestion must not add syntax errors to the document.

This module owns ``check_parse``, the one filter that reparses: it inserts each
candidate (the suggestion, then its prefixes cut at line ends) into the document's
tree incrementally, exactly as the editor would (replace range and line endings
included), and keeps the longest that adds no error.
"""

from __future__ import annotations

from collections.abc import Iterator

import tree_sitter

from mmlsp.context.window import CursorContext
from mmlsp.postprocess.replace_range import replace_suffix_chars
from mmlsp.syntax import get_parser, iter_problem_nodes
from mmlsp.text.positions import encode_utf8, offset_to_byte, ts_point_after, ts_point_at


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
