"""Tests for mmlsp.syntax: grammar registry, incremental trees and syntax problems."""

from __future__ import annotations

import random
from typing import Any

import pytest
import tree_sitter
import tree_sitter_python
from lsprotocol import types as lsp

from mmlsp import syntax
from mmlsp.syntax import (
    SyntaxDocument,
    SyntaxProblem,
    error_count,
    get_language,
    get_parser,
    language_for,
    languages,
    parse,
    supported_languages,
    syntax_problems,
)
from mmlsp.text.positions import line_count, offset_at


def rng_(sl: int, sc: int, el: int, ec: int) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=sl, character=sc), end=lsp.Position(line=el, character=ec)
    )


def partial(sl: int, sc: int, el: int, ec: int, text: str) -> lsp.TextDocumentContentChangePartial:
    return lsp.TextDocumentContentChangePartial(range=rng_(sl, sc, el, ec), text=text)


def shape(node: tree_sitter.Node) -> tuple[Any, ...]:
    """Everything that must agree between an incremental tree and a fresh parse."""
    return (
        node.type,
        node.start_byte,
        node.end_byte,
        tuple(node.start_point),
        tuple(node.end_point),
        node.is_missing,
        node.has_error,
        tuple(shape(child) for child in node.children),
    )


def assert_tree_fresh(doc: SyntaxDocument) -> None:
    assert shape(doc.tree.root_node) == shape(parse(doc.text, doc.language).root_node)


# --- registry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language_id", "uri", "expected"),
    [
        ("python", "file:///tmp/notes.txt", "python"),
        (None, "file:///tmp/a.py", "python"),
        (None, "file:///tmp/stubs/a.pyi", "python"),
        ("", "file:///tmp/A.PY", "python"),
        ("plaintext", "file:///tmp/my%20dir/a.py", "python"),
        ("javascript", "file:///tmp/a.js", None),
        (None, "untitled:Untitled-1", None),
        (None, "file:///tmp/python", None),
        (None, "file:///tmp/archive.py.bak", None),
    ],
)
def test_language_for(language_id: str | None, uri: str, expected: str | None) -> None:
    assert language_for(language_id, uri) == expected


def test_language_and_parser_are_cached() -> None:
    assert "python" in supported_languages()
    assert get_language("python") is get_language("python")
    assert get_parser("python") is get_parser("python")
    with pytest.raises(KeyError):
        get_language("cobol")


def test_register_language(monkeypatch: pytest.MonkeyPatch) -> None:
    # Work on copies so the global registry is untouched after the test.
    monkeypatch.setattr(languages, "_GRAMMARS", dict(languages._GRAMMARS))
    monkeypatch.setattr(languages, "_LANGUAGE_IDS", dict(languages._LANGUAGE_IDS))
    monkeypatch.setattr(languages, "_EXTENSIONS", dict(languages._EXTENSIONS))
    try:
        syntax.register_language(
            "snake", tree_sitter_python.language, language_ids=("snake",), extensions=(".SNK",)
        )
        assert language_for("snake", "file:///x") == "snake"
        assert language_for(None, "file:///x.snk") == "snake"
        assert "snake" in supported_languages()
        assert error_count("x = 1\n", "snake") == 0
    finally:
        get_language.cache_clear()


# --- syntax problems ----------------------------------------------------------------


def problems(text: str) -> list[tuple[tuple[int, int, int, int], str]]:
    found = syntax_problems(SyntaxDocument(text, "python"))
    return [
        (
            (p.range.start.line, p.range.start.character, p.range.end.line, p.range.end.character),
            p.message,
        )
        for p in found
    ]


def test_clean_file_has_no_problems() -> None:
    text = "def f(a, b):\n    return a + b  # é中😀\n" * 200
    assert problems(text) == []
    assert error_count(text, "python") == 0


def test_missing_paren_in_def() -> None:
    assert problems("def f(:\n    pass\n") == [((0, 6, 0, 6), 'Missing ")"')]


