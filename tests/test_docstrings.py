"""Docstrings: facts found with tree-sitter, placement for every shape, the three styles.

The model is a ``ScriptedEngine`` test double, so the placement is checked exactly; the
result is also checked with ``ast``: the docstring is attached to the right definition.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from lsprotocol import types

from mmlsp import chat
from mmlsp.features.actions import ActionError, Doc, docstring_edit
from mmlsp.prompt.docstrings import parse_reply, render_body, render_literal, skeleton
from mmlsp.syntax import SyntaxDocument
from mmlsp.syntax.outline import definition_facts, enclosing_definition
from tests.scripted_engine import ScriptedEngine, scripted_host

REPLY = "Do the thing.\n\nArgs:\n    a: the first value\n"


def make_doc(text: str) -> Doc:
    return Doc("file:///t/doc.py", 1, text, "python", SyntaxDocument(text, "python"))


async def add_docstring(
    text: str, line: int, tmp_path: Path, reply: str = REPLY, style: str = "google"
) -> tuple[str, types.TextEdit]:
    host = scripted_host(ScriptedEngine([reply]), tmp_path)
    doc = make_doc(text)

    async def ask(messages: chat.Messages) -> str:
        return await chat.ask(host, messages, 200, 10)

    position = types.Position(line, 0)
    edit = await docstring_edit(doc, types.Range(position, position), style, ask)
    start, end = doc.offset(edit.range.start), doc.offset(edit.range.end)
    return text[:start] + edit.new_text + text[end:], edit


def docstring_of(text: str, path: str) -> str | None:
    """``ast.get_docstring`` of the definition at dotted ``path`` (e.g. "C.m.inner")."""
    node: ast.AST = ast.parse(text)
    for part in path.split("."):
        node = next(
            n
            for n in ast.iter_child_nodes(node)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and n.name == part
        )
    return ast.get_docstring(node)  # type: ignore[arg-type]


async def test_function(tmp_path: Path) -> None:
    text = "def f(a):\n    return a\n"
    new, edit = await add_docstring(text, 0, tmp_path)
    assert edit.range == types.Range(types.Position(1, 4), types.Position(1, 4))
    assert new == (
        "def f(a):\n"
        '    """Do the thing.\n'
        "\n"
        "    Args:\n"
        "        a: The first value.\n"
        "\n"
        "    Returns:\n"
        "        The result.\n"
        '    """\n'
        "    return a\n"
    )


async def test_method_nested_async_decorated_and_class(tmp_path: Path) -> None:
    text = (
        "class C(Base):\n"  # 0
        "    def m(self, a):\n"  # 1
        "        def inner(a):\n"  # 2
        "            return a\n"  # 3
        "        return inner(a)\n"  # 4
        "\n"  # 5
        "    @staticmethod\n"  # 6
        "    @cache\n"  # 7
        "    async def fetch(a, *, b=1) -> bytes:\n"  # 8
        "        # a comment before the body\n"  # 9
        "        return await get(a, b)\n"  # 10
    )
    cases = {1: "C.m", 2: "C.m.inner", 6: "C.fetch", 8: "C.fetch", 0: "C"}
    for line, path in cases.items():
        new, _ = await add_docstring(text, line, tmp_path)
        assert docstring_of(new, path) is not None and docstring_of(new, path).startswith(
            "Do the thing."
        ), (line, new)
        # Nothing else changed: removing the docstring gives the original back.
        others = [p for p in cases.values() if p != path]
        assert all(docstring_of(new, other) is None for other in others)
    new, _ = await add_docstring(text, 2, tmp_path)
    assert '        def inner(a):\n            """Do the thing.\n\n            Args:' in new
    new, _ = await add_docstring(text, 8, tmp_path)
    # Placed after the leading comment, as the first statement, with the body's indent.
    assert '        # a comment before the body\n        """Do the thing.' in new


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("def f(): pass\n", 'def f():\n    """Do the thing."""\n    pass\n'),
        (
            "class K:\n    def m(self): return 1; x = 2\n",
            'class K:\n    def m(self):\n        """Do the thing.\n\n'
            '        Returns:\n            The result.\n        """\n'
            "        return 1; x = 2\n",
        ),
        ("class K: x = 1\n", 'class K:\n    """Do the thing."""\n    x = 1\n'),
        ("def f(): pass  # keep\n", 'def f():\n    """Do the thing."""\n    pass  # keep\n'),
    ],
)
async def test_one_line_bodies_move_under_the_docstring(
    text: str, expected: str, tmp_path: Path
) -> None:
    line = 1 if text.startswith("class K:\n") else 0
    new, _ = await add_docstring(text, line, tmp_path)
    assert new == expected
    ast.parse(new)


