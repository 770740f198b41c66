"""Code actions: Fix, Add/Update docstring, Explain, Generate code (from a comment),
Implement (a stub function) and edit by instruction, listed at once and computed lazily.

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
* ``mmlsp.generateCode``: insert below the comment at the position the code it
  describes, and apply the edit;
* ``mmlsp.implement``: write the body of the stub function there (its body only a
  docstring, ``pass``, ``...`` or ``raise NotImplementedError``; the docstring stays)
  and apply the edit;
* ``mmlsp.editSelection``: ``[uri, range, instruction]``: replace the selection with
  the model's rewrite following the instruction (e.g. "use pathlib"), and apply the
  edit with ``workspace/applyEdit`` (so the editor can undo it);
* ``mmlsp.applyAction``: the fallback for clients without resolve support, taking the
  ``data`` of a listed action.

The package, one job a module: ``listing`` (what is offered, no model call),
``targets`` (what an action applies to), ``check`` (a reply parsed in place, retried
once), ``edits`` (fix and docstring edits), ``generate`` (generate, implement and
instruction edits), ``explain`` (the explanation and its
files), ``service`` (the LSP entry points); ``document``, ``arguments`` and ``errors``
are what they share. The names below are the package's public surface.
"""

from mmlsp.features.actions.arguments import parse_location, parse_range, range_json
from mmlsp.features.actions.check import Ask, checked_replacement, parse_problem
from mmlsp.features.actions.document import Doc
from mmlsp.features.actions.edits import docstring_edit, fix_edit, workspace_edit
from mmlsp.features.actions.errors import ActionCancelled, ActionError
from mmlsp.features.actions.explain import ExplainFiles, explain_markdown
from mmlsp.features.actions.generate import (
    comment_run_at,
    generate_edit,
    implement_edit,
    instruction_edit,
    stub_at,
)
from mmlsp.features.actions.listing import (
    COMMAND_ADD_DOCSTRING,
    COMMAND_APPLY,
    COMMAND_EDIT,
    COMMAND_EXPLAIN,
    COMMAND_FIX,
    COMMAND_GENERATE,
    COMMAND_IMPLEMENT,
    COMMANDS,
    KINDS,
    list_actions,
)
from mmlsp.features.actions.service import ActionService
from mmlsp.features.actions.targets import Target, explain_target_for, fix_target_for

__all__ = [
    "COMMANDS",
    "COMMAND_ADD_DOCSTRING",
    "COMMAND_APPLY",
    "COMMAND_EDIT",
    "COMMAND_EXPLAIN",
    "COMMAND_FIX",
    "COMMAND_GENERATE",
    "COMMAND_IMPLEMENT",
    "KINDS",
    "ActionCancelled",
    "ActionError",
    "ActionService",
    "Ask",
    "Doc",
    "ExplainFiles",
    "Target",
    "checked_replacement",
    "comment_run_at",
    "docstring_edit",
    "explain_markdown",
    "explain_target_for",
    "fix_edit",
    "fix_target_for",
    "generate_edit",
    "implement_edit",
    "instruction_edit",
    "list_actions",
    "parse_location",
    "parse_problem",
    "parse_range",
    "range_json",
    "stub_at",
    "workspace_edit",
]