def test_unclosed_call() -> None:
    assert problems("print((1, 2)\n") == [
        ((0, 0, 0, 12), 'Syntax error: unexpected "print((1, 2)"')
    ]


def test_utf16_columns_after_non_ascii() -> None:
    # 😀 is two UTF-16 units, é and 中 one each; byte columns would differ.
    assert problems('s = "😀é" +\n') == [((0, 0, 0, 11), 'Syntax error: unexpected "s = "😀é" +"')]
    assert problems('print("é" "😀" 中)\n') == [((0, 15, 0, 16), 'Syntax error: unexpected "中"')]
    assert problems("def é中(:\n    pass\n") == [((0, 7, 0, 7), 'Missing ")"')]


def test_problem_lines_with_crlf_and_lone_cr() -> None:
    assert problems("a = 1\r\nb = )\r\n") == [((1, 0, 1, 5), 'Syntax error: unexpected "b = )"')]
    # Tree-sitter does not count a lone \r as a row; LSP does.
    (((start_line, _, end_line, end_char), _),) = problems("a = 1\rb = )\r")
    assert (start_line, end_line, end_char) == (0, 1, 5)


def test_nested_errors_reported_once() -> None:
    doc = SyntaxDocument("def f(:\n  x = (\n", "python")
    assert doc.tree.root_node.type == "ERROR"
    assert len(syntax_problems(doc)) == 1


def test_long_error_snippet_is_truncated() -> None:
    [(_, message)] = problems("x = 1 " + "a " * 40 + ")\n")
    assert message.startswith('Syntax error: unexpected "')
    assert message.endswith('…"')
    assert len(message) < 70


def test_limit_and_error_count() -> None:
    text = "".join(f"x{i} = 1 2\n" for i in range(10))
    doc = SyntaxDocument(text, "python")
    assert len(syntax_problems(doc)) == 10
    assert len(syntax_problems(doc, limit=3)) == 3
    assert syntax_problems(doc, limit=0) == []
    assert error_count(text, "python") == 10
    assert error_count("def f(:\n    pass\n", "python") == 1


def test_problem_is_a_dataclass() -> None:
    [problem] = syntax_problems(SyntaxDocument("def f(:\n    pass\n", "python"))
    assert problem == SyntaxProblem(rng_(0, 6, 0, 6), 'Missing ")"')


# --- editing ------------------------------------------------------------------------


def test_partial_change_updates_text_and_tree() -> None:
    doc = SyntaxDocument("def f(:\n    pass\n", "python")
    doc.apply_change(partial(0, 6, 0, 6, ")"))
    assert doc.text == "def f():\n    pass\n"
    assert syntax_problems(doc) == []
    assert_tree_fresh(doc)


