"""Code actions: Fix, Add/Update docstring and Explain, listed at once and computed lazily.

``textDocument/codeAction`` only looks at the syntax tree: it never calls the model, so
the lightbulb appears instantly. The model runs when an action is chosen: in
``codeAction/resolve`` for clients that resolve edits, otherwise through the
``mmlsp.applyAction`` command, which applies the edit with ``workspace/applyEdit``.
Every proposed edit replaces exactly one target range (a function, a statement or a
docstring slot found with tree-sitter) and is parsed before it is offered: if it has
more syntax errors than the document had, the model is asked once more with the error,
and then the action gives up with a message instead of offering broken code.

Commands (``workspace/executeCommand``), each taking ``[uri, position]`` or
``[uri, range]`` where a position is ``{line, character}`` and a range is
``{start, end}`` (LSP, 0-based, UTF-16):

* ``mmlsp.fix``: fix the code at the range (optional third argument: the problem to
  fix) and apply the edit;
* ``mmlsp.addDocstring``: add or update the docstring of the definition there and
  apply the edit;
* ``mmlsp.explain``: return the explanation as Markdown; it is also shown, with
  ``window/showDocument`` of a private temporary Markdown file where the client
  supports it, else ``window/showMessage``, unless a third argument ``{"show": false}``
  is given;
* ``mmlsp.applyAction``: the fallback for clients without resolve support, taking the
  ``data`` of a listed action.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import re
import shutil
import tempfile
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from mmlsp import chat
from mmlsp.config import Settings
from mmlsp.docstrings import parse_reply, render_body, render_literal, skeleton
from mmlsp.engine import EngineError, EngineHost
from mmlsp.features.client import Client
from mmlsp.features.progress import ProgressService, Work
from mmlsp.outline import (
    DEFINITIONS,
    definition_facts,
    definition_named_at,
    definitions,
    docstring_node,
    docstring_slot,
    docstring_text,
    enclosing_definition,
    enclosing_statement,
    find_definitions,
    fix_target,
    node_text,
    with_decorators,
)
from mmlsp.positions import LineIndex, encode_utf8
from mmlsp.session import Session
from mmlsp.syntax import SyntaxDocument, parse, syntax_problems

log = logging.getLogger(__name__)
T = TypeVar("T")

COMMAND_FIX = "mmlsp.fix"
COMMAND_ADD_DOCSTRING = "mmlsp.addDocstring"
COMMAND_EXPLAIN = "mmlsp.explain"
COMMAND_APPLY = "mmlsp.applyAction"
COMMANDS = (COMMAND_FIX, COMMAND_ADD_DOCSTRING, COMMAND_EXPLAIN, COMMAND_APPLY)
KINDS = (
    types.CodeActionKind.QuickFix,
    types.CodeActionKind.RefactorRewrite,
    types.CodeActionKind.Empty,
)
REVIEW_SOURCE = "mmlsp-ai"

# Context lines around a fix target, for the model to see what the code connects to.
_LINES_BEFORE = 12
_LINES_AFTER = 6
# Longest code sent for a docstring or an explanation, in lines.
_MAX_CODE_LINES = 150
ACTION_TIMEOUT_S = 180.0


class ActionError(JsonRpcException):
    """A reason the action could not produce a result, worded for the user.

    Raised out of a request handler it answers with LSP's RequestFailed error code.
    """

    CODE = -32803  # LSP RequestFailed


class ActionCancelled(ActionError):
    """The user cancelled the work (its progress, or the request): no popup for it."""

    CODE = -32800  # LSP RequestCancelled


@dataclass(frozen=True)
class Doc:
    """One document as an action sees it: text, version, syntax tree if any."""

    uri: str
    version: int | None
    text: str
    language_id: str
    syntax: SyntaxDocument | None

    @property
    def index(self) -> LineIndex:
        return self.syntax.line_index if self.syntax is not None else LineIndex(self.text)

    @property
    def source(self) -> bytes:
        return self.syntax.source if self.syntax is not None else encode_utf8(self.text)

    def offset(self, position: types.Position) -> int:
        return self.index.offset_at(position.line, position.character)

    def code_offset(self, position: types.Position) -> int:
        """Like ``offset``, but a position in a line's indentation moves to its code."""
        offset = self.offset(position)
        line = self.index.line_text(position.line)
        indent = len(line) - len(line.lstrip())
        if line.strip() and position.character <= indent:
            return self.index.offset_at(position.line, 0) + indent
        return offset

    def position(self, offset: int) -> types.Position:
        line, character = self.index.position_at(offset)
        return types.Position(line=line, character=character)

    def byte(self, offset: int) -> int:
        return self.index.offset_to_byte(offset)

    def from_byte(self, byte: int) -> int:
        return self.index.byte_to_offset(byte)

    def valid(self, rng: types.Range) -> bool:
        lines = self.index.line_count
        return all(0 <= p.line < lines and p.character >= 0 for p in (rng.start, rng.end))


