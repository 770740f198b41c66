"""Hover explanations and review diagnostics, on a real session and a scripted model.

``ScriptedEngine`` is the model's test double. The services get what the server gives
them: the session, a settings getter, the engine host, and (review) what to call when
a review finds something; no server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from lsprotocol import types

from mmlsp.config import Settings
from mmlsp.features.hover import PENDING_NOTE, HoverService
from mmlsp.features.review import SOURCE, ReviewService
from mmlsp.session import Session
from tests.scripted_engine import ScriptedEngine, scripted_host

URI = "file:///t/m.py"
OTHER = "file:///t/lib.py"
TEXT = (
    "def area(w, h):\n"  # 0
    '    """Area of a rectangle."""\n'  # 1
    "    return w * h\n"  # 2
    "\n"  # 3
    "\n"  # 4
    "def ratio(a, b):\n"  # 5
    "    x = a\n"  # 6
    "    return x / b\n"  # 7
    "\n"  # 8
    "print(area(2, 3), helper())\n"  # 9
)


def open_document(session: Session, uri: str, text: str) -> None:
    session.open(types.TextDocumentItem(uri, "python", 1, text))


def session_with(*documents: tuple[str, str]) -> Session:
    session = Session(10_000_000)
    for uri, text in documents:
        open_document(session, uri, text)
    return session


class Reviewing:
    """A ReviewService on a real session, recording the documents it asked to publish."""

    def __init__(self, engine: ScriptedEngine, tmp_path: Path, **settings: str) -> None:
        self.settings = dataclasses.replace(Settings(), **settings)
        self.session = session_with((URI, TEXT))
        self.published: list[str] = []
        self.service = ReviewService(
            self.session,
            lambda: self.settings,
            scripted_host(engine, tmp_path),
            self.published.append,
        )


def hover_params(line: int, character: int, uri: str = URI) -> types.HoverParams:
    return types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line, character),
    )


async def settle(service: HoverService) -> None:
    while service._pending:
        await asyncio.sleep(0.01)


async def test_hover_answers_now_then_explains_and_an_edit_invalidates(tmp_path: Path) -> None:
    engine = ScriptedEngine(["- Multiplies `w` by `h`.", "- Now adds them."])
    session = session_with((URI, TEXT))
    # budget 0: never wait, the first answer is the base.
    service = HoverService(session, scripted_host(engine, tmp_path), budget_s=0.0)

    first = await service.hover(hover_params(0, 5))
    assert first.range == types.Range(types.Position(0, 4), types.Position(0, 8))
    assert first.contents.value.startswith("```python\ndef area(w, h)\n```\n\nArea of a rectangle.")
    assert PENDING_NOTE in first.contents.value
    await settle(service)

    # The call site finds the same definition, and its explanation is now cached.
    second = await service.hover(hover_params(9, 7))
    assert "- Multiplies `w` by `h`." in second.contents.value
    assert PENDING_NOTE not in second.contents.value
    assert len(engine.prompts) == 1

    # An edit to the function changes its hash: the old explanation is not shown.
    open_document(session, URI, TEXT.replace("return w * h", "return w + h"))
    third = await service.hover(hover_params(0, 5))
    assert "Multiplies" not in third.contents.value and PENDING_NOTE in third.contents.value
    await settle(service)
    assert "- Now adds them." in (await service.hover(hover_params(0, 5))).contents.value
    assert len(engine.prompts) == 2


async def test_hover_within_budget_includes_the_explanation(tmp_path: Path) -> None:
    host = scripted_host(ScriptedEngine(["Divides."]), tmp_path)
    service = HoverService(session_with((URI, TEXT)), host, budget_s=5.0)
    result = await service.hover(hover_params(5, 5))
    assert result.contents.value.endswith("---\n\nDivides.")


async def test_hover_finds_definitions_in_other_open_documents(tmp_path: Path) -> None:
    session = session_with((URI, TEXT), (OTHER, "def helper():\n    return 1\n"))
    service = HoverService(session, scripted_host(ScriptedEngine(["Helps."]), tmp_path), 5.0)
    result = await service.hover(hover_params(9, 20))
    assert (
        "def helper()" in result.contents.value and "*Defined in lib.py*" in result.contents.value
    )
    # Not a definition or call: nothing; unknown documents and stale positions too.
    assert await service.hover(hover_params(6, 4)) is None
    assert await service.hover(hover_params(99, 0)) is None
    assert await service.hover(hover_params(0, 0, uri="file:///nowhere.py")) is None


REVIEW_REPLY = "Here you go:\n3|warning|Divides by zero when `b` is 0.\n9|warning|no such line\n"


async def test_review_on_save_publishes_findings_at_function_lines(tmp_path: Path) -> None:
    engine = ScriptedEngine(["NONE", REVIEW_REPLY])
    reviewing = Reviewing(engine, tmp_path, review_on_save="on")
    review = reviewing.service
    await review.on_save(URI)
    assert len(engine.prompts) == 2  # two functions, one request each
    assert "3: " in engine.prompts[1] and "LINE|SEVERITY|MESSAGE" in engine.prompts[1]
    diagnostics = review.diagnostics(URI)
    assert [(d.range.start.line, d.message) for d in diagnostics] == [
        (7, "Divides by zero when `b` is 0.")
    ]
    only = diagnostics[0]
    assert only.source == SOURCE and only.severity == types.DiagnosticSeverity.Warning
    assert only.range == types.Range(types.Position(7, 4), types.Position(7, 16))
    assert reviewing.published == [URI]

    # Saving unchanged functions asks nothing; findings follow their function when
    # lines above it move, and vanish when it is edited (until the next save).
    assert review.on_save(URI) is None
    open_document(reviewing.session, URI, "\n\n" + TEXT)
    assert [d.range.start.line for d in review.diagnostics(URI)] == [9]
    open_document(reviewing.session, URI, TEXT.replace("x = a", "x = a + 1"))
    assert review.diagnostics(URI) == []
    engine.replies.append("1|info|fine")
    await review.on_save(URI)
    assert len(engine.prompts) == 3  # only the changed function


async def test_review_modes(tmp_path: Path) -> None:
    reviewing = Reviewing(ScriptedEngine(), tmp_path)  # auto, on a CPU
    review = reviewing.service
    assert not review.enabled() and review.on_save(URI) is None
    # The service reads the settings as they are now.
    reviewing.settings = dataclasses.replace(reviewing.settings, review_on_save="off")
    assert not review.enabled()
    assert Reviewing(ScriptedEngine(device="cuda"), tmp_path).service.enabled()  # auto on a GPU