def test_reparse_is_incremental(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = SyntaxDocument("x = 1\ny = 2\n", "python")
    old_tree = doc.tree
    real_parser = get_parser("python")
    calls: list[tuple[bytes, object]] = []

    class SpyParser:
        def parse(self, source: bytes, old: tree_sitter.Tree | None = None) -> tree_sitter.Tree:
            calls.append((source, old))
            return real_parser.parse(source) if old is None else real_parser.parse(source, old)

    monkeypatch.setattr(languages, "get_parser", lambda name: SpyParser())
    doc.apply_change(partial(1, 4, 1, 5, "22"))
    assert calls == [(b"x = 1\ny = 22\n", old_tree)]
    assert old_tree.root_node.has_changes
    assert_tree_fresh(doc)


def test_whole_document_change_and_replace_text() -> None:
    doc = SyntaxDocument("x = (\n", "python")
    doc.apply_change(lsp.TextDocumentContentChangeWholeDocument(text="y = 1\n"))
    assert doc.text == "y = 1\n"
    assert syntax_problems(doc) == []
    doc.replace_text("z = )\n")
    assert doc.text == "z = )\n"
    assert len(syntax_problems(doc)) == 1
    assert_tree_fresh(doc)


def test_reversed_range_is_normalised() -> None:
    doc = SyntaxDocument("abc = 1\ndef = 2\n", "python")
    doc.apply_change(partial(1, 3, 0, 3, ""))
    assert doc.text == "abc = 2\n"
    assert_tree_fresh(doc)


def test_range_past_end_clamps() -> None:
    doc = SyntaxDocument("x = 1\ny = 2", "python")
    doc.apply_change(partial(1, 99, 42, 7, "\nz = 3\n"))
    assert doc.text == "x = 1\ny = 2\nz = 3\n"
    doc.apply_change(partial(0, 99, 1, 0, " + 0\n"))
    assert doc.text == "x = 1 + 0\ny = 2\nz = 3\n"
    assert_tree_fresh(doc)


def test_edits_with_non_ascii_and_crlf() -> None:
    doc = SyntaxDocument('s = "😀é"\r\nt = 中\r\n', "python")
    # Column 7 is after 's = "😀' (😀 is two units), so this inserts before é.
    doc.apply_change(partial(0, 7, 0, 7, "中"))
    assert doc.text == 's = "😀中é"\r\nt = 中\r\n'
    # Replace the CRLF between the lines by a lone CR.
    doc.apply_change(partial(0, 10, 1, 0, "\r"))
    assert doc.text == 's = "😀中é"\rt = 中\r\n'
    assert_tree_fresh(doc)
    assert syntax_problems(doc) == []


def test_split_surrogate_pair_never_raises() -> None:
    doc = SyntaxDocument("x = ''\n", "python")
    # A client that splits an emoji into two changes sends lone surrogates.
    doc.apply_change(partial(0, 5, 0, 5, "\ud83d"))
    doc.apply_change(partial(0, 6, 0, 6, "\ude00"))
    assert doc.text == "x = '\ud83d\ude00'\n"
    assert doc.source == b"x = '??'\n"
    assert syntax_problems(doc) == []
    doc.apply_change(partial(0, 5, 0, 7, "é"))
    assert doc.text == "x = 'é'\n"
    assert_tree_fresh(doc)


# --- the key property: incremental == from scratch ----------------------------------

PIECES = [
    "x", "y1", "def ", "class ", "f(", ")", "(", "[", "]", "{", "}", ":", ",", " = ", "+", "'",
    '"', '"""', "#", "\\", "pass", "return ", "if ", "else:", "lambda", "1", "2.5",
    " ", "    ", "\t", "\n", "\r\n", "\r", "\n    ", "é", "中", "😀", "𝄞",
]  # fmt: skip

STARTS = [
    "def f(a, b):\n    return a + b\n",
    'class C:\r\n    """Doc é中😀"""\r\n    x = [1, 2]\r\n',
    "",
    "if x:\r    y = '😀'\relse:\r    pass\r",
]


def random_range(rng: random.Random, text: str) -> lsp.Range:
    """Mostly small local ranges so the text stays big enough for subtree reuse."""
    lines = line_count(text)
    start = lsp.Position(
        line=rng.randrange(lines + 1),  # sometimes past the last line
        character=rng.choice([0, rng.randrange(16), rng.randrange(16), 999]),  # maybe mid-pair
    )
    roll = rng.random()
    if roll < 0.4:
        end = start
    elif roll < 0.98:
        end = lsp.Position(line=start.line + rng.choice([0, 0, 0, 1]), character=rng.randrange(20))
    else:
        end = lsp.Position(line=rng.randrange(lines + 1), character=rng.randrange(20))
    if rng.random() < 0.1:
        start, end = end, start  # clients should not send these, but must not break us
    return lsp.Range(start=start, end=end)


def random_insert(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.choice([0, 1, 1, 2, 3, 6])))


