"""Hover on an image reference over LSP: the real server (stdio), the tiny text model,
and the tiny vision model as visionModel; an image the test draws."""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from tests.lsp_helpers import open_doc, server_env, status, wait_for_state
from tests.tiny_vlm import draw_mockup

CODE = '''\
def build_form():
    """Lay the form out as in docs/mockup.png."""
    # The header follows ![header](docs/header.jpg).
    return load("docs/mockup.png")


# outside: ../secret.png  fake: docs/fake.png  pipe: docs/pipe.png  missing: docs/none.png
'''


@asynccontextmanager
async def server(root: Path, cache: Path, init_options: dict):
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "mmlsp"], server_env=server_env(cache)
    )
    client = await config.start()
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options=init_options,
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            )
        )
        yield client
    finally:
        try:
            await asyncio.wait_for(client.shutdown_session(), 30)
        finally:
            await client.stop()


async def hover_text(client, uri: str, line: int, character: int) -> str | None:
    result = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line, character),
        )
    )
    return None if result is None else result.contents.value


async def described(client, uri: str, line: int, character: int, timeout: float = 60) -> str:
    """Hover until the description is there (the first hover starts it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = await hover_text(client, uri, line, character)
        assert text is not None
        if "describing this image" not in text and "is loading" not in text:
            return text
        assert asyncio.get_running_loop().time() < deadline, text
        await asyncio.sleep(0.2)


def workspace(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "ws"
    draw_mockup(root / "docs" / "mockup.png")
    draw_mockup(root / "docs" / "header.jpg")
    draw_mockup(tmp_path / "secret.png")
    (root / "docs" / "fake.png").write_text("not an image\n")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "docs" / "pipe.png")
    source = root / "app.py"
    source.write_text(CODE)
    return root, source.as_uri()


async def test_hover_on_an_image_reference_describes_it(
    tiny_model_dir: Path, tiny_vlm_dir: Path, tmp_path: Path
) -> None:
    root, uri = workspace(tmp_path)
    options = {"model": str(tiny_model_dir), "visionModel": str(tiny_vlm_dir)}
    async with server(root, tmp_path / "cache", options) as client:
        ready = await wait_for_state(client)
        assert ready["state"] == "ready", ready
        for _ in range(600):
            vision = (await status(client))["vision"]._asdict()  # pygls: a namedtuple
            if vision["state"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.1)
        assert vision["state"] == "ready" and vision["model"] == str(tiny_vlm_dir), vision
        open_doc(client, uri, CODE)

        # In a docstring, and in a string: the vision model's description.
        doc = await described(client, uri, 1, 36)
        assert doc.startswith("**Image** `docs/mockup.png` · PNG 160×100")
        assert "\n\n---\n\n" in doc
        in_string = await described(client, uri, 3, 25)
        assert in_string == doc  # cached by the file's hash
        # A Markdown image link in a comment; a JPEG.
        link = await described(client, uri, 2, 30)
        assert link.startswith("**Image** `docs/header.jpg` · JPEG 160×100")

        # Refused, each with its reason; the model is never asked.
        outside = await hover_text(client, uri, 6, 12)
        assert outside is not None and "outside the workspace" in outside
        fake = await hover_text(client, uri, 6, 40)
        assert fake is not None and "not a PNG, JPEG, WebP or GIF image" in fake
        if hasattr(os, "mkfifo"):
            pipe = await hover_text(client, uri, 6, 61)
            assert pipe is not None and "not a regular file" in pipe
        missing = await hover_text(client, uri, 6, 85)
        assert missing is not None and "no such image" in missing

        # Code, not text: an identifier still gets the function hover.
        code = await hover_text(client, uri, 0, 6)
        assert code is not None and "def build_form()" in code


async def test_without_a_vision_model_the_hover_says_so_and_reads_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    root, uri = workspace(tmp_path)
    async with server(root, tmp_path / "cache", {"model": str(tiny_model_dir)}) as client:
        assert (await wait_for_state(client))["state"] == "ready"
        assert (await status(client))["vision"].state == "idle"
        open_doc(client, uri, CODE)
        text = await hover_text(client, uri, 1, 36)
        assert text is not None and "set `visionModel`" in text
        # The FIFO would block a reader; with no vision model it is never opened.
        pipe = await hover_text(client, uri, 6, 61)
        assert pipe is not None and "set `visionModel`" in pipe
