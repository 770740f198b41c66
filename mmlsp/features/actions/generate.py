"""Writing new code: the code a comment describes (inserted below it), the body of a
function that is only a stub (its docstring kept), and a selection rewritten as the
user's instruction says. Each edit is one target and passes ``check`` like the others.
"""

from __future__ import annotations

import builtins
import keyword
import re
import textwrap
from dataclasses import dataclass
from difflib import SequenceMatcher

import tree_sitter
from lsprotocol import types

from mmlsp import chat
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.features.actions.check import Ask, Rejected, checked_replacement
from mmlsp.features.actions.document import Doc
from mmlsp.features.actions.edits import only_target_definition
from mmlsp.features.actions.errors import ActionError
from mmlsp.features.actions.targets import (
    Target,
    code_of,
    context_around,
    explain_target_for,
    indent_at,
    truncate_lines,
)
from mmlsp.prompt.crossfile import identifiers
from mmlsp.syntax import parse
from mmlsp.syntax.outline import (
    docstring_node,
    enclosing_definition,
    find_definitions,
    indent_unit,
    line_indent,
    node_text,
    with_decorators,
)

# Comments that are not a description of code to write.
_PRAGMA = re.compile(
    r"^(#!|#\s*-\*-|#\s*(type|noqa|pragma|fmt|pylint|mypy|isort|ruff)\b|#\s*$)", re.IGNORECASE
)
_COMMON = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}
# Definitions from the workspace index shown to "Implement": how many, how long in all.
_MAX_DEFINITIONS = 8
_MAX_DEFINITION_CHARS = 3000


# -- Generate code from a comment ------------------------------------------------------
@dataclass(frozen=True)
class CommentRun:
    """Consecutive whole-line comments with one indentation: what the code should do."""

    first_line: int
    last_line: int
    indent: str
    description: str


def _comment_prefix(doc: Doc) -> tuple[str, ...]:
    return ("#",) if doc.language_id == "python" else ("#", "//", "--")


def _is_comment_line(doc: Doc, line: int) -> bool:
    text = doc.index.line_text(line)
    stripped = text.lstrip()
    if not stripped.startswith(_comment_prefix(doc)):
        return False
    if doc.syntax is None:
        return True
    # A "#" inside a multi-line string is no comment.
    offset = doc.index.offset_at(line, len(text) - len(stripped))
    node = doc.syntax.tree.root_node.descendant_for_byte_range(
        doc.byte(offset), doc.byte(offset) + 1
    )
    return node is not None and node.type == "comment"


def comment_run_at(doc: Doc, rng: types.Range) -> CommentRun | None:
    """The run of whole-line comments the range starts on, if it describes code."""
    line = rng.start.line
    if not (0 <= line < doc.index.line_count) or not _is_comment_line(doc, line):
        return None
    indent = indent_at(doc.index.line_text(line), len(doc.index.line_text(line)))

    def same(other: int) -> bool:
        return (
            0 <= other < doc.index.line_count
            and _is_comment_line(doc, other)
            and indent_at(doc.index.line_text(other), 1 << 20) == indent
        )

    first = line
    while same(first - 1):
        first -= 1
    last = line
    while same(last + 1):
        last += 1
    lines = [doc.index.line_text(i).strip() for i in range(first, last + 1)]
    described = [re.sub(r"^(#+|//+|--+)\s?", "", text) for text in lines if not _PRAGMA.match(text)]
    description = "\n".join(text for text in described if text.strip())
    if len(re.findall(r"[^\W\d_]{2,}", description)) < 2:  # not a description
        return None
    return CommentRun(first, last, indent, description)


def _indented(code: str, indent: str) -> str:
    """``code`` dedented, then every line indented by ``indent``, after a newline."""
    lines = textwrap.dedent(code).strip("\n").split("\n")
    return "".join("\n" + (indent + line if line.strip() else "") for line in lines).rstrip()


def _without_echo(code: str, echoed: list[str]) -> str:
    """``code`` without its leading lines that repeat ``echoed`` (the comment asked about)."""
    wanted = {" ".join(line.split()) for line in echoed if line.strip()}
    lines = code.split("\n")
    while lines and (not lines[0].strip() or " ".join(lines[0].split()) in wanted):
        lines.pop(0)
    return "\n".join(lines)


def _redefines(code: str, name: str, language: str | None) -> bool:
    """Whether ``code`` defines ``name`` (a reply that rewrites the enclosing function)."""
    if language is None:
        return False
    text = textwrap.dedent(code)
    return bool(find_definitions(parse(text, language), text.encode(), name))


