"""Sending one chat to the chat engine: ``ask``, the stop rules that end a reply
early (the next turn's marker, a loop, the end of the code block asked for), and
``Reply``, the text with why generation ended.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Literal

from mmlsp.chat.prompts import Messages
from mmlsp.chat.replies import FENCE
from mmlsp.engine import EngineError, EngineHost, GenerationRequest
from mmlsp.engine.base import PLAIN_CHAT_MARKERS

# The logger's name from before the split, so log records read as they did.
log = logging.getLogger("mmlsp.chat")


def stop_at_turn(text: str) -> int | None:
    """Cut where a model without a chat template starts writing the next turn."""
    cuts = [i for marker in PLAIN_CHAT_MARKERS if (i := text.find(marker)) >= 0]
    return min(cuts) if cuts else None


def stop_at_repetition(text: str) -> int | None:
    """Cut a prose answer where a line comes back a third time: a small model that loops
    never stops by itself, and on a CPU each repeat costs seconds."""
    if (turn := stop_at_turn(text)) is not None:
        return turn
    if "\n" not in text:
        return None
    lines = text.rpartition("\n")[0].split("\n")  # complete lines only
    index = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)
    if index is None:
        return None
    last = lines[index].strip()
    if len(last) >= 8 and sum(line.strip() == last for line in lines) >= 3:
        return sum(len(line) + 1 for line in lines[:index])
    return None


def stop_after_code_block(text: str) -> int | None:
    """Cut after the first closed fenced block: the code asked for is complete there,
    and whatever follows is chatter (which costs seconds per line on a CPU)."""
    turn = stop_at_turn(text)
    opening = FENCE.search(text)
    if opening is not None:
        fence = opening.group(1)
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0]) * len(fence)}[ \t]*$", re.MULTILINE)
        end = closing.search(text, opening.end() + 1)
        if end is not None and (turn is None or end.end() < turn):
            return end.end()
    return turn


async def ask(
    host: EngineHost,
    messages: Messages,
    max_new_tokens: int,
    timeout_s: float,
    cancel: threading.Event | None = None,
    code_reply: bool = False,
    on_text: Callable[[str], None] | None = None,
    background: bool = False,
) -> str:
    """One chat turn with the chat engine; raises EngineError when it is not ready.

    ``code_reply``: the answer is one code block, so generation ends when it closes.
    ``on_text`` sees the reply so far after every token (progress reports).
    ``background``: work the user is not waiting for (see ``EngineHost.generate``).
    """
    engine = host.chat_engine
    if engine is None:
        status = host.chat_status
        raise EngineError(f"the chat model is not ready ({status.state}: {status.message})")
    request = GenerationRequest(
        prompt=engine.render_chat(messages),
        max_new_tokens=max_new_tokens,
        stop_at=stop_rule(code_reply, on_text),
        deadline=time.monotonic() + timeout_s,
    )
    return await send(host, request, cancel, background, "chat")


def stop_rule(
    code_reply: bool, on_text: Callable[[str], None] | None = None
) -> Callable[[str], int | None]:
    """Where a reply ends early: after its code block (``code_reply``) or at a loop;
    ``on_text``, if given, sees the reply so far after every token."""
    stop = stop_after_code_block if code_reply else stop_at_repetition
    if on_text is None:
        return stop

    def reporting(text: str) -> int | None:
        on_text(text)
        return stop(text)

    return reporting


async def send(
    host: EngineHost,
    request: GenerationRequest,
    cancel: threading.Event | None,
    background: bool,
    model: Literal["chat", "vision"],
) -> Reply:
    """Run ``request`` on the chat or the vision engine: the reply, or EngineError when
    it was cancelled."""
    if cancel is not None:
        request.cancel = cancel
    result = await host.generate(
        request, chat=model == "chat", vision=model == "vision", background=background
    )
    log.debug(
        "%s reply: %d tokens in %.1f s (%s): %r",
        model,
        result.generated_tokens,
        result.seconds,
        result.finish_reason,
        result.text,
    )
    if result.finish_reason == "cancelled":
        raise EngineError("the request was cancelled")
    return Reply(result.text, result.finish_reason)


class Reply(str):
    """A reply's text, and why generation ended (``deadline`` or ``length``: cut short)."""

    finish_reason: str

    def __new__(cls, text: str, finish_reason: str = "eos") -> Reply:
        reply = super().__new__(cls, text)
        reply.finish_reason = finish_reason
        return reply

    @property
    def cut_short(self) -> bool:
        return self.finish_reason in ("deadline", "length")
