"""Choosing the cross-file snippets that go at the start of a completion prompt.

Candidates, best first: the definitions (signature plus docstring) of names used near
the cursor that other files define (from ``mmlsp.context.workspace``), nearest use first; then
regions recently edited in other open documents, newest first. Near-duplicates are
dropped by Jaccard similarity of their identifier sets (of each other, and of the
text around the cursor, which the model sees anyway), and the rest are taken in rank
order until the token budget is spent.

The chosen pieces are then put in a *stable* order (by path, then line), not rank
order: the prompt's start must not change while the user types, so that the KV
prefix cache can reuse it. Pure functions over the index's answers.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass

from mmlsp.context.window import CursorContext
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.prompt.fim import ContextPiece, FimTemplate, comment_header

TokenCounter = Callable[[str], int]

# How many lines above the cursor are searched for names to look up.
NEAR_LINES = 40
MAX_NAMES = 24
# A candidate this alike to one already chosen is a duplicate (llama.vim uses 0.9).
DUPLICATE_JACCARD = 0.9
# A candidate this alike to the text around the cursor adds nothing the model sees.
VISIBLE_JACCARD = 0.5

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMON = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}


@dataclass(frozen=True)
class Candidate:
    path: str  # label, as ``WorkspaceIndex.relative_path`` gives it
    line: int
    text: str
    kind: str  # "definition" or "edit"


def identifiers(text: str) -> set[str]:
    return set(_IDENTIFIER.findall(text))


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def names_near_cursor(ctx: CursorContext) -> list[str]:
    """Names used above the cursor, nearest first, without keywords and builtins.

    The word being typed is left out: it changes on every keystroke and is rarely
    complete, and leaving it out keeps the chosen snippets (the prompt's start) stable.
    """
    lines = ctx.prefix.split("\n")[-NEAR_LINES:]
    cursor_line = re.sub(r"[A-Za-z0-9_]+$", "", lines[-1])
    seen: dict[str, None] = {}
    for line in [cursor_line, *reversed(lines[:-1])]:
        for name in reversed(_IDENTIFIER.findall(line)):
            if name not in _COMMON and name not in seen:
                seen[name] = None
    return list(seen)[:MAX_NAMES]


def candidates(index: WorkspaceIndex, uri: str | None, ctx: CursorContext) -> list[Candidate]:
    """Snippets worth showing, best first (see the module docstring)."""
    out: list[Candidate] = []
    taken: set[tuple[str, int]] = set()
    for name in names_near_cursor(ctx):
        found = index.definitions(name, exclude=uri)
        if not found:
            continue
        best = found[0]
        if (best.uri, best.line) in taken:
            continue
        taken.add((best.uri, best.line))
        out.append(
            Candidate(index.relative_path(best.uri), best.line, best.snippet(), "definition")
        )
    for edit_uri, region, line in index.recent_edits(exclude=uri):
        out.append(Candidate(index.relative_path(edit_uri), line, region, "edit"))
    return out


def select(
    found: list[Candidate],
    ctx: CursorContext,
    budget: int,
    count: TokenCounter,
    template: FimTemplate | None = None,
) -> list[ContextPiece]:
    """Deduplicated candidates within ``budget`` tokens, in a stable order."""
    if budget <= 0 or not found:
        return []
    near = "\n".join(ctx.prefix.split("\n")[-NEAR_LINES:]) + ctx.suffix[:2000]
    visible = identifiers(near)
    chosen: list[tuple[Candidate, set[str]]] = []
    used = 0
    for candidate in found:
        words = identifiers(candidate.text)
        if candidate.kind == "edit" and jaccard(words, visible) > VISIBLE_JACCARD:
            continue
        if any(jaccard(words, other) > DUPLICATE_JACCARD for _, other in chosen):
            continue
        # The label costs tokens too; a repo-format separator is about one.
        label = template.render_file_header(candidate.path) if template else None
        cost = count(label or comment_header(candidate.path)) + count(candidate.text)
        if used + cost > budget:
            continue  # a smaller one further down may still fit
        used += cost
        chosen.append((candidate, words))
    chosen.sort(key=lambda item: (item[0].path, item[0].line))
    return [ContextPiece(candidate.path, candidate.text) for candidate, _ in chosen]


def cross_file_pieces(
    index: WorkspaceIndex | None,
    uri: str | None,
    ctx: CursorContext,
    budget: int,
    count: TokenCounter,
    template: FimTemplate | None = None,
) -> list[ContextPiece]:
    """The pieces for a completion at ``ctx`` in document ``uri``; [] without an index."""
    if index is None or budget <= 0:
        return []
    return select(candidates(index, uri, ctx), ctx, budget, count, template)
