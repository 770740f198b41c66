"""An index of the workspace's Python definitions, for cross-file context and hover.

This module owns ``WorkspaceIndex``: for every indexed file (open documents, and the
Python files of the workspace folders, scanned in the background at initialize) the
top-level functions and classes, found with a tree-sitter query, each with its
signature and docstring (a class also lists its methods' signatures). It also keeps
the regions recently edited in each open document. It never runs user code: files
are only read and parsed.

Bounds keep a huge workspace cheap: at most ``max_files`` files, none over
``max_file_bytes``, ``max_total_bytes`` read in all; binary files (a NUL byte, or not
UTF-8) and vendored or hidden folders are skipped. Open documents are re-indexed
lazily, on the first lookup after an edit, so typing costs one dictionary write.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

import tree_sitter
from lsprotocol import types

from mmlsp.syntax import get_language, parse
from mmlsp.syntax.outline import docstring_text, signature
from mmlsp.text.positions import encode_utf8

log = logging.getLogger(__name__)

PYTHON_SUFFIXES = (".py", ".pyi")
# Folders that hold generated, vendored or tool files, never the user's own code.
SKIP_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        "site-packages",
        "venv",
        "env",
        "build",
        "dist",
        "htmlcov",
    }
)
MAX_METHODS = 16  # method signatures listed in a class's snippet
MAX_DOCSTRING = 600  # characters of a docstring kept in a snippet
EDIT_CONTEXT_LINES = 4  # lines kept on each side of a recent edit
EDIT_MERGE_LINES = 8  # an edit this close to a kept one refreshes it instead

# Top-level definitions only: what another file can import by name.
_QUERY = """
(module (function_definition name: (identifier) @name) @definition)
(module (class_definition name: (identifier) @name) @definition)
(module (decorated_definition
  definition: (function_definition name: (identifier) @name) @definition))
(module (decorated_definition
  definition: (class_definition name: (identifier) @name) @definition))
"""


@cache
def _query() -> tree_sitter.Query:
    return tree_sitter.Query(get_language("python"), _QUERY)


@dataclass(frozen=True)
class Definition:
    """One top-level function or class of an indexed file."""

    name: str
    uri: str
    line: int  # 0-based line of its ``def``/``class`` (decorators are above it)
    kind: Literal["function", "class"]
    signature: str  # the header without its colon, decorators included
    docstring: str | None
    methods: tuple[str, ...] = ()  # a class's method signatures

    @property
    def path(self) -> str:
        return uri_to_path(self.uri)

    def snippet(self) -> str:
        """Signature, docstring and (for a class) method signatures, as Python source."""
        lines = [f"{self.signature}:"]
        if self.docstring:
            doc = self.docstring[:MAX_DOCSTRING].replace('"""', "'''")
            body = doc.replace("\n", "\n    ")
            lines.append(f'    """{body}"""')
        lines.extend(f"    {method}: ..." for method in self.methods)
        if not self.docstring and not self.methods:
            lines.append("    ...")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RecentEdit:
    uri: str
    line: int
    at: float  # time.monotonic() of the last edit there