# -- arguments --------------------------------------------------------------------------


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


# -- listing (no model call) -------------------------------------------------------------


def _short(message: str, limit: int = 60) -> str:
    first = " ".join(message.split())
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _kind_wanted(kind: str, only: Sequence[str] | None) -> bool:
    if not only:
        return True
    return any(kind == want or kind.startswith(want + ".") for want in only)


def _header_definition(doc: Doc, rng: types.Range) -> Any:
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


def _on_definition_name(doc: Doc, position: types.Position) -> bool:
    """Whether the cursor is on (or just after) a ``def``/``class`` name."""
    if doc.syntax is None:
        return False
    byte = doc.byte(doc.offset(position))
    return any(
        definition_named_at(doc.syntax.tree, b) is not None for b in {byte, max(0, byte - 1)}
    )


def list_actions(
    doc: Doc,
    rng: types.Range,
    diagnostics: Sequence[types.Diagnostic],
    only: Sequence[str] | None,
    *,
    docstring_style: str,
    resolvable: bool,
) -> list[types.CodeAction]:
    """The actions at ``rng``, without edits: they are computed when one is chosen.

    With ``resolvable`` the edit comes from ``codeAction/resolve``; otherwise each
    action carries the ``mmlsp.applyAction`` command.
    """
    if not doc.valid(rng):
        return []
    actions: list[types.CodeAction] = []

    def add(title: str, kind: str, data: dict[str, Any], **extra: Any) -> None:
        data = {"uri": doc.uri, "version": doc.version, **data}
        action = types.CodeAction(title=title, kind=kind, data=data, **extra)
        if not resolvable:
            action.command = types.Command(title=title, command=COMMAND_APPLY, arguments=[data])
        actions.append(action)

    if _kind_wanted(types.CodeActionKind.QuickFix, only):
        for diagnostic in diagnostics:
            if not doc.valid(diagnostic.range):
                continue
            add(
                f"Fix with AI: {_short(diagnostic.message)}",
                types.CodeActionKind.QuickFix,
                {
                    "action": "fix",
                    "range": range_json(diagnostic.range),
                    "message": diagnostic.message,
                },
                diagnostics=[diagnostic],
                is_preferred=diagnostic.source == REVIEW_SOURCE or None,
            )
        if rng.start != rng.end:
            add(
                "Fix selection with AI",
                types.CodeActionKind.QuickFix,
                {"action": "fix", "range": range_json(rng), "message": ""},
            )
    if _kind_wanted(types.CodeActionKind.RefactorRewrite, only):
        node = _header_definition(doc, rng)
        if node is not None:
            verb = "Update" if docstring_node(node) is not None else "Add"
            add(
                f"{verb} docstring ({docstring_style}) with AI",
                types.CodeActionKind.RefactorRewrite,
                {"action": "docstring", "range": range_json(rng)},
            )
    # Explain is offered for a selection or on a definition's name, not at every cursor
    # position: a lightbulb on every line is noise (the command still works anywhere).
    if _kind_wanted(types.CodeActionKind.Empty, only) and (
        rng.start != rng.end or _on_definition_name(doc, rng.start)
    ):
        title = "Explain selection with AI" if rng.start != rng.end else "Explain with AI"
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.Empty,
                command=types.Command(
                    title=title, command=COMMAND_EXPLAIN, arguments=[doc.uri, range_json(rng)]
                ),
            )
        )
    return actions


