"""Where the server's logs go: the editor gets every line with its real level through
``window/logMessage``; stderr, which editors show as errors, only real problems."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.lsp_helpers import server_env

ROOT = Path(__file__).resolve().parent.parent


class RawClient:
    """The server as an editor runs it: a subprocess on stdio, stderr kept apart."""

    def __init__(self, args: list[str], cache: Path, stderr: Path) -> None:
        self.stderr_path = stderr
        self._stderr = stderr.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmlsp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=server_env(cache),
            cwd=ROOT,
        )
        self.notifications: list[dict[str, Any]] = []
        self._ids = iter(range(1, 1_000_000))

    def send(self, method: str, params: Any = None, request: bool = False) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        msg_id = next(self._ids) if request else None
        if request:
            message["id"] = msg_id
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return msg_id

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while (line := self.proc.stdout.readline().strip()) != b"":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def request(self, method: str, params: Any = None) -> Any:
        msg_id = self.send(method, params, request=True)
        while True:
            message = self._read()
            if message.get("id") == msg_id and "method" not in message:
                assert "error" not in message, message
                return message.get("result")
            if "id" in message and "method" in message:  # a request to the client
                body = {"jsonrpc": "2.0", "id": message["id"], "result": None}
                data = json.dumps(body).encode()
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
                self.proc.stdin.flush()
            else:
                self.notifications.append(message)

    def wait_ready(self, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.request("mmlsp/status")
            if status["state"] in ("ready", "failed"):
                return status
            time.sleep(0.1)
        raise TimeoutError("the model never loaded")

    def close(self) -> str:
        try:
            self.request("shutdown")
            self.send("exit")
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()
        return self.stderr_path.read_text(errors="replace")

    def log_messages(self) -> list[tuple[int, str]]:
        return [
            (n["params"]["type"], n["params"]["message"])
            for n in self.notifications
            if n.get("method") == "window/logMessage"
        ]


def run_session(args: list[str], tmp_path: Path) -> tuple[RawClient, str]:
    client = RawClient(args, tmp_path / "cache", tmp_path / "stderr.txt")
    try:
        client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        client.send("initialized", {})
        status = client.wait_ready()
        assert status["state"] == "ready", status
        # One completion, so generation (and its cache argument) runs too.
        uri = (tmp_path / "a.py").as_uri()
        text = "def add(a, b):\n    return "
        client.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": 1, "character": 11},
                "context": {"triggerKind": 1},
            },
        )
    finally:
        stderr = client.close()
    return client, stderr


def test_info_goes_to_the_editor_and_stderr_stays_for_problems(tiny_model_dir, tmp_path):
    log_file = tmp_path / "server.log"
    client, stderr = run_session(
        ["--model", str(tiny_model_dir), "--log-file", str(log_file)], tmp_path
    )
    messages = client.log_messages()
    # The editor is told the model is ready, as information (MessageType.Info == 3).
    assert any(kind == 3 and "ready on cpu" in text for kind, text in messages), messages
    # stderr: no information lines, no library deprecation noise, no crash at exit:
    # nothing at all, when nothing went wrong.
    for noise in (" INFO ", "FutureWarning", "DeprecationWarning", "deprecated", "Fatal"):
        assert noise not in stderr, stderr
    assert stderr == "", stderr
    assert client.proc.returncode == 0
    # --log-file still gets everything at the chosen level.
    assert "INFO mmlsp.features.loading: model" in log_file.read_text()


def test_debug_level_sends_debug_lines_as_log(tiny_model_dir, tmp_path):
    client, stderr = run_session(["--model", str(tiny_model_dir), "--log-level", "debug"], tmp_path)
    kinds = {kind for kind, _text in client.log_messages()}
    assert 4 in kinds and 3 in kinds  # MessageType.Log for debug lines, Info for info
    assert " DEBUG " not in stderr and " INFO " not in stderr, stderr


def test_python_warnings_go_through_the_log_at_their_level(tmp_path):
    """Deprecations from libraries go to the debug log; other warnings stay warnings."""
    code = (
        "import logging, warnings\n"
        "from mmlsp.cli import setup_logging\n"
        f"setup_logging('debug', {str(tmp_path / 'log.txt')!r})\n"
        "warnings.warn('old api', FutureWarning)\n"
        "warnings.warn('odd input', UserWarning)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert "old api" not in result.stderr
    assert "WARNING mmlsp.warnings: UserWarning" in result.stderr
    logged = (tmp_path / "log.txt").read_text()
    assert "DEBUG mmlsp.warnings: FutureWarning" in logged and "old api" in logged
