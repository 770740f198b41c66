"""The check every proposed edit passes: the model's reply, built into a replacement
of exactly one target, must parse in place (tree-sitter, and CPython for Python) and
define nothing twice; a reply that fails is retried once with the problem, then the
action gives up rather than offer broken code."""

from __future__ import annotations

import ast
import logging
from collections.abc import Awaitable, Callable

from mmlsp import chat
from mmlsp.features.actions.document import Doc
from mmlsp.features.actions.errors import ActionError
from mmlsp.features.actions.targets import Target
from mmlsp.syntax import SyntaxDocument, syntax_problems
from mmlsp.syntax.outline import definitions, find_definitions, node_text

log = logging.getLogger(__name__)

# How an action asks the model: chat messages in, the reply out.
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
        problem = problems[0]  # outside the new span: its line in the file
        return f"{problem.message} on line {problem.range.start.line + 1} of the file"
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