# -- targets --------------------------------------------------------------------------------


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


def _line_indent(text: str, offset: int) -> str:
    line_start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    prefix = text[line_start:offset]
    return prefix if not prefix.strip() else prefix[: len(prefix) - len(prefix.lstrip())]


def _code_of(doc: Doc, target: Target) -> str:
    """The target's text with its first line's indentation, dedented."""
    indent = _line_indent(doc.text, target.start)
    return textwrap.dedent(indent + doc.text[target.start : target.end])


def _context(doc: Doc, target: Target) -> tuple[str, str]:
    index = doc.index
    first, _ = index.position_at(target.start)
    last, _ = index.position_at(target.end)
    before = "\n".join(index.line_text(i) for i in range(max(0, first - _LINES_BEFORE), first))
    after_lines = range(last + 1, min(index.line_count, last + 1 + _LINES_AFTER))
    return before, "\n".join(index.line_text(i) for i in after_lines)


def _truncate_lines(code: str, limit: int = _MAX_CODE_LINES) -> str:
    lines = code.split("\n")
    return code if len(lines) <= limit else "\n".join([*lines[:limit], "..."])


# -- the checked edit ------------------------------------------------------------------------


def parse_problem(doc: Doc, target: Target, replacement: str) -> str | None:
    """Why ``replacement`` may not replace the target, else None.

    Not "no worse than before", which let a fix keep the broken line it was asked to
    fix: the replaced span must hold no syntax error at all (tree-sitter's, and for
    Python CPython's own, which also catches what tree-sitter accepts), the document
    must have no more errors than before, and the replacement must not define again
    a function or class the document already has (a model that answers "fix this
    line" with the whole function around it).
    """
    if doc.syntax is None:
        return None  # no grammar for this language: nothing to check against
    language = doc.syntax.language
    candidate = doc.text[: target.start] + replacement + doc.text[target.end :]
    checked = SyntaxDocument(candidate, language)
    first_line = doc.index.position_at(target.start)[0]
    last_line = first_line + replacement.count("\n")
    problems = syntax_problems(checked, limit=1000)
    inside = [p for p in problems if first_line <= p.range.start.line <= last_line]
    if inside:
        problem = inside[0]
        return f"{problem.message} on line {problem.range.start.line - first_line + 1}"
    if len(problems) > len(syntax_problems(doc.syntax, limit=1000)):
        problem = problems[0]
        return f"{problem.message} on line {problem.range.start.line - first_line + 1}"
    if language == "python" and (error := _cpython_error(candidate)) is not None:
        line, message = error
        if first_line <= line <= last_line:
            return f"{message} on line {line - first_line + 1}"
    return _duplicated_definition(doc, checked, first_line, last_line)


def _cpython_error(text: str) -> tuple[int, str] | None:
    """CPython's first syntax error as ``(0-based line, message)``; parsing runs nothing."""
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return max(0, (exc.lineno or 1) - 1), exc.msg
    except (ValueError, RecursionError, MemoryError):  # null bytes, absurd nesting
        return None
    return None


def _duplicated_definition(
    doc: Doc, checked: SyntaxDocument, first_line: int, last_line: int
) -> str | None:
    """A definition inside the new span whose name the document now defines once more."""
    assert doc.syntax is not None
    for node in definitions(checked.tree):
        if not first_line <= node.start_point.row <= last_line:
            continue
        ident = node.child_by_field_name("name")
        if ident is None:
            continue
        name = node_text(checked.source, ident)
        after = len(find_definitions(checked.tree, checked.source, name))
        before = len(find_definitions(doc.syntax.tree, doc.source, name))
        if after > max(before, 1):
            return f"it defines `{name}` a second time"
    return None


