"""The LSP wire: base-protocol framing that survives what buggy clients send.

pygls' own reader matches ``Content-Length: N\\r\\n`` exactly. A lower-case header, a
trailing space, LF-only line ends or a length a few bytes off left it reading forever
without answering again, and a 5,000-digit length made ``int()`` raise and the server
exit. ``Framer`` takes any header spelling, bounds every length, and when a length
is wrong it finds the message by its JSON instead; junk is skipped up to the next
``Content-Length``. It is pure (bytes in, frames out); ``serve`` runs it over a byte
stream and hands each message to pygls, answering a request whose parameters do not
fit its method with -32602 instead of dropping it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from lsprotocol.types import ResponseError
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

log = logging.getLogger(__name__)

# The largest message taken whole; anything longer is junk (a real request is KiBs,
# a didOpen of a huge file a few MiB).
MAX_MESSAGE_BYTES = 64 << 20
# A header block longer than this is junk.
MAX_HEADER_BYTES = 8 << 10
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Frame:
    """One message body, or (``body`` None) a problem skipped over, for the log."""

    body: Any = None
    problem: str | None = None


def _length(header: bytes) -> int | None:
    """The Content-Length of a header block, if it has one that is believable."""
    for line in re.split(rb"\r?\n", header):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-length":
            digits = value.strip()
            if digits.isdigit() and len(digits) <= 12 and int(digits) <= MAX_MESSAGE_BYTES:
                return int(digits)
            return None
    return None


class Framer:
    """Splits a byte stream into JSON-RPC messages (parsed JSON), resynchronising
    after anything malformed. Feed it bytes; take frames until it returns None."""

    def __init__(self) -> None:
        self._buf = bytearray()
        # How far a pending body has been searched for the next header: a body of
        # MiBs arrives in many reads, and searching it all again after each made
        # framing one 8 MB didOpen take 5 s.
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def _skip_to_next_header(self, start: int, why: str) -> Frame:
        """Drop bytes up to the next ``Content-Length`` at or after ``start``."""
        found = _CONTENT_LENGTH.search(self._buf, start)
        end = found.start() if found else max(start, len(self._buf) - 32)
        dropped = bytes(self._buf[:end])
        self._consume(end)
        return Frame(problem=f"{why}; skipped {len(dropped)} bytes")

    def _consume(self, end: int) -> None:
        del self._buf[:end]
        self._scanned = 0

    def next(self) -> Frame | None:
        """The next frame, or None until more bytes arrive."""
        buf = self._buf
        header_start = _CONTENT_LENGTH.search(buf)
        if header_start is None:
            if len(buf) > MAX_HEADER_BYTES:  # junk with no header in sight
                return self._skip_to_next_header(0, "no Content-Length header")
            return None
        if header_start.start() > 0:
            if buf[: header_start.start()].strip():
                return self._skip_to_next_header(0, "bytes outside any message")
            self._consume(header_start.start())  # blank lines between messages
            return self.next()
        header_end = _HEADER_END.search(buf, header_start.start())
        if header_end is None:
            if len(buf) - header_start.start() > MAX_HEADER_BYTES:
                return self._skip_to_next_header(header_start.end(), "a header without an end")
            return None
        header = bytes(buf[header_start.start() : header_end.start()])
        body_start = header_end.end()
        length = _length(header)
        if length is not None and len(buf) < body_start + length:
            # Wait for the rest, unless the next message has already begun: then the
            # length is too long, and the JSON itself says where this one ends.
            # Only the bytes not searched before (less a header's length, which may
            # straddle two reads).
            scan_from = max(body_start, self._scanned - 32)
            self._scanned = len(buf)
            if _CONTENT_LENGTH.search(buf, scan_from) is None:
                return None
        elif length is not None:
            try:
                message = json.loads(buf[body_start : body_start + length])
            except ValueError:
                pass  # a wrong length: find the message by its JSON instead
            else:
                self._consume(body_start + length)
                return Frame(message)
        return self._by_json(body_start, length)

    def _by_json(self, body_start: int, length: int | None) -> Frame | None:
        """The message at ``body_start`` found by parsing JSON, when its length is
        missing, unbelievable or wrong."""
        buf = self._buf
        text = bytes(buf[body_start:])
        stripped = len(text) - len(text.lstrip())
        following = _CONTENT_LENGTH.search(text)
        try:
            message, end = _DECODER.raw_decode(text.decode("utf-8", "replace"), stripped)
        except ValueError:
            if following is None and len(text) <= MAX_MESSAGE_BYTES:
                return None  # maybe still arriving
            return self._skip_to_next_header(body_start, f"a body that is not JSON ({length=})")
        # raw_decode counted characters; the message's bytes end where its text does.
        consumed = len(text.decode("utf-8", "replace")[:end].encode("utf-8", "replace"))
        if following is not None and following.start() < consumed:
            return self._skip_to_next_header(body_start, "a body cut by the next header")
        self._consume(body_start + consumed)
        return Frame(message, problem=f"Content-Length {length} did not match the body")


Handle = Callable[[Any], None]


def dispatch(protocol: Any, message: Any, reply_error: Callable[[Any, JsonRpcException], None]):
    """Hand one parsed message to pygls; a request it cannot structure gets -32602."""
    if not isinstance(message, dict):
        log.warning("ignored a message that is not a JSON object: %.200r", message)
        return
    if "method" in message and "params" not in message:
        message = {**message, "params": None}  # optional in JSON-RPC; pygls wants the key
    try:
        structured = protocol.structure_message(message)
    except JsonRpcException as exc:
        if "id" in message and "method" in message:
            method = message.get("method")
            error = JsonRpcInvalidParams(f"invalid params for {method}")
            reply_error(message["id"], error)
        elif "id" in message:
            # A response whose result does not fit its request's type: a client that
            # answers null to workspace/applyEdit or window/showDocument. The request
            # waiting for it must still end (it hung, and the command with it), so it
            # gets the result as sent, or an error for an error that does not parse.
            problem = None
            if message.get("error") is not None:
                problem = ResponseError(code=-32603, message=f"{message['error']!r:.200}")
            protocol._handle_response(message["id"], message.get("result"), problem)
        log.warning("ignored an invalid message %.200r: %s", message, exc)
        return
    protocol.handle_message(structured)


async def serve(
    read: Callable[[], Awaitable[bytes]],
    protocol: Any,
    stop: threading.Event,
) -> None:
    """Read messages from ``read`` (some bytes; b"" at the end) until it ends or ``stop``."""
    framer = Framer()

    def reply_error(msg_id: Any, error: JsonRpcException) -> None:
        protocol._send_response(msg_id, None, error.to_response_error())

    while not stop.is_set():
        data = await read()
        if not data:
            break
        framer.feed(data)
        while (frame := framer.next()) is not None:
            if frame.problem:
                log.warning("malformed input from the client: %s", frame.problem)
            if frame.body is None:
                continue
            try:
                dispatch(protocol, frame.body, reply_error)
            except Exception:  # one bad message must not end the loop
                log.exception("failed to handle a message")
            # Let the handler just started take its first step before the next message
            # (as pygls' own reader does): a request followed at once by its
            # $/cancelRequest is then cancelled while running, not before it starts.
            await asyncio.sleep(0)


def private_stdout() -> BinaryIO:
    """The stream for LSP output: a private copy of file descriptor 1, with fd 1 itself
    (and ``sys.stdout``) pointed at stderr.

    Native code writes to fd 1, or redirects it: llama-cpp-python points fds 1 and 2 at
    /dev/null while it loads a model. On the stdout the client reads, a stray byte
    corrupts the stream, and a redirect makes every response written meanwhile vanish
    (seen: mmlsp/status polls sent during a model load never answered, which left VS
    Code's status bar at "loading" for good). Output written to fd 1 now lands in the
    server's stderr, the editor's log.
    """
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "wb")


def stream_reader(stream: Any, chunk: int = 1 << 16) -> Callable[[], Awaitable[bytes]]:
    """``read`` for ``serve`` over a blocking binary stream (stdin).

    A daemon thread does the blocking reads, so a client that never closes the pipe
    cannot keep the process alive after ``exit``.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    read1 = getattr(stream, "read1", stream.read)

    def pump() -> None:
        while True:
            try:
                data = read1(chunk)
            except (OSError, ValueError):
                data = b""
            try:
                loop.call_soon_threadsafe(queue.put_nowait, data)
            except RuntimeError:  # the loop is closed: the server is exiting
                return
            if not data:
                return

    threading.Thread(target=pump, name="mmlsp-stdin", daemon=True).start()
    return queue.get
