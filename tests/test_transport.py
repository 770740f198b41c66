"""Framing that survives malformed input (issue 22, classes 3 and 4).

Unit tests of ``Framer`` over bytes, then the real server over stdio, fed each kind
of malformed header seen from buggy clients: after each one it must still answer the
next well-formed request, and a request whose params do not fit gets -32602.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmlsp.lsp.transport import MAX_MESSAGE_BYTES, Framer


def message(msg_id: int, method: str = "mmlsp/status", **extra) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, **extra}).encode()


def framed(body: bytes, header: bytes | None = None) -> bytes:
    return (header if header is not None else b"Content-Length: %d\r\n\r\n" % len(body)) + body


def frames(data: bytes, chunk: int = 7) -> list:
    framer, out = Framer(), []
    for i in range(0, len(data), chunk):  # bytes arrive in pieces, as from a pipe
        framer.feed(data[i : i + chunk])
        while (frame := framer.next()) is not None:
            out.append(frame)
    return out


def ids(data: bytes) -> list[int]:
    return [f.body["id"] for f in frames(data) if f.body is not None]


BODY = message(1)
BAD_HEADERS = {
    "lower case": b"content-length: %d\r\n\r\n" % len(BODY),
    "trailing space": b"Content-Length: %d  \r\n\r\n" % len(BODY),
    "LF only": b"Content-Length: %d\n\n" % len(BODY),
    "extra header": b"Content-Type: application/vscode-jsonrpc\r\nContent-Length: %d\r\n\r\n"
    % len(BODY),
    "zero": b"Content-Length: 0\r\n\r\n",
    "negative": b"Content-Length: -5\r\n\r\n",
    "not a number": b"Content-Length: many\r\n\r\n",
    "5000 digits": b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n",
    "10^12": b"Content-Length: 1000000000000\r\n\r\n",
    "3 bytes short": b"Content-Length: %d\r\n\r\n" % (len(BODY) - 3),
    "3 bytes long": b"Content-Length: %d\r\n\r\n" % (len(BODY) + 3),
    "no header": b"",
}


@pytest.mark.parametrize("name", BAD_HEADERS)
def test_each_malformed_header_loses_at_most_its_own_message(name: str) -> None:
    data = framed(BODY, BAD_HEADERS[name]) + framed(message(2)) + framed(message(3))
    got = ids(data)
    assert got[-2:] == [2, 3], (name, frames(data))
    # Where the JSON itself is whole, even the malformed message is read.
    if name != "no header":
        assert got[0] == 1, (name, frames(data))


def test_junk_between_messages_is_skipped_and_reported() -> None:
    data = framed(message(1)) + b"garbage\r\n{not json}\r\n" + framed(message(2))
    out = frames(data)
    assert [f.body["id"] for f in out if f.body] == [1, 2]
    assert any(f.problem and "skipped" in f.problem for f in out)


def test_a_body_that_is_not_json_is_dropped() -> None:
    data = framed(b"{not json at all}") + framed(message(2))
    assert ids(data) == [2]


def test_an_unfinished_message_waits_for_its_bytes() -> None:
    framer = Framer()
    whole = framed(message(1, params={"text": "é" * 100}))
    framer.feed(whole[:-10])
    assert framer.next() is None
    framer.feed(whole[-10:])
    frame = framer.next()
    assert frame is not None and frame.body["id"] == 1 and frame.problem is None


def test_memory_is_bounded_when_junk_never_ends() -> None:
    framer = Framer()
    for _ in range(200):
        framer.feed(b"x" * 65536)
        while framer.next() is not None:
            pass
    assert len(framer) < MAX_MESSAGE_BYTES


# -- the real server ---------------------------------------------------------------------


class Wire:
    """The real server over stdio, spoken to byte by byte."""

    def __init__(self, tmp_path: Path) -> None:
        env = {"MMLSP_CACHE_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmlsp", "--model", str(tmp_path / "no-model")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.answers: dict = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        framer = Framer()
        while data := out.read1(65536):
            framer.feed(data)
            while (frame := framer.next()) is not None:
                if isinstance(frame.body, dict) and "id" in frame.body:
                    self.answers[frame.body["id"]] = frame.body

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def answer(self, msg_id, timeout: float = 20.0) -> dict | None:
        deadline = time.monotonic() + timeout
        while msg_id not in self.answers and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return None
            time.sleep(0.02)
        return self.answers.get(msg_id)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_the_server_keeps_answering_through_malformed_framing(tmp_path: Path) -> None:
    wire = Wire(tmp_path)
    try:
        init = {"capabilities": {}}
        wire.send(framed(message(0, "initialize", params=init)))
        assert wire.answer(0, 60) is not None
        next_id = 100
        for name, header in BAD_HEADERS.items():
            body = message(next_id)
            bad = header.replace(b"%d" % len(BODY), b"%d" % len(body)) if header else header
            wire.send(framed(body, bad) + framed(message(next_id + 1)))
            assert wire.answer(next_id + 1) is not None, f"deaf after {name}"
            assert wire.proc.poll() is None, f"exited after {name}"
            next_id += 2
        # Requests whose params do not fit are answered with -32602, not dropped.
        position = {"textDocument": {"uri": "file:///x.py"}, "position": {"line": -1}}
        for params in (None, [], position, {"textDocument": None}):
            wire.send(framed(message(next_id, "textDocument/hover", params=params)))
            answer = wire.answer(next_id)
            assert answer is not None and answer["error"]["code"] == -32602, answer
            next_id += 1
        # A custom method may come without params.
        wire.send(
            framed(json.dumps({"jsonrpc": "2.0", "id": next_id, "method": "mmlsp/status"}).encode())
        )
        answer = wire.answer(next_id)
        assert answer is not None and "result" in answer
    finally:
        wire.close()