async def test_existing_docstring_is_replaced_in_place(tmp_path: Path) -> None:
    text = 'def f(a):\n    """Old."""\n    return a\n'
    new, edit = await add_docstring(text, 0, tmp_path)
    assert edit.range == types.Range(types.Position(1, 4), types.Position(1, 14))
    assert docstring_of(new, "f").startswith("Do the thing.")
    assert new.endswith('    """\n    return a\n')


async def test_tab_indented_body(tmp_path: Path) -> None:
    text = "def t(a):\n\tif a:\n\t\treturn a\n"
    new, _ = await add_docstring(text, 0, tmp_path)
    assert new.startswith('def t(a):\n\t"""Do the thing.\n')
    assert docstring_of(new, "t").startswith("Do the thing.")


async def test_fenced_quoted_reply_in_another_style(tmp_path: Path) -> None:
    reply = '```python\n"""Fetch a page.\n\n:param url: where to go\n:returns: the body\n"""\n```'
    text = "def get(url: str) -> bytes:\n    return fetch(url)\n"
    new, _ = await add_docstring(text, 0, tmp_path, reply, style="numpy")
    assert docstring_of(new, "get") == (
        "Fetch a page.\n\nParameters\n----------\nurl : str\n    Where to go.\n\n"
        "Returns\n-------\nbytes\n    The body."
    )


async def test_not_on_a_definition(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="no function or class"):
        await add_docstring("x = 1\n", 0, tmp_path)


def facts_of(text: str, line: int = 0):
    doc = SyntaxDocument(text, "python")
    column = len(text.split("\n")[line]) - len(text.split("\n")[line].lstrip())
    byte = doc.line_index.offset_to_byte(doc.line_index.offset_at(line, column))
    node = enclosing_definition(doc.tree, byte)
    assert node is not None
    return definition_facts(doc.source, node)


def test_facts_are_what_the_code_has() -> None:
    facts = facts_of(
        "def f(a, b: int = 1, /, *args: str, c, d=2, **kw) -> int:\n"
        "    def inner():\n"
        "        raise TypeError('not ours')\n"
        "    g = lambda: 1\n"
        "    if a:\n"
        "        raise ValueError('bad')\n"
        "    try:\n"
        "        pass\n"
        "    except Exception as exc:\n"
        "        raise exc\n"  # a variable: its class is unknown
        "    raise errors.Oops\n"
        "    raise\n"
        "    return a\n"
    )
    assert [p.name for p in facts.params] == ["a", "b", "*args", "c", "d", "**kw"]
    assert facts.params[1].annotation == "int" and facts.params[1].default == "1"
    assert facts.params[2].annotation == "str"
    assert facts.return_annotation == "int" and facts.returns_value
    assert facts.raises == ("ValueError", "errors.Oops")


def test_facts_of_methods_generators_and_classes() -> None:
    method = facts_of("class C:\n    def m(self, x):\n        print(x)\n", 1)
    assert method.kind == "method" and [p.name for p in method.params] == ["x"]
    assert not method.documents_return
    static = facts_of("class C:\n    @staticmethod\n    def s(x):\n        return x\n", 2)
    assert [p.name for p in static.params] == ["x"]
    gen = facts_of("def g(n):\n    def h():\n        return 1\n    yield n\n")
    assert gen.yields and not gen.returns_value
    cls = facts_of("class C:\n    def __init__(self, size: int):\n        self.size = size\n")
    assert cls.kind == "class" and [p.name for p in cls.params] == ["size"]
    none = facts_of("def f() -> None:\n    return\n")
    assert not none.documents_return


def test_styles_and_skeleton() -> None:
    facts = facts_of(
        "def f(a: int, *rest) -> str:\n    if a:\n        raise KeyError(a)\n    return ''\n"
    )
    content = parse_reply("Join things.\nArgs:\n  a: how many\n", facts)
    assert render_body(facts, content, "google") == (
        "Join things.\n\nArgs:\n    a (int): How many.\n    *rest: Extra positional arguments."
        "\n\nReturns:\n    str: The result.\n\nRaises:\n    KeyError: If the operation fails."
    )
    assert render_body(facts, content, "rest") == (
        "Join things.\n\n:param a: How many.\n:type a: int\n:param rest: Extra positional "
        "arguments.\n:returns: The result.\n:rtype: str\n:raises KeyError: If the operation fails."
    )
    assert skeleton(facts, "numpy").startswith("...\n\nParameters\n----------\na : int\n    ...")


def test_literal_is_safe() -> None:
    assert render_literal('Say """hi"""', "    ") == "\"\"\"Say '''hi'''\"\"\""
    assert render_literal('Ends with "', "") == '"""Ends with " """'
    assert render_literal("Path C:\\x", "") == 'r"""Path C:\\x"""'
    assert render_literal("A.\n\nB.", "  ") == '"""A.\n\n  B.\n  """'
