"""The edits the model computes: a fix of the function or statement at a range, a
docstring for the definition there (each checked by ``check``), and either as the
``WorkspaceEdit`` the client applies."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from lsprotocol import types

from mmlsp import chat
from mmlsp.features.actions.check import Ask, Rejected, checked_replacement
from mmlsp.features.actions.document import Doc
from mmlsp.features.actions.errors import ActionError
from mmlsp.features.actions.targets import (
    Target,
    code_of,
    context_around,
    enclosing_definition_target,
    fix_target_for,
    indent_at,
    truncate_lines,
)
from mmlsp.prompt.docstrings import parse_reply, render_body, render_literal, skeleton
from mmlsp.syntax import parse
from mmlsp.syntax.outline import (
    DEFINITIONS,
    definition_facts,
    docstring_slot,
    docstring_text,
    enclosing_definition,
    find_definitions,
    node_text,
    with_decorators,
)


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
    code = code_of(doc, target)
    before, after = context_around(doc, target)
    problem = problem.strip() or "Find and fix the bugs in this code."
    messages = chat.fix_messages(doc.language_id, code, problem, before, after)
    indent = indent_at(doc.text, target.start)
    language = doc.syntax.language if doc.syntax is not None else None
    build_narrow = _build_code(doc.text[target.start : target.end], indent, language)
    wider = enclosing_definition_target(doc, target)
    build: Callable[[str], str | tuple[Target, str]] = build_narrow
    if wider is not None and language is not None and doc.syntax is not None:
        name_node = enclosing_definition(doc.syntax.tree, doc.byte(target.start))
        ident = name_node.child_by_field_name("name") if name_node is not None else None
        name = node_text(doc.source, ident) if ident is not None else None
        wide_code = doc.text[wider.start : wider.end]
        build_wide = _build_code(wide_code, indent_at(doc.text, wider.start), language)

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
    code = truncate_lines(
        code_of(doc, Target(doc.from_byte(node.start_byte), doc.from_byte(node.end_byte)))
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


def workspace_edit(doc: Doc, edit: types.TextEdit, versioned: bool) -> types.WorkspaceEdit:
    if versioned:
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version)
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=identifier, edits=[edit])]
        )
    return types.WorkspaceEdit(changes={doc.uri: [edit]})