Ask = Callable[[chat.Messages], Awaitable[str]]


async def checked_replacement(
    doc: Doc,
    target: Target,
    messages: chat.Messages,
    build: Callable[[str], str | tuple[Target, str]],
    ask: Ask,
    what: str,
) -> tuple[Target, str]:
    """The replacement built from the model's reply, parsed in place; one retry with the error.

    ``build`` may widen the target (a reply that rewrites the whole enclosing
    function). A reply with no code, or the same code, is rejected like one that
    does not parse.
    """
    reply = await ask(messages)
    problem = ""
    for attempt in range(2):
        try:
            built = build(reply)
        except Rejected as exc:
            problem, feedback = str(exc), exc.feedback
        else:
            where, replacement = built if isinstance(built, tuple) else (target, built)
            if (found := parse_problem(doc, where, replacement)) is None:
                return where, replacement
            problem = feedback = f"it does not parse ({found})"
        log.info("%s rejected (attempt %d): %s", what, attempt + 1, problem)
        if attempt == 0:
            messages = chat.retry_messages(messages, reply, feedback)
            reply = await ask(messages)
    raise ActionError(f"the model's {what}: {problem}, even after a retry; nothing was changed")


class Rejected(Exception):
    """A reply that cannot be used; ``feedback`` tells the model why, for its retry."""

    def __init__(self, problem: str, feedback: str) -> None:
        super().__init__(problem)
        self.feedback = feedback


def only_target_definition(reply: str, original: str, language: str | None) -> str:
    """The reply's definition of the target's name, when the reply echoes more code.

    Small models often answer "fix this function" with the whole file around it; the
    function itself is still the answer. Other replies are returned as they are.
    """
    if language is None:
        return reply
    source = textwrap.dedent(original).encode()
    first = parse(source.decode(), language).root_node.named_children[:1]
    if not first:
        return reply
    node = first[0].child_by_field_name("definition") or first[0]
    ident = node.child_by_field_name("name")
    if node.type not in DEFINITIONS or ident is None:
        return reply
    name = node_text(source, ident)
    code = textwrap.dedent(reply).encode()
    tree = parse(code.decode(), language)
    if len(tree.root_node.named_children) < 2:
        return reply
    for found in find_definitions(tree, code, name):
        whole = with_decorators(found)
        if whole.parent == tree.root_node:
            return node_text(code, whole)
    return reply


def _build_code(code: str, indent: str, language: str | None = None) -> Callable[[str], str]:
    def build(reply: str) -> str:
        cleaned = only_target_definition(chat.strip_fences(reply), code, language)
        if not cleaned.strip():
            raise Rejected("it returned no code", "the reply contains no code")
        replacement = chat.reindent(cleaned, indent)
        if replacement.strip() == code.strip():
            raise Rejected("it proposed no change", "the code is unchanged, the problem remains")
        return replacement

    return build


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


def _defines(code: str, language: str, name: str) -> bool:
    """Whether ``code``'s top level defines ``name``."""
    source = textwrap.dedent(code).encode()
    tree = parse(source.decode(), language)
    top = tree.root_node
    return any(
        (parent := node.parent) is not None and (parent == top or parent.parent == top)
        for node in find_definitions(tree, source, name)
    )


