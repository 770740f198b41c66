"""Asking the vision model about images: the prompts, and ``ask_with_images``.

Features call this with images already read (``context.images.read_image``: inside
the workspace, within the caps). ``describe_image`` is what hover shows; actions that
want an image in their chat (explain, generate from a mockup) pass their own text to
``ask_with_images``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence

from mmlsp.chat.prompts import Messages
from mmlsp.chat.replies import clean_markdown, prose_problem, trim_unfinished
from mmlsp.chat.sending import Reply, send, stop_rule
from mmlsp.context.images import LoadedImage
from mmlsp.engine import EngineError, EngineHost, GenerationRequest
from mmlsp.engine.vision import Message, VisionPrompt

DESCRIBE_MAX_TOKENS = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
DESCRIBE_TIMEOUT_S = 120.0


def describe_messages(name: str, context: str = "") -> list[Message]:
    """Ask for a short description of one image, for a developer reading the code."""
    text = [
        f"This image, {name}, is referred to from source code.",
        "Describe what it shows for a developer reading that code: its kind (UI mockup, "
        "diagram, screenshot, plot, photo...), its main elements and any text in it. "
        "Answer in Markdown, in at most five short bullet points.",
    ]
    if context:
        text.insert(1, f"The code around the reference:\n```\n{context}\n```")
    content = [{"type": "image"}, {"type": "text", "text": "\n\n".join(text)}]
    return [{"role": "user", "content": content}]


def with_images(messages: Messages, images: Sequence[LoadedImage]) -> list[Message]:
    """A text chat (an action's messages) with ``images`` shown in its first user turn,
    before its text, and named: the code or comment the action is about refers to them."""
    out: list[Message] = [dict(m) for m in messages]
    first = next((m for m in out if m.get("role") == "user"), None)
    if first is None or not images:
        return out
    names = ", ".join(image.path.name for image in images)
    lead = f"The image{'s' if len(images) > 1 else ''} that the code refers to ({names}):"
    parts: list[dict[str, str]] = [{"type": "text", "text": lead}]
    parts += [{"type": "image"} for _ in images]
    parts.append({"type": "text", "text": str(first.get("content", ""))})
    first["content"] = parts
    return out


async def ask_with_images(
    host: EngineHost,
    messages: Sequence[Message],
    images: Sequence[LoadedImage],
    max_new_tokens: int,
    timeout_s: float,
    cancel: threading.Event | None = None,
    background: bool = False,
    code_reply: bool = False,
    on_text: Callable[[str], None] | None = None,
) -> Reply:
    """One chat turn with the vision model; ``messages`` hold one ``{"type": "image"}``
    part per image, in order. Raises EngineError when there is no vision model, it is
    not ready, or the request was cancelled. ``code_reply`` and ``on_text`` as for
    ``chat.ask``."""
    if host.vision_engine is None:
        if not host.vision_configured:
            raise EngineError("no vision model is set (visionModel)")
        status = host.vision_status
        raise EngineError(f"the vision model is not ready ({status.state}: {status.message})")
    request = GenerationRequest(
        prompt=VisionPrompt(messages, images),
        max_new_tokens=max_new_tokens,
        stop_at=stop_rule(code_reply, on_text),
        deadline=time.monotonic() + timeout_s,
    )
    return await send(host, request, cancel, background, "vision")


async def describe_image(
    host: EngineHost,
    image: LoadedImage,
    name: str,
    context: str = "",
    cancel: threading.Event | None = None,
    background: bool = True,
) -> str:
    """A Markdown description of ``image`` by the vision model ("" if it wrote none)."""
    reply = await ask_with_images(
        host,
        describe_messages(name, context),
        [image],
        DESCRIBE_MAX_TOKENS,
        DESCRIBE_TIMEOUT_S,
        cancel=cancel,
        background=background,
    )
    # Control characters (a model's noise) have no place in a hover.
    text = clean_markdown(_CONTROL.sub("", reply))
    if reply.cut_short:
        text = clean_markdown(trim_unfinished(text))
        text = f"{text} …" if text else text
    messages = describe_messages(name, context)
    return "" if prose_problem(text, messages) is not None else text
