"""The workspace index: tree-sitter definitions, bounds, open documents, recent edits."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lsprotocol import types

from mmlsp.context.workspace import WorkspaceIndex, extract_definitions, workspace_roots

UTIL = '''"""Helpers."""
import os


@cache
def load_config(path: str, *, strict: bool = False) -> dict:
    """Read the config at ``path``.

    Raises ValueError when strict and missing.
    """
    return {}


class Store(Base):
    """Keeps records."""

    def get(self, key):
        return None

    @property
    def size(self) -> int:
        return 0

    def _helper(self):
        def nested():
            pass


def load_config(path):  # a redefinition: the first one is what readers find
    pass
'''


def change(line: int, text: str) -> types.TextDocumentContentChangePartial:
    at = types.Position(line, 0)
    return types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)


def test_extract_top_level_definitions_with_signature_and_docstring() -> None:
    found = extract_definitions("file:///w/util.py", UTIL)
    assert [(d.name, d.kind, d.line) for d in found] == [
        ("load_config", "function", 5),
        ("Store", "class", 13),
        ("load_config", "function", 28),
    ]
    func, cls = found[0], found[1]
    assert func.signature == "@cache\ndef load_config(path: str, *, strict: bool = False) -> dict"
    assert (
        func.docstring
        == "Read the config at ``path``.\n\nRaises ValueError when strict and missing."
    )
    assert cls.methods == ("def get(self, key)", "def size(self) -> int", "def _helper(self)")
    assert cls.snippet() == (
        "class Store(Base):\n"
        '    """Keeps records."""\n'
        "    def get(self, key): ...\n"
        "    def size(self) -> int: ...\n"
        "    def _helper(self): ...\n"
    )
    assert "nested" not in {d.name for d in found}  # not importable from another file


def test_open_documents_are_indexed_lazily_and_follow_edits() -> None:
    index = WorkspaceIndex()
    index.opened("file:///w/util.py", UTIL)
    index.opened("file:///w/notes.txt", "def fake(): pass\n")  # not Python: ignored
    assert index.definition("load_config") == (
        "/w/util.py",
        "@cache\ndef load_config(path: str, *, strict: bool = False) -> dict",
        "Read the config at ``path``.\n\nRaises ValueError when strict and missing.",
    )
    assert index.definition("fake") is None and index.definition("missing") is None
    edited = UTIL + "\ndef added(x):\n    return x\n"
    index.changed("file:///w/util.py", edited, [change(31, "def added(x):\n")])
    assert index.definition("added") is not None
    index.changed("file:///w/util.py", "x = 1\n")
    assert index.definition("load_config") is None  # stale definitions are dropped


def test_open_documents_come_first(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def shared():\n    '''From disk.'''\n")
    index = WorkspaceIndex()
    index.add_roots([tmp_path])
    index.scan()
    index.opened("file:///elsewhere/b.py", "def shared():\n    '''Open.'''\n")
    found = index.definitions("shared")
    assert [d.docstring for d in found] == ["Open.", "From disk."]


def test_scan_skips_binary_huge_hidden_and_vendored_files(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("def good():\n    pass\n")
    (tmp_path / "pkg" / "types.pyi").write_text("def stub(x: int) -> int: ...\n")
    (tmp_path / "binary.py").write_bytes(b"def bad():\x00\n")
    (tmp_path / "latin.py").write_bytes("def latin():\n    '''\xe9'''\n".encode("latin-1"))
    (tmp_path / "huge.py").write_text("def huge():\n    pass\n" + "# x\n" * 5000)
    for skipped in (".venv", "node_modules", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "lib.py").write_text("def vendored():\n    pass\n")
    index = WorkspaceIndex(max_file_bytes=10_000)
    thread = index.scan_in_background([str(tmp_path)])
    assert thread is not None
    thread.join(30)
    assert index.definition("good") is not None and index.definition("stub") is not None
    for name in ("bad", "latin", "huge", "vendored"):
        assert index.definition(name) is None, name
    assert index.relative_path((tmp_path / "pkg" / "mod.py").as_uri()) == "pkg/mod.py"
    assert index.repo_name == tmp_path.name
    assert index.scan_in_background([str(tmp_path)]) is None  # already indexed


def test_file_count_bound(tmp_path: Path) -> None:
    for n in range(10):
        (tmp_path / f"m{n}.py").write_text(f"def f{n}():\n    pass\n")
    index = WorkspaceIndex(max_files=3)
    index.add_roots([tmp_path])
    assert index.scan() == 3
    assert sum(index.definition(f"f{n}") is not None for n in range(10)) == 3


def test_recent_edits_of_other_documents() -> None:
    index = WorkspaceIndex(max_edits=2)
    text = "".join(f"line_{n} = {n}\n" for n in range(40))
    index.opened("file:///w/a.py", text)
    index.opened("file:///w/b.py", text)
    index.changed("file:///w/a.py", text, [change(20, "")])
    index.changed("file:///w/a.py", text, [change(22, "")])  # same region: merged
    index.changed("file:///w/b.py", text, [change(5, "")])
    edits = index.recent_edits(exclude="file:///w/b.py")
    assert [(uri, first) for uri, _, first in edits] == [("file:///w/a.py", 16)]
    assert edits[0][1].startswith("line_16 = 16\n") and "line_24 = 24" in edits[0][1]
    index.changed("file:///w/b.py", text, [change(30, "")])  # a third region evicts a.py's
    assert [uri for uri, _, _ in index.recent_edits()] == ["file:///w/b.py"] * 2
    index.closed("file:///w/b.py")
    assert index.recent_edits() == []


def test_workspace_roots_from_initialize() -> None:
    params = types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        workspace_folders=[types.WorkspaceFolder(uri="file:///home/me/proj", name="proj")],
        root_uri="file:///ignored",
    )
    assert workspace_roots(params) == ["/home/me/proj"]
    only_root = types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri="file:///srv/code%20base"
    )
    assert workspace_roots(only_root) == ["/srv/code base"]
    assert workspace_roots(types.InitializeParams(capabilities=types.ClientCapabilities())) == []


def test_hover_finds_a_definition_in_a_workspace_file(tmp_path: Path) -> None:
    from mmlsp.engine import EngineHost
    from mmlsp.features.hover import HoverService
    from mmlsp.session import Session

    (tmp_path / "lib.py").write_text('def helper(n: int) -> int:\n    """Double n."""\n')
    index = WorkspaceIndex()
    index.add_roots([tmp_path])
    index.scan()
    uri = (tmp_path / "main.py").as_uri()
    session = Session(1_000_000, index)
    session.open(types.TextDocumentItem(uri, "python", 1, "x = helper(2)\n"))
    service = HoverService(session, EngineHost())  # finding the target asks no model
    found = service.target(uri, types.Position(0, 5))
    assert found is not None
    def_uri, doc, node, _ = found
    assert def_uri == (tmp_path / "lib.py").as_uri()
    assert doc.text[node.start_byte : node.end_byte].startswith("def helper(n: int)")
    assert service.target(uri, types.Position(0, 0)) is None  # `x`: no def


def test_the_document_being_completed_is_excluded_and_not_reparsed() -> None:
    index = WorkspaceIndex()
    index.opened("file:///w/a.py", "def shared():\n    pass\n")
    index.opened("file:///w/b.py", "def shared():\n    pass\n")
    found = index.definitions("shared", exclude="file:///w/a.py")
    assert [d.uri for d in found] == ["file:///w/b.py"]
    assert not index.is_indexed_definitions("file:///w/a.py")
    assert [d.uri for d in index.definitions("shared")] == ["file:///w/a.py", "file:///w/b.py"]


def test_a_hostile_workspace_reads_only_its_own_regular_files(tmp_path: Path) -> None:
    """Issue 22, class 1: links to devices and out of the workspace, FIFOs, huge and
    sparse files and odd names are never read (a read of /dev/zero never ends, a
    FIFO blocks for good, a link out of the workspace leaks another project's code)."""
    root = tmp_path / "ws"
    root.mkdir()
    outside = tmp_path / "secret.py"
    outside.write_text('def leaked():\n    """Outside the workspace."""\n')
    (root / "good.py").write_text('def good():\n    """In the workspace."""\n')
    (root / "zero.py").symlink_to("/dev/zero")
    (root / "random.py").symlink_to("/dev/urandom")
    (root / "out.py").symlink_to(outside)
    (root / "loop.py").symlink_to(root / "loop.py")
    os.mkfifo(root / "fifo.py")
    with open(root / "sparse.py", "wb") as handle:  # 10 GB that takes no disk
        handle.truncate(10 << 30)
    (root / "new\nline.py").write_text("def odd_name():\n    pass\n")
    index = WorkspaceIndex()
    index.add_roots([root])
    done = threading.Event()
    counted: list[int] = []
    thread = threading.Thread(target=lambda: (counted.append(index.scan()), done.set()))
    thread.daemon = True
    thread.start()
    assert done.wait(30), "the scan blocked"
    assert counted == [2]
    assert index.definitions("good") and index.definitions("odd_name")
    assert not index.definitions("leaked")