async def fix_edit(doc: Doc, rng: types.Range, problem: str, ask: Ask) -> types.TextEdit:
    """Replace the function or statement at ``rng`` with the model's fix for ``problem``."""
    target = fix_target_for(doc, rng)
    code = _code_of(doc, target)
    before, after = _context(doc, target)
    problem = problem.strip() or "Find and fix the bugs in this code."
    messages = chat.fix_messages(doc.language_id, code, problem, before, after)
    indent = _line_indent(doc.text, target.start)
    language = doc.syntax.language if doc.syntax is not None else None
    build_narrow = _build_code(doc.text[target.start : target.end], indent, language)
    wider = enclosing_definition_target(doc, target)
    build: Callable[[str], str | tuple[Target, str]] = build_narrow
    if wider is not None and language is not None and doc.syntax is not None:
        name_node = enclosing_definition(doc.syntax.tree, doc.byte(target.start))
        ident = name_node.child_by_field_name("name") if name_node is not None else None
        name = node_text(doc.source, ident) if ident is not None else None
        wide_code = doc.text[wider.start : wider.end]
        build_wide = _build_code(wide_code, _line_indent(doc.text, wider.start), language)

        def build(reply: str) -> str | tuple[Target, str]:
            # A small model asked to fix one line of a function that does not parse
            # answers with the whole function: that replaces the function, not the line.
            if name is not None and _defines(chat.strip_fences(reply), language, name):
                return wider, build_wide(reply)
            return build_narrow(reply)

    where, replacement = await checked_replacement(doc, target, messages, build, ask, "fix")
    return types.TextEdit(range=where.range(doc), new_text=replacement)


async def docstring_edit(doc: Doc, rng: types.Range, style: str, ask: Ask) -> types.TextEdit:
    """Add or update the docstring of the definition at ``rng``, in ``style``."""
    if doc.syntax is None:
        raise ActionError("docstrings need a language with syntax support (Python)")
    source = doc.source
    node = enclosing_definition(doc.syntax.tree, doc.byte(doc.code_offset(rng.start)))
    if node is None:
        raise ActionError("no function or class here")
    slot = docstring_slot(source, node)
    if slot is None:
        raise ActionError("this definition has no body to put a docstring in")
    facts = definition_facts(source, node)
    target = Target(doc.from_byte(slot.start_byte), doc.from_byte(slot.end_byte), facts.name)
    code = _truncate_lines(
        _code_of(doc, Target(doc.from_byte(node.start_byte), doc.from_byte(node.end_byte)))
    )
    messages = chat.docstring_messages(
        doc.language_id,
        code,
        facts.kind,
        style,
        skeleton(facts, style),
        docstring_text(source, node),
    )

    def build(reply: str) -> str:
        if chat.echoes_prompt(reply, messages):
            raise Rejected(
                "it repeated the question instead of answering it",
                "the reply repeats the instructions; write the docstring text itself",
            )
        content = parse_reply(chat.strip_fences(reply), facts)
        if content.is_empty:
            # parse_reply fills in a stand-in summary; alone it is no docstring.
            raise Rejected("it wrote no docstring text", "the reply has no docstring text")
        literal = render_literal(render_body(facts, content, style), slot.indent)
        return slot.before + literal + slot.after

    where, replacement = await checked_replacement(doc, target, messages, build, ask, "docstring")
    return types.TextEdit(range=where.range(doc), new_text=replacement)


async def explain_markdown(doc: Doc, rng: types.Range, ask: Ask) -> tuple[str, str]:
    """``(title, Markdown)`` explaining the selection or the definition at ``rng``."""
    target = explain_target_for(doc, rng)
    code = _truncate_lines(_code_of(doc, target))
    if not code.strip():
        raise ActionError("nothing to explain here")
    messages = chat.explain_messages(doc.language_id, code, target.name)
    reply = await ask(messages)
    answer = chat.drop_echoed_code(chat.clean_markdown(reply), code)
    if (problem := chat.prose_problem(answer, messages)) is not None:
        raise ActionError(f"{problem}; nothing to show")
    if isinstance(reply, chat.Reply) and reply.cut_short:
        answer = chat.clean_markdown(chat.trim_unfinished(answer))
        answer += "\n\n*(The answer was cut short: the model was still writing at its limit.)*"
    line = doc.index.position_at(target.start)[0] + 1
    title = f"`{target.name}`" if target.name else f"line {line}"
    fence = "````" if "```" in code else "```"
    # Plain Markdown only: every client renders it (HTML such as <sub> shows as text).
    where = doc.uri.rsplit("/", 1)[-1] or doc.uri
    markdown = (
        f"# Explanation of {title}\n\n{answer}\n\n"
        f"*{where}, line {line}:*\n\n{fence}{doc.language_id}\n{code}\n{fence}\n"
    )
    return title, markdown


