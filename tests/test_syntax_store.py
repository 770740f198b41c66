"""The syntax store: small documents parse on the loop, large ones on the worker, and
readers never get a tree of the wrong text."""

from __future__ import annotations

import asyncio
import threading

from lsprotocol import types

import mmlsp.syntax as syntax
from mmlsp.syntax import languages
from mmlsp.syntax.store import INLINE_MAX_CHARS, SyntaxStore
from mmlsp.text.changes import apply_changes

URI = "file:///big.py"


def _big_text() -> str:
    unit = "def f{i}(x):\n    return x + {i}\n\n"
    text, i = [], 0
    while sum(map(len, text)) <= INLINE_MAX_CHARS:
        text.append(unit.format(i=i))
        i += 1
    return "".join(text)


def _insert(line: int, character: int, text: str) -> types.TextDocumentContentChangePartial:
    at = types.Position(line, character)
    return types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)


def _parse_threads(monkeypatch) -> list[str]:
    """Names of the threads that run tree-sitter parses from now on."""
    threads: list[str] = []
    real = syntax.get_parser

    class Recording:
        def __init__(self, parser):
            self.parser = parser

        def parse(self, *args, **kwargs):
            threads.append(threading.current_thread().name)
            return self.parser.parse(*args, **kwargs)

    monkeypatch.setattr(languages, "get_parser", lambda language: Recording(real(language)))
    return threads


def test_a_small_document_is_parsed_at_once_on_the_calling_thread(monkeypatch) -> None:
    threads = _parse_threads(monkeypatch)
    store = SyntaxStore(10 << 20)
    store.open("file:///s.py", "python", "x = 1\n")
    store.change("file:///s.py", [_insert(0, 5, "0")], "x = 10\n")
    doc = store.fresh("file:///s.py", "x = 10\n")
    assert doc is not None and not store.busy("file:///s.py")
    assert threads == [threading.current_thread().name] * 2


def test_a_large_document_is_parsed_off_the_loop_and_every_change_is_kept(monkeypatch) -> None:
    threads = _parse_threads(monkeypatch)
    text = _big_text()

    async def main() -> None:
        store = SyntaxStore(10 << 20)
        store.open(URI, "python", text)
        current = text
        for i, ch in enumerate("(y = [1, 2"):  # keystrokes while the first parse runs
            change = _insert(0, i, ch)
            current = apply_changes(current, [change])
            store.change(URI, [change], current)
        # Until the worker is done, readers get no tree of the wrong text.
        stale = store.get(URI)
        assert stale is None or stale.text == current or store.fresh(URI, current) is None
        await store.settled(URI)
        doc = store.fresh(URI, current)
        assert doc is not None and not store.busy(URI)
        parsed_by = list(threads)
        assert str(doc.tree.root_node) == str(syntax.parse(current, "python").root_node)
        loop_thread = threading.current_thread().name
        assert parsed_by and all(name != loop_thread for name in parsed_by)
        # Keystrokes queued while the worker parsed are parsed together, not one each.
        assert len(parsed_by) < 11

    asyncio.run(main())


def test_work_submitted_after_changes_sees_their_tree() -> None:
    text = _big_text()

    async def main() -> None:
        store = SyntaxStore(10 << 20)
        store.open(URI, "python", text)
        change = _insert(0, 0, "def (")
        after = apply_changes(text, [change])
        store.change(URI, [change], after)
        seen = await store.submit(URI, lambda doc: (doc.text, doc.tree.root_node.has_error))
        assert seen == (after, True)

    asyncio.run(main())


def test_closing_drops_the_tree_of_a_parse_still_running() -> None:
    async def main() -> None:
        store = SyntaxStore(10 << 20)
        store.open(URI, "python", _big_text())
        store.close(URI)
        await store.settled(URI)
        assert store.get(URI) is None

    asyncio.run(main())


def test_a_document_over_the_size_limit_has_no_tree_whichever_thread_parses() -> None:
    async def main() -> None:
        store = SyntaxStore(INLINE_MAX_CHARS + 10)
        text = _big_text() + "x" * 100
        store.open(URI, "python", text)
        await store.settled(URI)
        assert store.get(URI) is None
        store.change(URI, [types.TextDocumentContentChangeWholeDocument(text="x = 1\n")], "x = 1\n")
        await store.settled(URI)
        assert store.fresh(URI, "x = 1\n") is not None

    asyncio.run(main())


def test_a_large_parse_lets_other_threads_run_and_builds_the_same_tree(monkeypatch) -> None:
    # py-tree-sitter holds the GIL for a parse given whole bytes: a thread counting
    # meanwhile (the event loop, in the server) would not move until the parse ends.
    source = (_big_text() * 4).encode()
    assert len(source) > languages.SHARED_GIL_MIN_BYTES
    counted = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counted
        while not stop.is_set():
            counted += 1

    seen: list[int] = []  # the counter at each read tree-sitter makes
    real = syntax.get_parser

    class Watching:
        def __init__(self, parser):
            self.parser = parser

        def parse(self, source, old_tree=None, progress_callback=None):
            assert callable(source), "a large source must be fed in chunks"
            assert progress_callback is not None, "and report its progress to Python"

            def read(offset, point):
                seen.append(counted)
                return source(offset, point)

            args = [old_tree] if old_tree else []
            return self.parser.parse(read, *args, progress_callback=progress_callback)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        monkeypatch.setattr(languages, "get_parser", lambda language: Watching(real(language)))
        tree = languages.parse_source("python", source)
    finally:
        stop.set()
        counter.join()
    assert len(set(seen)) > 1, "the counting thread never ran during the parse"
    whole = real("python").parse(source)
    assert str(tree.root_node) == str(whole.root_node)
    assert tree.root_node.end_byte == len(source)


def test_the_completion_context_never_parses_a_large_document_itself(monkeypatch) -> None:
    # While the worker still parses a large file, a completion gets no current tree;
    # parsing it again for the context ran on the event loop and froze the server.
    from mmlsp.context import window

    def no_parse(text: str, language: str):
        raise AssertionError("the context parsed a large document on the loop")

    monkeypatch.setattr(window, "parse", no_parse)
    text = _big_text()
    ctx = window.build_context(
        text, 10, prefix_tokens=64, suffix_tokens=64, count=len, language="python"
    )
    assert ctx.tree is None and ctx.language == "python"
    small = "def f(x):\n    return x\n"
    monkeypatch.setattr(window, "parse", syntax.parse)
    assert (
        window.build_context(
            small, 10, prefix_tokens=64, suffix_tokens=64, count=len, language="python"
        ).tree
        is not None
    )
