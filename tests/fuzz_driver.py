"""Drive one real ``mmlsp`` process from synchronous code (hypothesis tests, the soak script).

The client runs on its own event loop in a background thread; ``call`` submits a
coroutine to it and waits with a timeout, so a hung server fails loudly instead of
hanging the test run.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tests.lsp_helpers import lsp_session, wait_for_state

_BREAK = re.compile(r"\r\n|\r|\n")


def reference_apply(text: str, start: tuple[int, int], end: tuple[int, int], new: str) -> str:
    """Independent model of an LSP incremental change, written without mmlsp's code.

    Lines break only at \\r\\n, \\r and \\n; columns count UTF-16 units; positions past
    a line's end or the document's end clamp; a column inside a surrogate pair rounds
    down; reversed ranges are swapped.
    """

    def offset(line: int, character: int) -> int:
        starts = [0] + [m.end() for m in _BREAK.finditer(text)]
        if line >= len(starts):
            return len(text)
        line_start = starts[max(line, 0)]
        match = _BREAK.search(text, line_start)
        line_end = match.start() if match else len(text)
        units, index = 0, line_start
        while index < line_end:
            width = 2 if ord(text[index]) > 0xFFFF else 1
            if units + width > max(character, 0):
                break
            units += width
            index += 1
        return index

    a, b = offset(*start), offset(*end)
    a, b = min(a, b), max(a, b)
    return text[:a] + new + text[b:]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ServerDriver:
    """One server process, started once, used from any thread."""

    def __init__(self, model_dir: Path, cache_dir: Path, *extra_args: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._session = lsp_session(["--model", str(model_dir), *extra_args], cache_dir)
        self.client = self.call(self._session.__aenter__(), timeout=60)
        self.call(wait_for_state(self.client), timeout=180)

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.call(self._session.__aexit__(None, None, None), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
