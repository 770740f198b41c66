"""Big and odd documents, and faults, through the real server: each is handled in bounded time."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from lsprotocol import types

from tests.lsp_helpers import (
    inline,
    lsp_session,
    open_doc,
    status,
    wait_for_diagnostics,
    wait_for_state,
)

# Each request must come back within this, however odd the document.
BOUND = 60


async def answered(client, uri: str, line: int, character: int) -> types.InlineCompletionList:
    return await asyncio.wait_for(inline(client, uri, line, character), BOUND)


async def test_ten_megabyte_file_is_skipped_with_a_message(client):
    uri = "file:///odd/huge.py"
    text = "def f(x):\n    return x + 1\n" * 380_000  # about 10 MB
    open_doc(client, uri, text)
    assert not await wait_for_diagnostics(client, uri, timeout=BOUND)
    assert not (await answered(client, uri, 5, 4)).items
    assert any("larger than maxFileBytes" in m.message for m in client.messages)


async def test_very_long_line(client):
    uri = "file:///odd/long-line.py"
    text = "x = '" + "a" * 200_000 + "'\ny = x\n"
    open_doc(client, uri, text)
    assert not await wait_for_diagnostics(client, uri)
    result = await answered(client, uri, 1, 5)
    assert isinstance(result, types.InlineCompletionList)
    mid = await answered(client, uri, 0, 100_000)  # inside the long line itself
    assert isinstance(mid, types.InlineCompletionList)


@pytest.mark.parametrize(
    ("name", "text", "position"),
    [
        ("nul.py", "x = 1\x00\x00\ny = ", (1, 4)),
        ("empty.py", "", (0, 0)),
        ("crlf.py", "import os\r\nx = os.path.\r\n", (1, 12)),
        ("mixed.py", "a = 1\r\nb = 2\rc = 3\nd = ", (3, 4)),
        ("surrogate.py", "s = '\ud83d'\nt = ", (1, 4)),  # a lone surrogate, as JSON allows
        ("nested.py", "x = " + "(" * 50_000 + ")" * 50_000 + "\n", (0, 4)),
        ("unclosed.py", "x = " + "[" * 50_000 + "\n", (1, 0)),
    ],
)
async def test_odd_documents(client, name, text, position):
    uri = f"file:///odd/{name}"
    open_doc(client, uri, text)
    await wait_for_diagnostics(client, uri, timeout=BOUND)
    result = await answered(client, uri, *position)
    assert isinstance(result, types.InlineCompletionList)
    assert (await status(client))["state"] == "ready"


async def test_generation_that_raises_is_reported_and_the_server_keeps_serving(
    tiny_model_dir: Path, tmp_path: Path
):
    """A tokenizer with a token the model cannot embed: generation raises at prefill."""
    from transformers import AutoTokenizer

    broken = tmp_path / "mismatched"
    shutil.copytree(tiny_model_dir, broken)
    tokenizer = AutoTokenizer.from_pretrained(broken)
    tokenizer.add_tokens(["ZZZ_NOT_IN_MODEL"] * 1 + [f"extra_{i}" for i in range(2000)])
    tokenizer.save_pretrained(broken)
    async with lsp_session(["--model", str(broken)], tmp_path / "cache") as client:
        assert (await wait_for_state(client))["state"] == "ready"
        uri = "file:///odd/fault.py"
        open_doc(client, uri, "x = ZZZ_NOT_IN_MODEL\ny = extra_1999 + ")
        for _ in range(2):  # the second failure must not pop up again
            assert not (await answered(client, uri, 1, 18)).items
        errors = [m for m in client.messages if "generation failed" in m.message]
        assert len(errors) == 1 and errors[0].type == types.MessageType.Error
        bad = "file:///odd/fault-syntax.py"
        open_doc(client, bad, "def f(:\n")
        assert await wait_for_diagnostics(client, bad)


async def test_corrupt_gguf_is_a_clear_error(tmp_path: Path):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00garbage" * 100)
    async with lsp_session(["--model", str(corrupt)], tmp_path / "cache") as client:
        current = await wait_for_state(client)
        assert current["state"] == "failed"
        assert "could not read GGUF file" in current["message"]
        uri = "file:///odd/after-corrupt.py"
        open_doc(client, uri, "def f(:\n")
        assert await wait_for_diagnostics(client, uri)


async def test_model_too_big_for_memory_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path):
    """A real out-of-memory failure: weights four times this machine's RAM and swap."""
    from tests.tiny_model import write_oversized_model

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    meminfo = Path("/proc/meminfo").read_text().split()
    swap = int(meminfo[meminfo.index("SwapTotal:") + 1]) * 1024
    huge = write_oversized_model(tiny_model_dir, tmp_path / "huge", 4 * (ram + swap))
    async with lsp_session(["--model", str(huge)], tmp_path / "cache") as client:
        current = await wait_for_state(client)
        assert current["state"] == "failed"
        assert "not enough memory to load model" in current["message"]
        shown = [m for m in client.messages if "not enough memory" in m.message]
        assert len(shown) == 1 and shown[0].type == types.MessageType.Error
        uri = "file:///odd/after-oom.py"
        open_doc(client, uri, "def f(:\n")
        assert await wait_for_diagnostics(client, uri)
        assert not (await answered(client, uri, 0, 6)).items
