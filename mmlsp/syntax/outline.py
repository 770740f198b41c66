"""Code units found with tree-sitter: definitions, statements, docstrings and their facts.

This module owns the questions the AI features ask of a syntax tree: which function,
class or statement encloses a range (the target of a fix or an explanation), which
definition a name or call refers to, what a definition's parameters, return value and
raised exceptions really are, and where its docstring is or should go. Everything is a
pure function of a tree and its source bytes; nothing here calls a model.

The node types are those of tree-sitter-python, the one grammar registered today;
other languages get no definitions here and the features fall back to whole lines.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import tree_sitter

from mmlsp.syntax import PYTHON_COMPOUND_STATEMENTS, PYTHON_SIMPLE_STATEMENTS

DEFINITIONS = ("function_definition", "class_definition")
# Nodes that are one statement in a block (simple or compound).
STATEMENTS = PYTHON_SIMPLE_STATEMENTS | PYTHON_COMPOUND_STATEMENTS
# Scopes whose returns and raises belong to someone else.
_NESTED_SCOPES = frozenset({"function_definition", "class_definition", "lambda"})
# A fix sends the enclosing function when it is at most this long, else the statement.
MAX_FIX_FUNCTION_LINES = 80


def node_hash(source: bytes, node: tree_sitter.Node, salt: str = "") -> str:
    """Stable key for a node's text: equal text, equal key; any edit changes it."""
    digest = hashlib.sha256(salt.encode() + b"\0" + source[node.start_byte : node.end_byte])
    return digest.hexdigest()[:24]


