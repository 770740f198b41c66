"""The wire format of a streamed completion: ``text/event-stream`` events, and the
chunks of text and finish reasons they carry (/v1/completions, /v1/chat/completions
and llama.cpp's native /infill shapes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder: feed text chunks, get whole events.

    Handles lines split across chunks, CR, LF and CRLF endings (a CR at a chunk's end
    waits for the next chunk), multi-line ``data``, comments and ``event`` fields.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: str) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            cr, lf = self._buffer.find("\r"), self._buffer.find("\n")
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                return events
            at = min(ends)
            if at == cr and at == len(self._buffer) - 1:
                return events  # maybe CRLF split across chunks
            width = 2 if self._buffer.startswith("\r\n", at) else 1
            line, self._buffer = self._buffer[:at], self._buffer[at + width :]
            if (event := self._line(line)) is not None:
                events.append(event)

    def flush(self) -> list[SSEEvent]:
        """Events left when the stream ends (a last event without its blank line)."""
        events = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip("\r"), ""
            if (event := self._line(line)) is not None:
                events.append(event)
        if (event := self._line("")) is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


@dataclass
class Chunk:
    """One decoded stream event: text, and whether/why the server finished."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def parse_event(data: str) -> Chunk:
    """One SSE ``data`` payload from /v1/completions, /v1/chat/completions or /infill."""
    if data.strip() == "[DONE]":
        return Chunk(done=True)
    try:
        obj = json.loads(data)
    except ValueError:
        return Chunk(error=f"unreadable stream event: {data[:80]!r}")
    if not isinstance(obj, dict):
        return Chunk(error=f"unexpected stream event: {data[:80]!r}")
    if "error" in obj:
        error = obj["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        return Chunk(error=str(message)[:200])
    chunk = Chunk()
    if isinstance(usage := obj.get("usage"), dict):
        chunk.prompt_tokens = usage.get("prompt_tokens")
        chunk.completion_tokens = usage.get("completion_tokens")
    choices = obj.get("choices")
    if isinstance(choices, list):
        if choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta")
            if isinstance(delta, dict):
                chunk.text = delta.get("content") or ""
            else:
                chunk.text = choice.get("text") or ""
            chunk.finish_reason = choice.get("finish_reason")
        return chunk
    # llama.cpp native (/infill, /completion): {"content": ..., "stop": bool}
    if "content" in obj:
        chunk.text = obj.get("content") or ""
        if obj.get("stop"):
            chunk.done = True
            chunk.finish_reason = "length" if obj.get("stop_type") == "limit" else "stop"
    return chunk