def uri_to_path(uri: str) -> str:
    """A filesystem path for a ``file:`` URI; other URIs are returned as they are."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def extract_definitions(
    uri: str, text: str, tree: tree_sitter.Tree | None = None
) -> list[Definition]:
    """The top-level functions and classes of ``text`` (Python), in document order."""
    if tree is None:
        tree = parse(text, "python")
    source = encode_utf8(text)
    out: list[Definition] = []
    for _, captures in tree_sitter.QueryCursor(_query()).matches(tree.root_node):
        node = captures["definition"][0]
        name = captures["name"][0]
        kind: Literal["function", "class"] = (
            "class" if node.type == "class_definition" else "function"
        )
        methods: tuple[str, ...] = ()
        if kind == "class" and (body := node.child_by_field_name("body")) is not None:
            found = []
            for child in body.named_children:
                inner = (
                    child.child_by_field_name("definition")
                    if child.type == "decorated_definition"
                    else child
                )
                if inner is not None and inner.type == "function_definition":
                    found.append(signature(source, inner).split("\n")[-1])
            methods = tuple(found[:MAX_METHODS])
        out.append(
            Definition(
                name=source[name.start_byte : name.end_byte].decode("utf-8", "replace"),
                uri=uri,
                line=node.start_point[0],
                kind=kind,
                signature=signature(source, node),
                docstring=docstring_text(source, node),
                methods=methods,
            )
        )
    out.sort(key=lambda d: d.line)
    return out


def inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path``, with every link resolved, lies under one of ``roots``."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # gone, or a symlink loop
        return False
    return any(real == root or root in real.parents for root in roots)


def read_source(path: Path, max_bytes: int, roots: Sequence[Path] | None = None) -> str | None:
    """The text of a source file, or None when it is too big, binary or unreadable.

    Only a regular file is read: a ``*.py`` that is a FIFO, a device or a socket
    (or a link to one, such as /dev/zero) would block or never end. It is opened
    non-blocking, checked with ``fstat`` on the open descriptor (so it cannot be
    swapped after the check), and read up to ``max_bytes``. With ``roots``, a file
    whose real path lies outside them (a symlink out of the workspace) is not read.
    """
    if roots is not None and not inside(path, roots):
        return None
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > max_bytes or b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def iter_python_files(root: Path) -> Iterable[Path]:
    """Python files under ``root``, skipping hidden, vendored and generated folders."""
    for folder, dirs, files in os.walk(root):  # does not follow symlinked folders
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(PYTHON_SUFFIXES):
                yield Path(folder) / name


class WorkspaceIndex:
    """Definitions by name across open documents and workspace files; recent edits."""

    def __init__(
        self,
        max_files: int = 5000,
        max_file_bytes: int = 1_000_000,
        max_total_bytes: int = 64_000_000,
        max_edits: int = 16,
    ) -> None:
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_edits = max_edits
        self.roots: list[Path] = []
        self._lock = threading.Lock()
        self._files: dict[str, list[Definition]] = {}
        self._by_name: dict[str, dict[str, Definition]] = {}  # name -> uri -> definition
        self._open: dict[str, str] = {}  # uri -> current text of an open document
        self._dirty: set[str] = set()
        self._edits: OrderedDict[tuple[str, int], RecentEdit] = OrderedDict()
        self._bytes_read = 0
        self.scan_thread: threading.Thread | None = None

    # -- what other modules ask --------------------------------------------------
    def definitions(self, name: str, exclude: str | None = None) -> list[Definition]:
        """Every indexed top-level definition called ``name``; open documents first.

        ``exclude`` (the document being completed) is left out, and is not re-indexed
        now: it changes on every keystroke, and its own definitions are in its text.
        """
        self._refresh(exclude)
        with self._lock:
            found = [d for uri, d in self._by_name.get(name, {}).items() if uri != exclude]
            opened = set(self._open)
        return sorted(found, key=lambda d: (d.uri not in opened, d.uri))

    def definition(self, name: str) -> tuple[str, str, str | None] | None:
        """``(path, signature, docstring)`` of a definition called ``name``, or None."""
        found = self.definitions(name)
        if not found:
            return None
        first = found[0]
        return first.path, first.signature, first.docstring

    def recent_edits(self, exclude: str | None = None) -> list[tuple[str, str, int]]:
        """``(uri, text, first line)`` around recent edits of open documents, newest first."""
        with self._lock:
            edits = sorted(self._edits.values(), key=lambda e: e.at, reverse=True)
            texts = dict(self._open)
        out = []
        for edit in edits:
            text = texts.get(edit.uri)
            if edit.uri == exclude or text is None:
                continue
            lines = text.splitlines(keepends=True)
            first = max(0, edit.line - EDIT_CONTEXT_LINES)
            region = "".join(lines[first : edit.line + EDIT_CONTEXT_LINES + 1])
            if region.strip():
                out.append((edit.uri, region, first))
        return out

    def relative_path(self, uri: str) -> str:
        """``uri`` as the model should read it: relative to its workspace folder."""
        path = uri_to_path(uri)
        for root in self.roots:
            try:
                return Path(path).relative_to(root).as_posix()
            except ValueError:
                continue
        return Path(path).name or path

    @property
    def repo_name(self) -> str | None:
        return self.roots[0].name if self.roots else None

    def is_indexed(self, uri: str) -> bool:
        with self._lock:
            return uri in self._files or uri in self._open

    def is_indexed_definitions(self, uri: str) -> bool:
        """Whether ``uri``'s definitions are extracted and current (not awaiting a reparse)."""
        with self._lock:
            return uri in self._files and uri not in self._dirty

    # -- open documents -----------------------------------------------------------
    def opened(self, uri: str, text: str) -> None:
        if not _is_python(uri):
            return
        with self._lock:
            self._open[uri] = text
            self._dirty.add(uri)

    def changed(
        self,
        uri: str,
        text: str,
        changes: Sequence[types.TextDocumentContentChangeEvent] = (),
    ) -> None:
        """After an edit: keep the text (re-indexed on the next lookup), note the region."""
        if not _is_python(uri):
            return
        with self._lock:
            self._open[uri] = text
            self._dirty.add(uri)
            for change in changes:
                if isinstance(change, types.TextDocumentContentChangePartial):
                    self._note_edit(uri, change.range.start.line)

    def saved(self, uri: str, text: str) -> None:
        self.changed(uri, text)

    def closed(self, uri: str) -> None:
        """The document's last text stays indexed (it is usually what is on disk)."""
        with self._lock:
            self._open.pop(uri, None)
            for key in [k for k in self._edits if k[0] == uri]:
                del self._edits[key]

    def _note_edit(self, uri: str, line: int) -> None:
        now = time.monotonic()
        for key, edit in self._edits.items():
            if key[0] == uri and abs(edit.line - line) <= EDIT_MERGE_LINES:
                # Same region: refresh it, keep its line so the snippet stays put.
                self._edits[key] = RecentEdit(uri, edit.line, now)
                self._edits.move_to_end(key)
                return
        self._edits[(uri, line)] = RecentEdit(uri, line, now)
        while len(self._edits) > self.max_edits:
            self._edits.popitem(last=False)

    def _refresh(self, exclude: str | None = None) -> None:
        with self._lock:
            dirty = [
                (uri, self._open[uri])
                for uri in self._dirty
                if uri in self._open and uri != exclude
            ]
            self._dirty.difference_update(uri for uri, _ in dirty)
            self._dirty.intersection_update(self._open)
        for uri, text in dirty:
            if len(text) > self.max_file_bytes:
                self._store(uri, [])
                continue
            try:
                self._store(uri, extract_definitions(uri, text))
            except (ValueError, RuntimeError):
                log.exception("indexing %s failed", uri)

    def _store(self, uri: str, definitions: list[Definition]) -> None:
        with self._lock:
            for old in self._files.get(uri, []):
                named = self._by_name.get(old.name)
                if named is not None:
                    named.pop(uri, None)
                    if not named:
                        del self._by_name[old.name]
            self._files[uri] = definitions
            for definition in definitions:
                # The first definition of a name in a file wins (later ones redefine it,
                # but the first is what a reader finds).
                self._by_name.setdefault(definition.name, {}).setdefault(uri, definition)

    # -- workspace folders ----------------------------------------------------------
    def add_roots(self, roots: Iterable[str | Path]) -> list[Path]:
        added = []
        for root in roots:
            path = Path(root).expanduser().resolve()
            if path.is_dir() and path not in self.roots:
                self.roots.append(path)
                added.append(path)
        return added

    def scan(self, roots: Iterable[Path] | None = None) -> int:
        """Index the Python files under ``roots`` (default: all roots); files indexed."""
        indexed = 0
        for root in self.roots if roots is None else roots:
            for path in iter_python_files(root):
                with self._lock:
                    if (
                        len(self._files) >= self.max_files
                        or self._bytes_read >= self.max_total_bytes
                    ):
                        log.info("workspace index is full (%d files)", len(self._files))
                        return indexed
                uri = path.as_uri()
                with self._lock:
                    if uri in self._open:
                        continue  # the editor's text is newer than the disk's
                text = read_source(path, self.max_file_bytes, self.roots)
                if text is None:
                    continue
                with self._lock:
                    self._bytes_read += len(text)
                try:
                    definitions = extract_definitions(uri, text)
                except (ValueError, RuntimeError):
                    continue
                with self._lock:
                    if uri in self._open:
                        continue
                self._store(uri, definitions)
                indexed += 1
        return indexed

    def scan_in_background(self, roots: Iterable[str | Path]) -> threading.Thread | None:
        """Add ``roots`` and index them on a daemon thread (the server never waits)."""
        added = self.add_roots(roots)
        if not added:
            return None

        def run() -> None:
            started = time.monotonic()
            count = self.scan(added)
            log.info("indexed %d workspace files in %.1fs", count, time.monotonic() - started)

        self.scan_thread = threading.Thread(target=run, name="mmlsp-index", daemon=True)
        self.scan_thread.start()
        return self.scan_thread


def _is_python(uri: str) -> bool:
    return uri_to_path(uri).endswith(PYTHON_SUFFIXES)


def workspace_roots(params: types.InitializeParams) -> list[str]:
    """The folder paths an ``initialize`` request names (folders, else the root URI)."""
    uris = [folder.uri for folder in params.workspace_folders or []]
    if not uris and params.root_uri:
        uris = [params.root_uri]
    paths = [uri_to_path(uri) for uri in uris if uri.startswith("file:")]
    if not paths and params.root_path:
        paths = [params.root_path]
    return paths