# -- edits as LSP results -------------------------------------------------------------------


def workspace_edit(doc: Doc, edit: types.TextEdit, versioned: bool) -> types.WorkspaceEdit:
    if versioned:
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version)
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=identifier, edits=[edit])]
        )
    return types.WorkspaceEdit(changes={doc.uri: [edit]})


# -- private Markdown files for window/showDocument ---------------------------------------


class ExplainFiles:
    """Markdown files in a private temporary directory (0700, files 0600), removed at exit."""

    def __init__(self) -> None:
        self._dir: Path | None = None

    @property
    def directory(self) -> Path:
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="mmlsp-explain-"))  # mode 0700
        return self._dir

    def write(self, name: str, markdown: str) -> Path:
        safe = re.sub(r"[^\w.-]+", "_", name).strip("_.")[:60] or "explanation"
        path = self.directory / f"{safe}.md"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(markdown)
        os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
        return path

    def cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


# -- the service the server delegates to ------------------------------------------------------


class ActionService:
    """Actions over the open documents: listing, resolving and the commands."""

    def __init__(
        self,
        session: Session,
        settings: Callable[[], Settings],
        host: EngineHost,
        client: Client,
        progress: ProgressService | None = None,
    ) -> None:
        self.session = session
        self.settings = settings  # the current settings (they change at runtime)
        self.host = host
        self.client = client
        self.progress = progress if progress is not None else ProgressService(client)
        self.files = ExplainFiles()

    def resolvable(self) -> bool:
        return self.client.capabilities.resolves_edits

    def _versioned(self) -> bool:
        return self.client.capabilities.versioned_edits

    # documents -----------------------------------------------------------------------
    def doc(self, uri: str) -> Doc:
        snapshot = self.session.snapshot(uri)
        if snapshot is None:
            raise ActionError(f"unknown document {uri} (it is not open)")
        return Doc(uri, snapshot.version, snapshot.text, snapshot.language, snapshot.syntax)

    def _ask(self, max_new_tokens: int, work: Work, code_reply: bool = False) -> Ask:
        async def ask(messages: chat.Messages) -> str:
            work.report("thinking…", force=True)
            try:
                return await chat.ask(
                    self.host,
                    messages,
                    max_new_tokens,
                    ACTION_TIMEOUT_S,
                    cancel=work.cancel,
                    code_reply=code_reply,
                    on_text=work.on_text,
                )
            except EngineError as exc:
                if work.cancel.is_set():
                    raise ActionCancelled("cancelled") from exc
                raise

        return ask

    async def _with_progress(self, title: str, run: Callable[[Work], Awaitable[T]]) -> T:
        """Run model-backed work under a cancellable work-done progress titled ``title``."""
        work = await self.progress.start(f"mmlsp: {title}")
        outcome = "cancelled"
        try:
            result = await run(work)
            outcome = "done"
            return result
        except ActionError as exc:
            outcome = str(exc)
            raise
        except asyncio.CancelledError:
            work.cancel.set()  # the request was cancelled: stop the model too
            raise
        finally:
            work.end(outcome)

    # LSP entry points ------------------------------------------------------------------
    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        try:
            doc = self.doc(params.text_document.uri)
        except ActionError:
            return []
        return list_actions(
            doc,
            params.range,
            params.context.diagnostics,
            params.context.only,
            docstring_style=self.settings().docstring_style,
            resolvable=self.resolvable(),
        )

    async def compute_edit(self, data: Any) -> tuple[Doc, types.TextEdit]:
        """The edit for a listed action's ``data``; ActionError says why there is none."""
        if not isinstance(data, dict) or data.get("action") not in ("fix", "docstring"):
            raise ActionError(f"not an mmlsp action: {data!r}")
        doc = self.doc(str(data.get("uri")))
        if data.get("version") is not None and data["version"] != doc.version:
            raise ActionError("the document changed since the action was offered; try again")
        rng = parse_range(data.get("range"))
        if rng is None or not doc.valid(rng):
            raise ActionError("the action's range is outside the document")

        async def run(work: Work) -> types.TextEdit:
            try:
                if data["action"] == "fix":
                    # Room for the target rewritten with some additions, fences included
                    # (code runs about 3 to 4 characters a token).
                    target = fix_target_for(doc, rng)
                    tokens = min(1536, (target.end - target.start) // 2 + 96)
                    ask = self._ask(tokens, work, code_reply=True)
                    return await fix_edit(doc, rng, str(data.get("message") or ""), ask)
                ask = self._ask(320, work, code_reply=True)
                return await docstring_edit(doc, rng, self.settings().docstring_style, ask)
            except EngineError as exc:
                raise ActionError(str(exc)) from exc

        title = "fixing the code" if data["action"] == "fix" else "writing the docstring"
        return doc, await self._with_progress(title, run)

    async def resolve(self, action: types.CodeAction) -> types.CodeAction:
        if not isinstance(action.data, dict) or "action" not in action.data:
            return action  # not one of ours to resolve (e.g. Explain, which is a command)
        try:
            doc, edit = await self.compute_edit(action.data)
        except ActionCancelled:
            raise
        except ActionError as exc:
            self.client.notify_user(f"{action.title}: {exc}", logging.WARNING)
            raise
        action.edit = workspace_edit(doc, edit, self._versioned())
        return action

    async def apply(self, data: Any) -> bool:
        """Compute an edit and apply it through the client (``workspace/applyEdit``)."""
        doc, edit = await self.compute_edit(data)
        result = await self.client.apply_edit(
            types.ApplyWorkspaceEditParams(
                edit=workspace_edit(doc, edit, self._versioned()), label="mmlsp"
            )
        )
        if not getattr(result, "applied", False):  # a client may even answer null
            reason = getattr(result, "failure_reason", None) or "no reason given"
            raise ActionError(f"the editor did not apply the edit: {reason}")
        return True

    async def execute(self, command: str, args: Sequence[Any]) -> Any:
        """Run one of ``COMMANDS``; errors are shown to the user and re-raised."""
        try:
            if command == COMMAND_APPLY:
                if not args:
                    raise ActionError("mmlsp.applyAction expects the action's data")
                return await self.apply(args[0])
            uri, rng = parse_location(args)
            if command == COMMAND_EXPLAIN:
                options = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
                return await self.explain(uri, rng, show=options.get("show", True) is not False)
            doc = self.doc(uri)
            if command == COMMAND_FIX:
                problem = args[2] if len(args) > 2 and isinstance(args[2], str) else ""
                data = {"action": "fix", "range": range_json(rng), "message": problem}
            else:
                data = {"action": "docstring", "range": range_json(rng)}
            return await self.apply({**data, "uri": doc.uri, "version": doc.version})
        except ActionCancelled:
            raise
        except ActionError as exc:
            self.client.notify_user(f"{command}: {exc}", logging.WARNING)
            raise

    async def explain(self, uri: str, rng: types.Range, show: bool = True) -> str:
        doc = self.doc(uri)
        if not doc.valid(rng):
            raise ActionError("the range is outside the document")

        async def run(work: Work) -> tuple[str, str]:
            try:
                return await explain_markdown(doc, rng, self._ask(320, work))
            except EngineError as exc:
                raise ActionError(str(exc)) from exc

        title, markdown = await self._with_progress("explaining the code", run)
        if show:
            await self._show(title, markdown)
        return markdown

    async def _show(self, title: str, markdown: str) -> None:
        if self.client.capabilities.show_document:
            path = self.files.write(title.strip("`"), markdown)
            try:
                result = await self.client.show_document(
                    types.ShowDocumentParams(uri=path.as_uri(), external=False, take_focus=True)
                )
                if getattr(result, "success", False):  # a client may even answer null
                    return
            except Exception as exc:  # a client may refuse; fall back to a message
                log.debug("window/showDocument failed: %s", exc)
        self.client.show_message(markdown, types.MessageType.Info)
