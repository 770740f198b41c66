"""What the lightbulb offers, without calling the model: the actions at a range and
the kinds and commands they are offered under."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from mmlsp.features.actions.arguments import range_json
from mmlsp.features.actions.document import Doc
from mmlsp.features.actions.generate import comment_run_at, stub_at
from mmlsp.features.actions.targets import header_definition, on_definition_name
from mmlsp.syntax.outline import docstring_node

COMMAND_FIX = "mmlsp.fix"
COMMAND_ADD_DOCSTRING = "mmlsp.addDocstring"
COMMAND_EXPLAIN = "mmlsp.explain"
COMMAND_APPLY = "mmlsp.applyAction"
COMMAND_GENERATE = "mmlsp.generateCode"
COMMAND_IMPLEMENT = "mmlsp.implement"
COMMAND_EDIT = "mmlsp.editSelection"
COMMANDS = (
    COMMAND_FIX,
    COMMAND_ADD_DOCSTRING,
    COMMAND_EXPLAIN,
    COMMAND_APPLY,
    COMMAND_GENERATE,
    COMMAND_IMPLEMENT,
    COMMAND_EDIT,
)
KINDS = (
    types.CodeActionKind.QuickFix,
    types.CodeActionKind.RefactorRewrite,
    types.CodeActionKind.Empty,
)
REVIEW_SOURCE = "mmlsp-ai"


def _short(message: str, limit: int = 60) -> str:
    first = " ".join(message.split())
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _kind_wanted(kind: str, only: Sequence[str] | None) -> bool:
    if not only:
        return True
    return any(kind == want or kind.startswith(want + ".") for want in only)


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
        if comment_run_at(doc, rng) is not None:
            add(
                "Generate code with AI",
                types.CodeActionKind.RefactorRewrite,
                {"action": "generate", "range": range_json(rng)},
            )
        if stub_at(doc, rng) is not None:
            add(
                "Implement with AI",
                types.CodeActionKind.RefactorRewrite,
                {"action": "implement", "range": range_json(rng)},
            )
        node = header_definition(doc, rng)
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
        rng.start != rng.end or on_definition_name(doc, rng.start)
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