def _definition_text(code: str, name: str, language: str | None) -> str | None:
    """The text of ``code``'s first definition of ``name``, decorators included."""
    if language is None:
        return None
    text = textwrap.dedent(code)
    found = find_definitions(parse(text, language), text.encode(), name)
    return node_text(text.encode(), with_decorators(found[0])) if found else None


_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)")


def _empty_body_of(doc: Doc, run: CommentRun) -> str | None:
    """The name of the function whose whole body is the comment, if it is one.

    Read off the lines, not the tree: a function whose body is only a comment does
    not parse, so tree-sitter has no definition there.
    """
    index = doc.index

    def indent(line: int) -> int:
        text = index.line_text(line)
        return len(text) - len(text.lstrip())

    header = run.first_line - 1
    while header >= 0 and (
        not index.line_text(header).strip() or indent(header) >= len(run.indent)
    ):
        header -= 1
    match = _DEF.match(index.line_text(header)) if header >= 0 else None
    if match is None:
        return None
    following = run.last_line + 1
    while following < index.line_count and not index.line_text(following).strip():
        following += 1
    if following < index.line_count and indent(following) > indent(header):
        return None  # the function has more body below the comment
    return match.group(1)


def _inserted_lines(reply: str, original: str) -> str | None:
    """The lines a reply adds to ``original`` when that is all it does, in one place.

    A small model asked for the code below a comment often answers with the whole
    function around it (or the context it was shown), the new lines inside: those
    lines are the answer. Lines compare without their indentation and blank lines.
    """
    old = [line.strip() for line in original.split("\n") if line.strip()]
    lines = [line for line in textwrap.dedent(reply).split("\n") if line.strip()]
    new = [line.strip() for line in lines]
    if len(old) < 2 or len(new) <= len(old):
        return None
    changes = [
        op
        for op in SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
        if op[0] != "equal"
    ]
    if len(changes) != 1 or changes[0][0] != "insert":
        return None
    _, _, _, first, last = changes[0]
    return "\n".join(lines[first:last])


async def generate_edit(doc: Doc, rng: types.Range, ask: Ask) -> types.TextEdit:
    """Insert the code the comment at ``rng`` describes below it, at its indentation."""
    run = comment_run_at(doc, rng)
    if run is None:
        raise ActionError("no comment describing code to write here")
    index = doc.index
    comment_lines = [index.line_text(i) for i in range(run.first_line, run.last_line + 1)]
    at = index.offset_at(run.last_line, 1 << 30)  # the end of the comment's last line
    target = Target(at, at)
    before, after = context_around(doc, Target(index.offset_at(run.first_line, 0), at))
    messages = chat.generate_messages(doc.language_id, run.description, before, after)
    # What the model may echo around its new lines (with or without the comment): the
    # enclosing definition, or the context it was shown.
    context = before + "\n" + after
    original_definition: str | None = None
    enclosing = None
    if doc.syntax is not None:
        comment_start = doc.byte(index.offset_at(run.first_line, len(run.indent)))
        enclosing = enclosing_definition(doc.syntax.tree, comment_start)
    enclosing_name = None
    language = doc.syntax.language if doc.syntax is not None else None
    if enclosing is not None:
        ident = enclosing.child_by_field_name("name")
        enclosing_name = node_text(doc.source, ident) if ident is not None else None
        rows = range(with_decorators(enclosing).start_point.row, enclosing.end_point.row + 1)
        kept = [index.line_text(i) for i in rows if not run.first_line <= i <= run.last_line]
        original_definition = "\n".join(kept)

    empty_body = _empty_body_of(doc, run) if enclosing is None else None

    def build(reply: str) -> str:
        code = chat.strip_fences(reply)
        inserted = _inserted_lines(code, context)
        if (
            empty_body is not None
            and language is not None
            and _redefines(code, empty_body, language)
        ):
            # The comment is the function's whole body, and the reply writes the whole
            # function: its body is the answer.
            inserted = _body_of(code, empty_body, language) or None
        if original_definition is not None and enclosing_name is not None:
            # Its version of the enclosing function (the rest of what it echoed may
            # differ: a small model rewrites the context too).
            echoed = _definition_text(code, enclosing_name, language)
            if echoed is not None:
                inserted = _inserted_lines(echoed, original_definition) or inserted
        if inserted is not None:
            code = inserted
        elif enclosing_name is not None and _redefines(code, enclosing_name, language):
            raise Rejected(
                f"it rewrote `{enclosing_name}` instead of writing the new code",
                "the reply rewrites the whole function; reply with only the new lines "
                "that go below the comment",
            )
        code = _without_echo(code, comment_lines)
        if not code.strip():
            raise Rejected("it returned no code", "the reply contains no code")
        return _indented(code, run.indent)

    where, replacement = await checked_replacement(doc, target, messages, build, ask, "code")
    return types.TextEdit(range=where.range(doc), new_text=replacement)


