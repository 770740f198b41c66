"""Actions that send the images the code names to the vision model: Explain, Generate
from a comment and Implement, on a real session and action service, with scripted
chat and vision engines (``ScriptedEngine``, a fake that records its prompts) and a
fake editor. The real vision model's plumbing is covered in test_vision.py and
test_e2e_images.py; here: which model gets the action, with which image, and what
the user is told when an image cannot be used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lsprotocol import types
from PIL import Image

from mmlsp.config import Settings
from mmlsp.engine import EngineHost
from mmlsp.engine.host import LoadSpec
from mmlsp.engine.vision import VisionPrompt
from mmlsp.features.actions import ActionService
from mmlsp.features.client import ClientCapabilities
from mmlsp.session import Session
from tests.scripted_engine import ScriptedEngine
from tests.test_action_service import FakeClient

EXPLAIN_CODE = '''\
def layout():
    """Place the widgets as docs/form.png shows."""
    return ["name", "email", "submit"]
'''
GENERATE_CODE = """\
# draw the boxes of docs/form.png as a list of (label, x, y) tuples
"""
GENERATED = '```python\nBOXES = [("Name", 10, 10), ("Submit", 10, 60)]\n```'


def workspace(tmp_path: Path, text: str) -> tuple[Path, str]:
    root = tmp_path / "ws"
    (root / "docs").mkdir(parents=True)
    Image.new("RGB", (64, 40), "white").save(root / "docs" / "form.png")
    return root, (root / "app.py").as_uri()


def service(
    tmp_path: Path,
    text: str,
    chat_replies: list[str],
    vision: ScriptedEngine | None,
    vision_fails: bool = False,
) -> tuple[ActionService, FakeClient, ScriptedEngine, str]:
    root, uri = workspace(tmp_path, text)
    session = Session(1_000_000)
    session.index.add_roots([root])
    session.open(types.TextDocumentItem(uri, "python", 1, text))
    chat = ScriptedEngine(chat_replies)

    def make_vision(*_args: object, **_kw: object) -> ScriptedEngine:
        if vision_fails or vision is None:
            raise RuntimeError("no such model")
        return vision

    host = EngineHost(factory=lambda *_a: chat, vision_factory=make_vision)
    spec = LoadSpec("scripted", "cpu", "none", str(tmp_path))
    host.load(spec)
    assert host.wait_ready(10).state == "ready"
    if vision is not None or vision_fails:
        host.load_vision(LoadSpec("scripted-vlm", "cpu", "none", str(tmp_path)))
        host.wait_vision(10)
    client = FakeClient(ClientCapabilities())
    settings = Settings()
    return ActionService(session, lambda: settings, host, client), client, chat, uri


def images_sent(engine: ScriptedEngine) -> list[str]:
    return [
        image.path.name
        for prompt in engine.prompts
        if isinstance(prompt, VisionPrompt)
        for image in prompt.images
    ]


async def test_explain_sends_the_named_image_to_the_vision_model(tmp_path: Path) -> None:
    vision = ScriptedEngine(["It lays out the three fields of the form mockup."])
    actions, client, chat, uri = service(tmp_path, EXPLAIN_CODE, [], vision)
    markdown = await actions.explain(uri, types.Range(types.Position(0, 4), types.Position(0, 4)))
    assert images_sent(vision) == ["form.png"] and chat.prompts == []
    assert "three fields of the form mockup" in markdown
    assert "Explained with `form.png`, seen by the vision model." in markdown
    (prompt,) = vision.prompts
    assert isinstance(prompt, VisionPrompt)
    first = prompt.messages[-1]["content"]
    assert [part["type"] for part in first] == ["text", "image", "text"]
    assert "docs/form.png shows" in first[-1]["text"]  # the code goes with the image


async def test_generate_from_a_comment_uses_the_mockup(tmp_path: Path) -> None:
    vision = ScriptedEngine([GENERATED])
    actions, client, chat, uri = service(tmp_path, GENERATE_CODE, [], vision)
    where = {"line": 0, "character": 3}
    assert await actions.execute("mmlsp.generateCode", [uri, where]) is True
    assert images_sent(vision) == ["form.png"] and chat.prompts == []
    (edit,) = client.edits
    new_text = next(iter(edit.changes.values()))[0].new_text
    assert 'BOXES = [("Name", 10, 10), ("Submit", 10, 60)]' in new_text


async def test_without_a_vision_model_no_image_is_read(tmp_path: Path) -> None:
    actions, client, chat, uri = service(tmp_path, GENERATE_CODE, [GENERATED], None)
    # A FIFO where the image is: reading it would hang the action.
    image = Path(uri.removeprefix("file://")).parent / "docs" / "form.png"
    image.unlink()
    os.mkfifo(image)
    assert await actions.execute("mmlsp.generateCode", [uri, {"line": 0, "character": 3}]) is True
    assert len(chat.prompts) == 1 and not isinstance(chat.prompts[0], VisionPrompt)
    assert client.notices == []


async def test_a_vision_model_that_failed_leaves_the_chat_model_and_says_so(
    tmp_path: Path,
) -> None:
    actions, client, chat, uri = service(
        tmp_path, GENERATE_CODE, [GENERATED], None, vision_fails=True
    )
    assert await actions.execute("mmlsp.generateCode", [uri, {"line": 0, "character": 3}]) is True
    assert len(chat.prompts) == 1 and not isinstance(chat.prompts[0], VisionPrompt)
    (notice, _level), *_ = client.notices
    assert "`form.png` not used: the vision model is not ready (failed)" in notice


async def test_an_image_outside_the_workspace_is_refused_and_named(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "black").save(tmp_path / "secret.png")
    code = "def show():\n    return open('../secret.png')  # as ../secret.png shows\n"
    vision = ScriptedEngine(["It opens an image file."])
    actions, client, chat, uri = service(tmp_path, code, ["It opens an image file."], vision)
    markdown = await actions.explain(uri, types.Range(types.Position(0, 4), types.Position(0, 4)))
    assert images_sent(vision) == [] and len(chat.prompts) == 1
    assert "not read:" in markdown and "outside" in markdown


@pytest.mark.parametrize("count", [1, 2])
def test_with_images_puts_the_images_before_the_first_user_text(tmp_path: Path, count: int) -> None:
    from mmlsp.chat.vision import with_images
    from mmlsp.context.images import read_image

    root, _ = workspace(tmp_path, "")
    image = read_image(root / "docs" / "form.png", [root])
    messages = [
        {"role": "system", "content": "You write code."},
        {"role": "user", "content": "Explain it."},
        {"role": "assistant", "content": "A form."},
        {"role": "user", "content": "Shorter."},
    ]
    out = with_images(messages, [image] * count)
    assert out[0] == messages[0] and out[2:] == messages[2:]
    parts = out[1]["content"]
    assert [p["type"] for p in parts] == ["text"] + ["image"] * count + ["text"]
    assert parts[-1]["text"] == "Explain it." and "form.png" in parts[0]["text"]
    assert messages[1]["content"] == "Explain it."  # the caller's messages are untouched
