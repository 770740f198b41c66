"""Command arguments: ``[uri, position-or-range, ...]`` (or LSP-shaped params) parsed
into a uri and a range, and ranges written back as JSON for an action's ``data``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from mmlsp.features.actions.errors import ActionError


def _position(value: Any) -> types.Position | None:
    if isinstance(value, dict) and isinstance(value.get("line"), int):
        character = value.get("character", 0)
        if isinstance(character, int):
            return types.Position(line=value["line"], character=character)
    return None


def parse_range(value: Any) -> types.Range | None:
    """A range from ``{start, end}`` or a zero-width one from ``{line, character}``."""
    if isinstance(value, types.Range):
        return value
    if isinstance(value, types.Position):
        return types.Range(start=value, end=value)
    if isinstance(value, dict) and "start" in value:
        start, end = _position(value.get("start")), _position(value.get("end", value["start"]))
        if start is None or end is None:
            return None
        if (end.line, end.character) < (start.line, start.character):
            start, end = end, start
        return types.Range(start=start, end=end)
    position = _position(value)
    return types.Range(start=position, end=position) if position else None


def parse_location(args: Sequence[Any]) -> tuple[str, types.Range]:
    """``(uri, range)`` from command arguments ``[uri, position-or-range, ...]``.

    The LSP-shaped ``[{textDocument: {uri}, position | range}, ...]`` that some
    clients build from their request parameters is taken too.
    """
    if args and isinstance(args[0], dict) and isinstance(args[0].get("textDocument"), dict):
        first = args[0]
        uri = first["textDocument"].get("uri")
        where = first.get("range", first.get("position"))
        args = [uri, where, *args[1:]]
    if len(args) < 2 or not isinstance(args[0], str):
        raise ActionError("expected arguments [uri, {line, character}] or [uri, {start, end}]")
    rng = parse_range(args[1])
    if rng is None:
        raise ActionError(f"not a position or range: {args[1]!r}")
    return args[0], rng


def range_json(rng: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": rng.start.line, "character": rng.start.character},
        "end": {"line": rng.end.line, "character": rng.end.character},
    }