# -- Implement a stub function ---------------------------------------------------------
def _is_stub_statement(source: bytes, node: tree_sitter.Node) -> bool:
    if node.type == "pass_statement":
        return True
    if node.type == "expression_statement" and node.named_child_count == 1:
        return node.named_children[0].type == "ellipsis"
    if node.type == "raise_statement":
        return b"NotImplementedError" in source[node.start_byte : node.end_byte]
    return False


@dataclass(frozen=True)
class Stub:
    """A function whose body is only a docstring, ``pass``, ``...`` or ``raise
    NotImplementedError``: the span its new body replaces, and how to write it."""

    node: tree_sitter.Node  # the function_definition
    name: str
    target: Target
    indent: str
    newline: bool  # the replacement starts with a newline (after a docstring or a colon)


def stub_at(doc: Doc, rng: types.Range) -> Stub | None:
    """The stub function the range starts in (header or body), if any."""
    if doc.syntax is None or doc.syntax.language != "python":
        return None
    source = doc.source
    node = enclosing_definition(doc.syntax.tree, doc.byte(doc.code_offset(rng.start)))
    if node is None or node.type != "function_definition" or node.has_error:
        return None
    body, ident = node.child_by_field_name("body"), node.child_by_field_name("name")
    colon = next((c for c in node.children if c.type == ":"), None)
    if body is None or ident is None or colon is None:
        return None
    docstring = docstring_node(node)
    statements = [c for c in body.named_children if c.type != "comment"]
    rest = statements[1:] if docstring is not None else statements
    if not statements or not all(_is_stub_statement(source, s) for s in rest):
        return None
    one_line = body.start_point.row == colon.end_point.row
    if one_line and docstring is not None:
        return None  # `def f(): """doc"""`: no room for a body under it
    if one_line:
        indent = line_indent(source, node.start_byte) + indent_unit(source)
    else:
        indent = line_indent(source, statements[0].start_byte)
    end = doc.from_byte(body.end_byte)
    if docstring is not None:
        start, newline = doc.from_byte(statements[0].end_byte), True  # the docstring's
    elif one_line:
        start, newline = doc.from_byte(colon.end_byte), True
    else:
        start, newline = doc.from_byte(statements[0].start_byte), False
    name = node_text(source, ident)
    return Stub(node, name, Target(start, end, name), indent, newline)


def _body_of(reply: str, name: str, language: str) -> str:
    """The body the reply writes: its definition of ``name``'s body, else the reply, in
    both cases without a docstring (the function keeps its own)."""
    code = textwrap.dedent(reply).strip("\n")
    source = code.encode()
    tree = parse(code, language)
    found = [n for n in find_definitions(tree, source, name) if n.type == "function_definition"]
    top = [n for n in found if with_decorators(n).parent == tree.root_node]
    if top and (body := top[0].child_by_field_name("body")) is not None:
        statements = body.named_children
    elif not found:
        statements = tree.root_node.named_children
    else:
        return ""
    if statements and statements[0].type == "expression_statement":
        first = statements[0]
        if first.named_child_count == 1 and first.named_children[0].type == "string":
            statements = statements[1:]  # the docstring, echoed
    if not statements:
        return ""
    begin = statements[0].start_byte
    line_start = source.rfind(b"\n", 0, begin) + 1
    if not source[line_start:begin].strip():
        begin = line_start  # from the start of its line, so that dedent sees its indent
    text = source[begin : statements[-1].end_byte]
    return textwrap.dedent(text.decode("utf-8", "replace"))


def workspace_definitions(index: WorkspaceIndex | None, doc: Doc, text: str, own: set[str]) -> str:
    """Signatures and docstrings, from the workspace index, of the names ``text`` uses
    that other files define (the document's own code is in the prompt already)."""
    if index is None:
        return ""
    snippets: list[str] = []
    used = 0
    for name in sorted(identifiers(text) - _COMMON - own):
        found = index.definitions(name, exclude=doc.uri)
        if not found:
            continue
        snippet = f"# {index.relative_path(found[0].uri)}\n{found[0].snippet()}"
        if used + len(snippet) > _MAX_DEFINITION_CHARS:
            continue
        snippets.append(snippet)
        used += len(snippet)
        if len(snippets) >= _MAX_DEFINITIONS:
            break
    return "\n".join(snippets)