def node_text(source: bytes, node: tree_sitter.Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _contains(node: tree_sitter.Node, start: int, end: int) -> bool:
    return node.start_byte <= start and end <= node.end_byte


def smallest_node(tree: tree_sitter.Tree, start: int, end: int) -> tree_sitter.Node:
    """The smallest named node covering the byte range ``[start, end)``."""
    root = tree.root_node
    node = root.named_descendant_for_byte_range(start, max(start, end))
    return node if node is not None else root


def _ancestors(node: tree_sitter.Node | None) -> Iterator[tree_sitter.Node]:
    while node is not None:
        yield node
        node = node.parent


def enclosing_definition(
    tree: tree_sitter.Tree, start: int, end: int | None = None
) -> tree_sitter.Node | None:
    """The innermost function or class definition that covers ``[start, end)``."""
    end = start if end is None else end
    for node in _ancestors(smallest_node(tree, start, end)):
        if not _contains(node, start, end):
            continue
        if node.type in DEFINITIONS:
            return node
        if node.type == "decorated_definition":  # on a decorator line
            return node.child_by_field_name("definition")
    return None


def enclosing_function(tree: tree_sitter.Tree, start: int, end: int) -> tree_sitter.Node | None:
    for node in _ancestors(smallest_node(tree, start, end)):
        if node.type == "function_definition" and _contains(node, start, end):
            return node
    return None


def enclosing_statement(tree: tree_sitter.Tree, start: int, end: int) -> tree_sitter.Node | None:
    """The innermost statement that covers the range and parses cleanly, if any."""
    for node in _ancestors(smallest_node(tree, start, end)):
        if node.type in STATEMENTS and _contains(node, start, end):
            return node
    return None


def fix_target(tree: tree_sitter.Tree, start: int, end: int) -> tree_sitter.Node | None:
    """The node a fix replaces: the enclosing function if short, else the statement.

    A function gives the model enough context to fix the cause of a problem, not only
    its symptom; a long one costs too much, so the innermost statement is used there.
    None when the range is in no statement (e.g. a syntax error at module level).
    """
    function = enclosing_function(tree, start, end)
    if function is not None and function.end_point.row - function.start_point.row < (
        MAX_FIX_FUNCTION_LINES
    ):
        return function
    return enclosing_statement(tree, start, end)


def definition_named_at(tree: tree_sitter.Tree, byte: int) -> tree_sitter.Node | None:
    """The definition whose name is at ``byte`` (``def name`` / ``class name``)."""
    node = tree.root_node.named_descendant_for_byte_range(byte, byte)
    if node is None or node.type != "identifier":
        return None
    parent = node.parent
    if parent is not None and parent.type in DEFINITIONS:
        name = parent.child_by_field_name("name")
        if name is not None and name.id == node.id:
            return parent
    return None


def called_name_at(tree: tree_sitter.Tree, source: bytes, byte: int) -> str | None:
    """The name called at ``byte``: ``f`` in ``f(x)``, ``m`` in ``obj.m(x)``; else None."""
    node = tree.root_node.named_descendant_for_byte_range(byte, byte)
    if node is None or node.type != "identifier":
        return None
    parent = node.parent
    if parent is not None and parent.type == "attribute":
        if parent.child_by_field_name("attribute") != node:
            return None
        node, parent = parent, parent.parent
    if parent is not None and parent.type == "call" and parent.child_by_field_name("function"):
        function = parent.child_by_field_name("function")
        if function is not None and function.id == node.id:
            name = node if node.type == "identifier" else node.child_by_field_name("attribute")
            return node_text(source, name) if name is not None else None
    return None


def definitions(tree: tree_sitter.Tree) -> Iterator[tree_sitter.Node]:
    """Every function and class definition, in document order."""
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in DEFINITIONS:
            yield node
        stack.extend(reversed(node.named_children))


def find_definitions(tree: tree_sitter.Tree, source: bytes, name: str) -> list[tree_sitter.Node]:
    """Definitions called ``name`` (functions, methods and classes)."""
    found = []
    for node in definitions(tree):
        ident = node.child_by_field_name("name")
        if ident is not None and node_text(source, ident) == name:
            found.append(node)
    return found


def reviewable_functions(tree: tree_sitter.Tree) -> list[tree_sitter.Node]:
    """Functions and methods that are not nested in another function, in document order.

    A nested function is reviewed as part of its parent.
    """
    out = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "function_definition":
            out.append(node)
            continue
        stack.extend(reversed(node.named_children))
    return out


def signature(source: bytes, node: tree_sitter.Node) -> str:
    """A definition's header up to its colon, on one logical line (``def f(a, b) -> int``)."""
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    header = source[node.start_byte : end].decode("utf-8", "replace").rstrip()
    header = header.removesuffix(":").rstrip()
    if (parent := node.parent) is not None and parent.type == "decorated_definition":
        decorators = [node_text(source, c) for c in parent.children if c.type == "decorator"]
        header = "\n".join([*decorators, header])
    return header


def with_decorators(node: tree_sitter.Node) -> tree_sitter.Node:
    """The definition with its decorators: its ``decorated_definition`` parent, if any."""
    parent = node.parent
    return parent if parent is not None and parent.type == "decorated_definition" else node


def docstring_node(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The string node of a definition's docstring, if its body starts with one."""
    body = node.child_by_field_name("body")
    if body is None:
        return None
    first = next((c for c in body.named_children if c.type != "comment"), None)
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    string = first.named_children[0]
    return string if string.type == "string" else None


def docstring_text(source: bytes, node: tree_sitter.Node) -> str | None:
    """The cleaned text of a definition's docstring (quotes and indentation removed)."""
    string = docstring_node(node)
    if string is None:
        return None
    raw = node_text(source, string)
    match = re.match(r"(?is)^[rbuf]*('''|\"\"\"|'|\")(.*)\1$", raw)
    body = match.group(2) if match else raw
    return inspect.cleandoc(body)


@dataclass(frozen=True)
class Param:
    name: str  # with * or ** for variadics
    annotation: str | None = None
    default: str | None = None


@dataclass(frozen=True)
class DefinitionFacts:
    """What a docstring must describe, as the code really has it."""

    kind: str  # "function", "method" or "class"
    name: str
    params: tuple[Param, ...] = ()
    return_annotation: str | None = None
    returns_value: bool = False
    yields: bool = False
    raises: tuple[str, ...] = field(default=())
    is_async: bool = False

    @property
    def documents_return(self) -> bool:
        if self.kind == "class":
            return False
        if self.return_annotation in ("None", "NoReturn", "Never"):
            return False
        return self.returns_value or self.yields or self.return_annotation is not None


def _params(source: bytes, parameters: tree_sitter.Node | None) -> list[Param]:
    out: list[Param] = []
    if parameters is None:
        return out
    for child in parameters.named_children:
        kind = child.type
        if kind == "identifier":
            out.append(Param(node_text(source, child)))
        elif kind in ("list_splat_pattern", "dictionary_splat_pattern"):
            stars = "*" if kind == "list_splat_pattern" else "**"
            ident = next((c for c in child.named_children if c.type == "identifier"), None)
            if ident is not None:
                out.append(Param(stars + node_text(source, ident)))
        elif kind in ("typed_parameter", "default_parameter", "typed_default_parameter"):
            name_node = child.child_by_field_name("name")
            if name_node is None:  # typed *args: the first child is the splat pattern
                name_node = child.named_children[0] if child.named_children else None
            if name_node is None:
                continue
            name = node_text(source, name_node)
            if name_node.type in ("list_splat_pattern", "dictionary_splat_pattern"):
                ident = next((c for c in name_node.named_children if c.type == "identifier"), None)
                stars = "*" if name_node.type == "list_splat_pattern" else "**"
                name = stars + (node_text(source, ident) if ident is not None else "")
            type_node = child.child_by_field_name("type")
            value = child.child_by_field_name("value")
            out.append(
                Param(
                    name,
                    node_text(source, type_node) if type_node is not None else None,
                    node_text(source, value) if value is not None else None,
                )
            )
        # keyword_separator (*) and positional_separator (/) name no parameter.
    return out


def _own_nodes(body: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    """Nodes of a body, not descending into nested functions, classes or lambdas."""
    stack = list(reversed(body.named_children))
    while stack:
        node = stack.pop()
        yield node
        if node.type not in _NESTED_SCOPES:
            stack.extend(reversed(node.named_children))


def _raised_name(source: bytes, raise_node: tree_sitter.Node) -> str | None:
    """``ValueError`` for ``raise ValueError(...)`` or ``raise errors.ValueError``."""
    value = next((c for c in raise_node.named_children), None)
    if value is None:
        return None  # a bare re-raise names nothing new
    if value.type == "call":
        value = value.child_by_field_name("function") or value
    if value.type not in ("identifier", "attribute"):
        return None
    name = node_text(source, value)
    last = name.rsplit(".", 1)[-1]
    # A lower-case name is a variable holding an exception: its class is unknown.
    return name if last[:1].isupper() else None


def definition_facts(source: bytes, node: tree_sitter.Node) -> DefinitionFacts:
    """Parameters, return and raises of a function, or the constructor of a class."""
    name_node = node.child_by_field_name("name")
    name = node_text(source, name_node) if name_node is not None else ""
    if node.type == "class_definition":
        init = _class_init(source, node)
        params = _params(source, init.child_by_field_name("parameters")) if init else []
        return DefinitionFacts("class", name, tuple(params[1:]))
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        parent = parent.parent
    in_class = (
        parent is not None
        and parent.type == "block"
        and parent.parent is not None
        and parent.parent.type == "class_definition"
    )
    params = _params(source, node.child_by_field_name("parameters"))
    if in_class and params and not _is_staticmethod(source, node):
        params = params[1:]  # self or cls
    returns_value = yields = False
    raises: list[str] = []
    body = node.child_by_field_name("body")
    for inner in _own_nodes(body) if body is not None else ():
        if inner.type == "return_statement" and inner.named_child_count:
            returns_value = True
        elif inner.type == "yield":
            yields = True
        elif inner.type == "raise_statement":
            raised = _raised_name(source, inner)
            if raised and raised not in raises:
                raises.append(raised)
    annotation = node.child_by_field_name("return_type")
    return DefinitionFacts(
        kind="method" if in_class else "function",
        name=name,
        params=tuple(params),
        return_annotation=node_text(source, annotation) if annotation is not None else None,
        returns_value=returns_value,
        yields=yields,
        raises=tuple(raises),
        is_async=any(c.type == "async" for c in node.children),
    )


def _class_init(source: bytes, node: tree_sitter.Node) -> tree_sitter.Node | None:
    body = node.child_by_field_name("body")
    for child in body.named_children if body is not None else ():
        target = child
        if child.type == "decorated_definition":
            target = child.child_by_field_name("definition") or child
        if target.type == "function_definition":
            ident = target.child_by_field_name("name")
            if ident is not None and node_text(source, ident) == "__init__":
                return target
    return None


def _is_staticmethod(source: bytes, node: tree_sitter.Node) -> bool:
    parent = node.parent
    if parent is None or parent.type != "decorated_definition":
        return False
    return any(
        c.type == "decorator" and node_text(source, c).strip() == "@staticmethod"
        for c in parent.children
    )


@dataclass(frozen=True)
class DocstringSlot:
    """Where a docstring goes: replace ``[start_byte, end_byte)`` with
    ``before + literal + after``, the literal's continuation lines indented by ``indent``.
    """

    start_byte: int
    end_byte: int
    indent: str
    before: str = ""
    after: str = ""
    existing: bool = False


def line_indent(source: bytes, byte: int) -> str:
    """The whitespace that starts the line holding ``byte``."""
    line_start = source.rfind(b"\n", 0, byte) + 1
    line = source[line_start:byte].decode("utf-8", "replace")
    return line[: len(line) - len(line.lstrip(" \t"))]


def _starts_line(source: bytes, byte: int) -> bool:
    line_start = source.rfind(b"\n", 0, byte) + 1
    return not source[line_start:byte].strip(b" \t")


def indent_unit(source: bytes) -> str:
    """The document's indentation step: the first indented line's, else four spaces."""
    for match in re.finditer(rb"\n([ \t]+)\S", source):
        unit = match.group(1).decode()
        if unit.startswith("\t"):
            return "\t"
        return unit if len(unit) <= 8 else "    "
    return "    "


def docstring_slot(source: bytes, node: tree_sitter.Node) -> DocstringSlot | None:
    """Where the docstring of a function or class goes, per PEP 257.

    An existing docstring is replaced in place. Otherwise the docstring becomes the
    first statement of the body: inserted before it when the body is on its own
    lines, or, for a one-line body (``def f(): pass``), the body moves to a new line
    under the docstring. None for a definition with no body (a parse error).
    """
    body = node.child_by_field_name("body")
    if body is None or body.start_byte >= body.end_byte:
        return None
    existing = docstring_node(node)
    if existing is not None:
        indent = line_indent(source, existing.start_byte)
        return DocstringSlot(existing.start_byte, existing.end_byte, indent, existing=True)
    first = next((c for c in body.named_children if c.type != "comment"), None)
    colon = next((c for c in node.children if c.type == ":"), None)
    one_line = colon is not None and body.start_point.row == colon.end_point.row
    if not one_line and first is not None and _starts_line(source, first.start_byte):
        indent = line_indent(source, first.start_byte)
        return DocstringSlot(first.start_byte, first.start_byte, indent, after="\n" + indent)
    if colon is None:
        return None
    # One-line body: put the docstring and the body on their own lines.
    indent = line_indent(source, node.start_byte) + indent_unit(source)
    body_text = source[body.start_byte : body.end_byte].decode("utf-8", "replace")
    return DocstringSlot(
        colon.end_byte,
        body.end_byte,
        indent,
        before="\n" + indent,
        after="\n" + indent + body_text,
    )