def ts_point(data: bytes, byte: int) -> tuple[int, int]:
    prefix = data[:byte]
    return prefix.count(b"\n"), byte - (prefix.rfind(b"\n") + 1)


def assert_edit_shifted_points(old_tree: tree_sitter.Tree, data: bytes) -> None:
    """Nodes of the edited old tree that the edit did not touch sit at the right points."""
    stack = [old_tree.root_node]
    while stack:
        node = stack.pop()
        if node.has_changes:
            stack.extend(node.children)
            continue
        assert tuple(node.start_point) == ts_point(data, node.start_byte)
        assert tuple(node.end_point) == ts_point(data, node.end_byte)


@pytest.mark.parametrize("seed", range(10))
def test_random_edits_match_full_reparse(seed: int) -> None:
    rng = random.Random(seed)
    text = STARTS[seed % len(STARTS)] * 10
    doc = SyntaxDocument(text, "python")
    for _ in range(250):
        change_range = random_range(rng, text)
        new = random_insert(rng)
        # The expected text, computed independently of SyntaxDocument.
        a = offset_at(text, change_range.start.line, change_range.start.character)
        b = offset_at(text, change_range.end.line, change_range.end.character)
        a, b = min(a, b), max(a, b)
        text = text[:a] + new + text[b:]

        old_tree = doc.tree
        doc.apply_change(lsp.TextDocumentContentChangePartial(range=change_range, text=new))
        assert doc.text == text
        assert doc.source == text.encode("utf-8", "replace")
        assert_edit_shifted_points(old_tree, doc.source)
        assert_tree_fresh(doc)
        assert syntax_problems(doc) == syntax_problems(SyntaxDocument(text, "python"))
    assert len(text) > 20  # the edits really exercised a non-trivial document


def test_many_changes_in_one_notification_parse_once(monkeypatch) -> None:
    """Issue 22, class 2: a formatter's 2,000 changes in one didChange were one
    incremental parse each (23 s on a 20k-line file). Now the edits go to the tree
    first and one parse follows, and the tree is the one a fresh parse gives."""
    import random

    from lsprotocol import types as lsp

    import mmlsp.syntax as syntax
    from mmlsp.syntax.store import MANY_CHANGES, SyntaxStore
    from mmlsp.text.changes import apply_changes

    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300))
    rng = random.Random(7)
    changes = []
    current = text
    for _ in range(40):  # random small edits, each against the text the last one left
        lines = current.split("\n")
        line = rng.randrange(len(lines))
        col = rng.randrange(len(lines[line]) + 1)
        insert = rng.choice(["(", "x", " ", "\n    y = 1\n", ""])
        end = lsp.Position(line, min(len(lines[line]), col + rng.randrange(3)))
        change = lsp.TextDocumentContentChangePartial(
            range=lsp.Range(lsp.Position(line, col), end), text=insert
        )
        changes.append(change)
        current = apply_changes(current, [change])
    parses = []
    real_get_parser = syntax.get_parser

    class CountingParser:
        def __init__(self, parser):
            self.parser = parser

        def parse(self, *args, **kwargs):
            parses.append(1)
            return self.parser.parse(*args, **kwargs)

    monkeypatch.setattr(languages, "get_parser", lambda lang: CountingParser(real_get_parser(lang)))
    doc = syntax.SyntaxDocument(text, "python")
    parses.clear()
    doc.apply_changes(changes[:MANY_CHANGES])
    assert len(parses) == 1
    expected = apply_changes(text, changes[:MANY_CHANGES])
    assert doc.text == expected
    assert str(doc.tree.root_node) == str(syntax.parse(expected, "python").root_node)
    # More than MANY_CHANGES: the store parses the protocol's text once, from scratch.
    store = SyntaxStore(10 << 20)
    store.open("file:///t.py", "python", text)
    parses.clear()
    store.change("file:///t.py", changes, current)
    mirrored = store.get("file:///t.py")
    assert len(parses) == 1 and mirrored is not None and mirrored.text == current