async def implement_edit(
    doc: Doc, rng: types.Range, ask: Ask, index: WorkspaceIndex | None = None
) -> types.TextEdit:
    """Write the body of the stub function at ``rng``; its signature and docstring stay."""
    stub = stub_at(doc, rng)
    if stub is None:
        raise ActionError(
            "no function here whose body is only a docstring, pass or ... to implement"
        )
    node = stub.node
    whole = Target(doc.from_byte(with_decorators(node).start_byte), doc.from_byte(node.end_byte))
    code = truncate_lines(code_of(doc, whole))
    before, after = context_around(doc, whole)
    definitions = workspace_definitions(
        index, doc, code + "\n" + before + "\n" + after, {stub.name}
    )
    messages = chat.implement_messages(doc.language_id, code, before, after, definitions)
    language = doc.syntax.language if doc.syntax is not None else "python"

    def build(reply: str) -> str:
        body = _body_of(chat.strip_fences(reply), stub.name, language)
        if not body.strip() or all(
            line.strip() in ("pass", "...", "") for line in body.split("\n")
        ):
            raise Rejected("it wrote no body", "the reply has no function body; implement it")
        if stub.newline:
            return _indented(body, stub.indent)
        return chat.reindent(body, stub.indent)

    where, replacement = await checked_replacement(
        doc, stub.target, messages, build, ask, "implementation"
    )
    return types.TextEdit(range=where.range(doc), new_text=replacement)


# -- Edit by instruction ---------------------------------------------------------------
def _nested_definition(reply: str, original: str, language: str | None) -> str:
    """The reply's one definition of the selected definition's name, when the reply
    wraps it in more (a method answered with its whole class); else the reply."""
    if language is None:
        return reply
    first = parse(textwrap.dedent(original), language).root_node.named_children[:1]
    node = first[0].child_by_field_name("definition") or first[0] if first else None
    ident = node.child_by_field_name("name") if node is not None else None
    if (
        node is None
        or ident is None
        or node.type not in ("function_definition", "class_definition")
    ):
        return reply
    source = textwrap.dedent(original).encode()
    name = node_text(source, ident)
    code = textwrap.dedent(reply)
    found = find_definitions(parse(code, language), code.encode(), name)
    whole = with_decorators(found[0]) if len(found) == 1 else None
    if whole is None or whole.parent is None or whole.parent.type == "module":
        return reply
    start = len(code.encode()[: whole.start_byte].decode())
    return textwrap.dedent(indent_at(code, start) + node_text(code.encode(), whole))


def instruction_target_for(doc: Doc, rng: types.Range) -> Target:
    """The selection without the indentation before it and the line breaks after it;
    without a selection, the definition or statement at the cursor."""
    start, end = doc.code_offset(rng.start), doc.offset(rng.end)
    if start >= end:
        return explain_target_for(doc, rng)
    text = doc.text
    while end > start and text[end - 1] in " \t\r\n":
        end -= 1
    return Target(start, end)


async def instruction_edit(
    doc: Doc, rng: types.Range, instruction: str, ask: Ask
) -> types.TextEdit:
    """Replace the selection at ``rng`` with the model's rewrite following ``instruction``."""
    if not instruction.strip():
        raise ActionError("no instruction given; nothing was changed")
    target = instruction_target_for(doc, rng)
    original = doc.text[target.start : target.end]
    if not original.strip():
        raise ActionError("nothing to edit here: select the code to change")
    code = code_of(doc, target)
    before, after = context_around(doc, target)
    if explain_target_for(doc, rng).name is not None:
        # A whole definition stands alone; the code around it only tempts a small
        # model to rewrite that instead.
        before = after = ""
    messages = chat.instruction_messages(doc.language_id, code, instruction, before, after)
    indent = indent_at(doc.text, target.start)
    language = doc.syntax.language if doc.syntax is not None else None

    def build(reply: str) -> str:
        cleaned = _nested_definition(
            only_target_definition(chat.strip_fences(reply), original, language),
            original,
            language,
        )
        if not cleaned.strip():
            raise Rejected("it returned no code", "the reply contains no code")
        replacement = chat.reindent(cleaned, indent)
        if replacement.strip() == original.strip():
            raise Rejected("it proposed no change", "the code is unchanged; apply the instruction")
        return replacement

    where, replacement = await checked_replacement(doc, target, messages, build, ask, "edit")
    return types.TextEdit(range=where.range(doc), new_text=replacement)
