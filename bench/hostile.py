"""The adversarial suite (issue 22): hostile input against the real server, case by case.

Each ``Case`` is one thing a buggy client or a hostile workspace does to ``mmlsp``:
malformed framing, requests with params that do not fit, a client that answers
``null`` to the server's own requests, workspaces full of links to devices, FIFOs and
files outside the root, background work that streams forever, settings that would
send code elsewhere, and text that is odd or huge. ``run_cases`` runs them against
the real server (``python -m mmlsp``) over stdio, spoken to byte by byte, and for
each case records:

* whether the case got what a user should get (``Outcome.error`` says what not),
* whether the server survived it: the process is alive, ``mmlsp/status`` is answered
  with the same model state as before, and a sentinel document edited after the
  case still holds exactly the client's text,
* the worst response time of ``mmlsp/status`` requests sent every ``PROBE_EVERY_S``
  while the case ran (a frozen event loop shows here, an unanswered probe counts
  as the time it waited).

``tests/test_adversarial.py`` asserts the first two for every case; timings go to
``bench.reliability``'s table, never into an assertion. ``bench.soak --hostile``
mixes the cases that share a server into normal typing.

    python -m bench.hostile              # run every case, print a row per case
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmlsp.lsp.transport import Framer

PROBE_EVERY_S = 0.05
# The least a case is probed for: a case that is over at once still gets a few probes.
MIN_PROBE_S = 0.25
# How long a request may take before the case calls the server deaf.
ANSWER_TIMEOUT_S = 30.0
LOCAL, BACKEND, WORKSPACE = "local", "backend", "workspace"
INVALID_PARAMS, METHOD_NOT_FOUND, REQUEST_CANCELLED = -32602, -32601, -32800


class CaseFailed(AssertionError):
    """The case did not get what a user should get."""


def check(condition: Any, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def capabilities() -> dict[str, Any]:
    """A client that supports what the server's riskier paths use: versioned workspace
    edits, showDocument and work-done progress."""
    return {
        "workspace": {
            "applyEdit": True,
            "workspaceEdit": {"documentChanges": True},
            "configuration": True,
        },
        "window": {"showDocument": {"support": True}, "workDoneProgress": True},
        "textDocument": {
            "hover": {"contentFormat": ["markdown", "plaintext"]},
            "codeAction": {"dataSupport": True},
        },
    }


# -- the wire --------------------------------------------------------------------------


class Server:
    """The real server over stdio, spoken to byte by byte, from any thread.

    Requests the server sends (``workspace/applyEdit``, ``window/showDocument``,
    ``workspace/configuration``, progress) are answered by ``answers[method](params)``;
    a method not listed gets ``null``.
    """

    def __init__(
        self,
        args: list[str],
        cache_dir: Path,
        root: Path | None = None,
        init_options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = cache_dir / "server-stderr.log"
        full_env = dict(os.environ)
        full_env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        full_env["MMLSP_CACHE_DIR"] = str(cache_dir)
        full_env.update(env or {})
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mmlsp", *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=full_env,
            )
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[Any, Future[dict[str, Any]]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.problems: list[str] = []  # framing problems in what the server sent
        self.answers: dict[str, Callable[[Any], Any]] = {
            "workspace/applyEdit": lambda _p: {"applied": True},
            "window/showDocument": lambda _p: {"success": True},
        }
        self._reader = threading.Thread(target=self._read, name="hostile-reader", daemon=True)
        self._reader.start()
        init = {
            "processId": os.getpid(),
            "capabilities": capabilities(),
            "rootUri": root.as_uri() if root else None,
            "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}] if root else None,
            "initializationOptions": init_options,
        }
        self.init_result = self.result("initialize", init, timeout=120)
        self.notify("initialized", {})

    # reading
    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        framer = Framer()
        while data := out.read1(1 << 16):
            framer.feed(data)
            while (frame := framer.next()) is not None:
                if frame.problem:
                    self.problems.append(frame.problem)
                if isinstance(frame.body, dict):
                    self._received(frame.body)
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the server closed its output"))

    def _received(self, body: dict[str, Any]) -> None:
        if "method" in body and "id" in body:  # a request from the server
            self.server_requests.append(body)
            answer = self.answers.get(body["method"], lambda _p: None)
            try:
                result = answer(body.get("params"))
            except Exception as exc:  # noqa: BLE001 - becomes the client's error answer
                self.send({"jsonrpc": "2.0", "id": body["id"], "error": {
                    "code": -32603, "message": str(exc)}})  # fmt: skip
                return
            self.send({"jsonrpc": "2.0", "id": body["id"], "result": result})
        elif "method" in body:
            self.notifications.append(body)
        else:
            with self._lock:
                future = self._waiting.pop(body.get("id"), None)
            if future is not None and not future.done():
                future.set_result(body)

    # writing
    def send(self, body: dict[str, Any] | bytes, header: bytes | None = None) -> None:
        """One message; ``header`` replaces the well-formed one (``%d``: the length)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if header is None:
            header = b"Content-Length: %d\r\n\r\n"
        if b"%d" in header:
            header = header.replace(b"%d", b"%d" % len(data))
        self.send_bytes(header + data)

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def next_id(self, prefix: str = "c") -> str:
        return f"{prefix}{next(self._ids)}"

    def expect(self, msg_id: Any) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._waiting[msg_id] = future
        return future

    def request_async(
        self, method: str, params: Any = None, header: bytes | None = None, *, omit: bool = False
    ) -> tuple[str, Future[dict[str, Any]]]:
        """Send a request; ``omit``: leave the ``params`` key out altogether."""
        msg_id = self.next_id()
        future = self.expect(msg_id)
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if not omit:
            body["params"] = params
        self.send(body, header)
        return msg_id, future

    def request(
        self,
        method: str,
        params: Any = None,
        timeout: float = ANSWER_TIMEOUT_S,
        header: bytes | None = None,
        *,
        omit: bool = False,
    ) -> dict[str, Any]:
        """The whole response (``result`` or ``error``); CaseFailed when none comes."""
        _, future = self.request_async(method, params, header, omit=omit)
        return wait(future, timeout, f"no answer to {method}")

    def result(self, method: str, params: Any = None, timeout: float = ANSWER_TIMEOUT_S) -> Any:
        response = self.request(method, params, timeout)
        check("error" not in response, f"{method} failed: {response.get('error')}")
        return response.get("result")

    def notify(self, method: str, params: Any = None, header: bytes | None = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params}, header)

    # LSP conveniences
    def status(self, timeout: float = ANSWER_TIMEOUT_S) -> dict[str, Any]:
        return self.result("mmlsp/status", None, timeout)

    def document_state(self, uri: str) -> dict[str, Any]:
        return self.result("mmlsp/documentState", {"uri": uri})

    def open(self, uri: str, text: str, version: int = 1) -> None:
        item = {"uri": uri, "languageId": "python", "version": version, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": item})

    def close_doc(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def change(self, uri: str, version: int, changes: list[dict[str, Any]]) -> None:
        params = {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}
        self.notify("textDocument/didChange", params)

    def inline(self, uri: str, line: int, character: int, timeout: float = 60) -> Any:
        return self.result(
            "textDocument/inlineCompletion",
            {**at(uri, line, character), "context": {"triggerKind": 2}},
            timeout,
        )

    def messages(self, *methods: str) -> list[str]:
        methods = methods or ("window/showMessage", "window/logMessage")
        return [
            str((n.get("params") or {}).get("message", ""))
            for n in list(self.notifications)
            if n.get("method") in methods
        ]

    def wait_for_message(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.messages() if text in m]
            if found:
                return found[0]
            check(self.alive(), f"the server exited while waiting for {text!r}")
            time.sleep(0.05)
        raise CaseFailed(f"no message {text!r} within {timeout:.0f} s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def close(self) -> None:
        try:
            if self.alive():
                self.request("shutdown", None, timeout=20)
                self.notify("exit", None)
                self.proc.wait(10)
        except (CaseFailed, OSError, subprocess.TimeoutExpired, ValueError):
            pass
        finally:
            if self.alive():
                self.proc.kill()
                self.proc.wait(10)
            for stream in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError, ValueError):
                    stream.close()  # type: ignore[union-attr]


def wait(future: Future[dict[str, Any]], timeout: float, what: str) -> dict[str, Any]:
    try:
        return future.result(timeout)
    except FutureTimeout:
        raise CaseFailed(f"{what} within {timeout:.0f} s") from None
    except ConnectionError as exc:
        raise CaseFailed(f"{what}: {exc}") from None


def at(uri: str, line: int, character: int) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}


def insert(line: int, character: int, text: str) -> dict[str, Any]:
    point = {"line": line, "character": character}
    return {"range": {"start": point, "end": point}, "text": text}


def error_code(response: dict[str, Any]) -> int | None:
    error = response.get("error")
    return error.get("code") if isinstance(error, dict) else None


# -- the probe -------------------------------------------------------------------------


class StatusProbe:
    """Sends ``mmlsp/status`` every ``PROBE_EVERY_S`` whether or not the last one was
    answered, and keeps each one's response time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._sent: list[tuple[float, Future[dict[str, Any]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(OSError, ValueError):
                _, future = self.server.request_async("mmlsp/status", None)
                future.add_done_callback(_stamp)
                self._sent.append((started, future))
            self._stop.wait(PROBE_EVERY_S)

    def stop(self, grace_s: float = 10.0) -> ProbeResult:
        """Stop sending; wait up to ``grace_s`` for the probes still unanswered."""
        self._stop.set()
        self._thread.join(5)
        deadline = time.monotonic() + grace_s
        for _, future in self._sent:
            with contextlib.suppress(Exception):
                future.result(max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        times, unanswered, errors = [], 0, 0
        for sent, future in self._sent:
            if future.done() and future.exception() is None:
                times.append(getattr(future, "answered_at", now) - sent)
                if "result" not in future.result():
                    errors += 1
            else:
                unanswered += 1
                times.append(now - sent)
        return ProbeResult(len(self._sent), unanswered, errors, max(times, default=0.0))


def _stamp(future: Future[Any]) -> None:
    future.answered_at = time.monotonic()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ProbeResult:
    sent: int
    unanswered: int
    errors: int
    worst_s: float


# -- cases -----------------------------------------------------------------------------


@dataclass
class Context:
    """What a case gets: the server, a scratch folder, and the fake backend (if any)."""

    server: Server
    tmp: Path
    model: Path
    backend: Any = None  # the FakeBackend of the BACKEND group
    root: Path | None = None  # the WORKSPACE case's workspace folder
    _serial: Iterator[int] = field(default_factory=itertools.count)

    def uri(self, name: str) -> str:
        """A URI no earlier case (or earlier run of this case) used."""
        return f"file:///hostile/{next(self._serial)}/{name}"


@dataclass(frozen=True)
class Case:
    klass: str
    name: str
    run: Callable[[Context], None]
    group: str = LOCAL
    # WORKSPACE cases: fills the workspace folder before the server starts.
    workspace: Callable[[Path, Path], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.klass}: {self.name}"


# -- malformed framing -----------------------------------------------------------------

FRAMING = "malformed framing"
# Header blocks as buggy clients send them; %d is the body's true length.
BAD_HEADERS: dict[str, bytes] = {
    "Content-Length of 5,000 digits": b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n",
    "Content-Length of 10^12": b"Content-Length: 1000000000000\r\n\r\n",
    "lower-case header name": b"content-length: %d\r\n\r\n",
    "trailing space after the length": b"Content-Length: %d  \r\n\r\n",
    "LF-only line ends": b"Content-Length: %d\n\n",
    "no space after the colon": b"Content-Length:%d\r\n\r\n",
    "Content-Length 0": b"Content-Length: 0\r\n\r\n",
    "negative Content-Length": b"Content-Length: -5\r\n\r\n",
    "non-numeric Content-Length": b"Content-Length: many\r\n\r\n",
    "length 3 bytes short": b"",  # filled in per body below
    "length 3 bytes long": b"",
}


def _header_for(name: str, body: bytes) -> bytes:
    if name == "length 3 bytes short":
        return b"Content-Length: %d\r\n\r\n" % (len(body) - 3)
    if name == "length 3 bytes long":
        return b"Content-Length: %d\r\n\r\n" % (len(body) + 3)
    return BAD_HEADERS[name].replace(b"%d", b"%d" % len(body))


def framing_case(name: str) -> Callable[[Context], None]:
    """A request and an edit, each under the bad header: both are taken (the request
    answered, the edit applied exactly once), and the next well-formed request too."""

    def run(ctx: Context) -> None:
        server = ctx.server
        msg_id = server.next_id()
        future = server.expect(msg_id)
        body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "mmlsp/status"}).encode()
        server.send_bytes(_header_for(name, body) + body)
        after = server.status()
        check(after.get("version"), f"the next status has no version: {after}")
        answer = wait(future, 10, "the malformed request itself got no answer")
        check("result" in answer and answer["result"].get("version"), f"bad answer: {answer}")

        uri = ctx.uri("framing.py")
        server.open(uri, "x = 1\n")
        change = {"textDocument": {"uri": uri, "version": 2},
                  "contentChanges": [insert(1, 0, "y = 2\n")]}  # fmt: skip
        body = json.dumps({"jsonrpc": "2.0", "method": "textDocument/didChange",
                           "params": change}).encode()  # fmt: skip
        server.send_bytes(_header_for(name, body) + body)
        state = server.document_state(uri)
        check(state.get("sha256") == sha256("x = 1\ny = 2\n"), f"text diverged: {state}")
        check(state.get("version") == 2, f"version {state.get('version')}, not 2")
        server.close_doc(uri)

    return run


# -- invalid params --------------------------------------------------------------------

PARAMS = "invalid params"


def _with_doc(ctx: Context) -> str:
    uri = ctx.uri("params.py")
    ctx.server.open(uri, "import os\n\n\ndef f(x):\n    return os.path.join(x)\n")
    return uri


def params_case(
    method: str, params: Callable[[str], Any], expect: str, *, omit: bool = False
) -> Callable[[Context], None]:
    """``expect``: "-32602" (invalid params), "-32601", "null" (an empty result) or
    "status" (a status object)."""

    def run(ctx: Context) -> None:
        uri = _with_doc(ctx)
        response = ctx.server.request(method, params(uri), timeout=30, omit=omit)
        if expect in ("-32602", "-32601"):
            check(error_code(response) == int(expect), f"expected error {expect}: {response}")
        elif expect == "null":
            result = response.get("result", "missing")
            empty = result is None or result == [] or result == {"items": []}
            check("error" not in response and empty, f"expected an empty result: {response}")
        elif expect == "status":
            result = response.get("result") or {}
            check(result.get("state") and result.get("version"), f"not a status: {response}")
        ctx.server.close_doc(uri)

    return run


def _position(line: int, character: int) -> Callable[[str], Any]:
    return lambda uri: at(uri, line, character)


def _inline_at(line: int, character: int) -> Callable[[str], Any]:
    return lambda uri: {**at(uri, line, character), "context": {"triggerKind": 2}}


def batch_is_ignored(ctx: Context) -> None:
    """JSON-RPC batches are not LSP: an array is dropped, the next request answered."""
    batch = [{"jsonrpc": "2.0", "id": "batch-1", "method": "mmlsp/status"}]
    ctx.server.send(json.dumps(batch).encode())
    check(ctx.server.status().get("version"), "no status after a batch")


def warm_without_params(ctx: Context) -> None:
    ctx.server.notify("mmlsp/warm", None)
    ctx.server.send({"jsonrpc": "2.0", "method": "mmlsp/warm"})  # no params key at all
    ctx.server.notify("mmlsp/warm", {"textDocument": {"uri": 5}, "position": "here"})
    check(ctx.server.status().get("version"), "no status after odd mmlsp/warm hints")


def command_without_arguments(ctx: Context) -> None:
    """An explain with no arguments, null, or a bad range is answered with an error."""
    for arguments in ([], None, ["file:///nowhere.py", {"line": -1}], [{"uri": 5}]):
        params = {"command": "mmlsp.explain", "arguments": arguments}
        response = ctx.server.request("workspace/executeCommand", params, timeout=30)
        check("error" in response, f"explain with arguments {arguments!r}: {response}")


# -- the client answers null -----------------------------------------------------------

NULL_ANSWERS = "client answers null"
_GREET = 'def greet(who):\n    return "hi " + who\n\n\nx = greet("you")\n'


def _handling_settles(ctx: Context, baseline: int) -> None:
    """Messages still being handled go back to where they were (nothing left waiting)."""
    deadline = time.monotonic() + 10
    while (held := ctx.server.status().get("handling", 0)) > baseline + 2:
        check(time.monotonic() < deadline, f"{held} messages still held (was {baseline})")
        time.sleep(0.1)


def _docstring_answered(ctx: Context, name: str, answer: Callable[[Any], Any]) -> dict[str, Any]:
    """Run addDocstring on a fresh document while the client answers applyEdit with
    ``answer``; check the command was answered with an error and nothing stays
    waiting. Returns the command's response."""
    uri = ctx.uri(name)
    ctx.server.open(uri, _GREET)
    baseline = ctx.server.status().get("handling", 0)
    ctx.server.answers["workspace/applyEdit"] = answer
    try:
        params = {"command": "mmlsp.addDocstring",
                  "arguments": [uri, {"line": 0, "character": 5}]}  # fmt: skip
        response = ctx.server.request("workspace/executeCommand", params, timeout=120)
    finally:
        ctx.server.answers["workspace/applyEdit"] = lambda _p: {"applied": True}
    check("error" in response, f"an edit the client did not apply counted: {response}")
    _handling_settles(ctx, baseline)
    ctx.server.close_doc(uri)
    return response


def apply_edit_answered_null(ctx: Context) -> None:
    """addDocstring asks the client to apply its edit; the client answers null. The
    command is answered (an error: nothing was applied), and nothing stays waiting."""
    _docstring_answered(ctx, "apply.py", lambda _p: None)
    asked = [r for r in ctx.server.server_requests if r["method"] == "workspace/applyEdit"]
    check(asked, "the server never asked the client to apply an edit")
    check(
        any("did not apply the edit" in m for m in ctx.server.messages("window/showMessage")),
        "the user was not told the edit was not applied",
    )


def apply_edit_answered_malformed(ctx: Context) -> None:
    """The client answers applyEdit with an array, not a result object: not applied."""
    _docstring_answered(ctx, "apply-malformed.py", lambda _p: ["applied"])


def show_document_answered_null(ctx: Context) -> None:
    """explain opens its result with showDocument; the client answers null. The command
    is answered with the explanation, which is shown as a message instead."""
    uri = ctx.uri("show.py")
    ctx.server.open(uri, _GREET)
    baseline = ctx.server.status().get("handling", 0)
    shown_before = len(ctx.server.messages("window/showMessage"))
    ctx.server.answers["window/showDocument"] = lambda _p: None
    try:
        params = {"command": "mmlsp.explain", "arguments": [uri, {"line": 0, "character": 5}]}
        response = ctx.server.request("workspace/executeCommand", params, timeout=120)
    finally:
        ctx.server.answers["window/showDocument"] = lambda _p: {"success": True}
    result = response.get("result")
    check(isinstance(result, str) and "greet" in result, f"no explanation: {response}")
    asked = [r for r in ctx.server.server_requests if r["method"] == "window/showDocument"]
    check(asked, "the server never asked the client to show a document")
    shown = ctx.server.messages("window/showMessage")[shown_before:]
    check(any("greet" in m for m in shown), f"the explanation was not shown: {shown}")
    _handling_settles(ctx, baseline)
    ctx.server.close_doc(uri)


def apply_edit_refused(ctx: Context) -> None:
    """The client answers applyEdit with an error: not applied."""

    def refuse(_params: Any) -> Any:
        raise RuntimeError("this editor cannot apply edits")

    _docstring_answered(ctx, "apply-error.py", refuse)


def configuration_answered_null(ctx: Context) -> None:
    """didChangeConfiguration with null settings makes the server pull them; the client
    answers null (or a list of nulls): the settings stay as they were."""
    before = ctx.server.status()["settings"]
    for answer in (None, [None], [], "not a list"):
        asked = len(ctx.server.server_requests)
        ctx.server.answers["workspace/configuration"] = lambda _p, a=answer: a
        try:
            ctx.server.notify("workspace/didChangeConfiguration", {"settings": None})
            deadline = time.monotonic() + 10
            while not [
                r for r in ctx.server.server_requests[asked:]
                if r["method"] == "workspace/configuration"
            ]:  # fmt: skip
                check(time.monotonic() < deadline, "the server never pulled its settings")
                time.sleep(0.05)
            after = ctx.server.status()
        finally:
            ctx.server.answers.pop("workspace/configuration", None)
        check(after["settings"] == before, f"settings changed after {answer!r}")
        check(after["state"] == "ready", f"model state {after['state']} after {answer!r}")


# -- hostile workspaces ----------------------------------------------------------------

WORKSPACES = "hostile workspace"
# A file the scan reaches last (names are walked in order): when its docstring shows
# in hover, the scan went past every hostile entry.
LAST_FILE = "zzz_last.py"
# A server without a model holds a few hundred MB; reading /dev/zero took 4 GB in 6 s.
MAX_RSS_MB = 1500


def _definition(name: str, doc: str) -> str:
    return f'def {name}(value):\n    """{doc}"""\n    return value\n'


def _hover_text(ctx: Context, name: str) -> str:
    """What hover shows for a call to ``name`` in a document outside the workspace."""
    uri = ctx.uri("uses.py")
    ctx.server.open(uri, f"result = {name}(1)\n")
    try:
        response = ctx.server.request("textDocument/hover", at(uri, 0, 10), timeout=30)
    finally:
        ctx.server.close_doc(uri)
    check("error" not in response, f"hover failed: {response}")
    result = response.get("result") or {}
    contents = result.get("contents") or {}
    return contents.get("value", "") if isinstance(contents, dict) else str(contents)


def _scan_finished(ctx: Context) -> None:
    ctx.server.wait_for_message("workspace files in", 60)
    shown = _hover_text(ctx, "last_helper")
    check("LAST FILE DOC" in shown, f"the scan never reached {LAST_FILE}: {shown!r}")


def _not_indexed(name: str, secret: str) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        _scan_finished(ctx)
        shown = _hover_text(ctx, name)
        check(secret not in shown, f"hover shows what the workspace must not give: {shown!r}")
        check(ctx.server.rss_mb() < MAX_RSS_MB, f"RSS {ctx.server.rss_mb():.0f} MB")

    return run


def scan_is_bounded(ctx: Context) -> None:
    """The scan finishes (it reached the last file) with memory bounded."""
    _scan_finished(ctx)
    check(ctx.server.rss_mb() < MAX_RSS_MB, f"RSS {ctx.server.rss_mb():.0f} MB after the scan")


def _link(target: str, name: str) -> Callable[[Path, Path], None]:
    def make(root: Path, _outside: Path) -> None:
        (root / name).symlink_to(target)

    return make


def _fifo(root: Path, _outside: Path) -> None:
    os.mkfifo(root / "fifo.py")


def _socket(root: Path, _outside: Path) -> None:
    # Bound and left open would keep a descriptor; a bound, closed socket leaves its node.
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "socket.py"))
    finally:
        sock.close()


def _link_out(root: Path, outside: Path) -> None:
    (outside / "secret.py").write_text(_definition("leaked_helper", "LEAKED SECRET DOC"))
    (root / "outside.py").symlink_to(outside / "secret.py")


def _folder_link_out(root: Path, outside: Path) -> None:
    folder = outside / "pkg"
    folder.mkdir()
    (folder / "mod.py").write_text(_definition("folder_helper", "LEAKED FOLDER DOC"))
    (root / "linked_pkg").symlink_to(folder, target_is_directory=True)


def _loop(root: Path, _outside: Path) -> None:
    (root / "loop.py").symlink_to(root / "loop.py")


def _huge(root: Path, _outside: Path) -> None:
    with open(root / "huge.py", "w") as handle:
        handle.write(_definition("huge_helper", "HUGE FILE DOC"))
        line = "x = 1  # padding " + "." * 80 + "\n"
        handle.write(line * (24_000_000 // len(line)))  # 24 MB of real text


def _sparse(root: Path, _outside: Path) -> None:
    with open(root / "sparse.py", "w") as handle:
        handle.write(_definition("sparse_helper", "SPARSE FILE DOC"))
        handle.truncate(16 << 30)  # 16 GiB that take no disk


def _newline_name(root: Path, _outside: Path) -> None:
    (root / "new\nline.py").write_text(_definition("newline_helper", "NEWLINE NAME DOC"))


def newline_name_is_indexed(ctx: Context) -> None:
    """A file name with a newline is odd but legal: its definitions are found."""
    _scan_finished(ctx)
    shown = _hover_text(ctx, "newline_helper")
    check("NEWLINE NAME DOC" in shown, f"the file with a newline in its name: {shown!r}")


def prepare_workspace(root: Path, outside: Path, cases: list[Case]) -> None:
    """One workspace holding every case's hostile entry, and the file scanned last."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    (root / LAST_FILE).write_text(_definition("last_helper", "LAST FILE DOC"))
    for case in cases:
        if case.workspace is not None:
            case.workspace(root, outside)


# -- concurrent background work --------------------------------------------------------

BACKGROUND = "concurrent background work"
# How long the fake backend streams an explanation before giving up (forever, for a run).
ENDLESS_S = 45.0
COMPLETION_TEXT = "path.join('a', 'b')"


class FakeBackend:
    """An OpenAI-compatible server whose chat (explanations) streams without end and
    whose completions answer at once with ``COMPLETION_TEXT``."""

    def __init__(self) -> None:
        from tests.llama_server import FakeServer

        self.lock = threading.Lock()
        self.streams: list[dict[str, Any]] = []  # {"body", "opened", "closed"}
        self.server = FakeServer(self._handle, models=("fake-model",))
        self.base_url = self.server.base_url + "/v1"

    def _handle(self, request: Any) -> None:
        from tests.llama_server import completion_chunk

        request.start_stream()
        if not request.path.endswith("/chat/completions"):
            request.event(completion_chunk(COMPLETION_TEXT))
            request.event(completion_chunk("", "stop"))
            request.event("[DONE]")
            request.end_stream()
            return
        record = {"body": json.dumps(request.body), "opened": time.monotonic(), "closed": None}
        with self.lock:
            self.streams.append(record)
        try:
            deadline = time.monotonic() + ENDLESS_S
            while time.monotonic() < deadline:
                delta = {"content": "Explains at length. "}
                request.event({"choices": [{"index": 0, "delta": delta}]})
                time.sleep(0.02)
            request.end_stream()
        except OSError:
            pass  # the client hung up: the generation stopped
        finally:
            record["closed"] = time.monotonic()

    def streams_for(self, marker: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.streams if marker in s["body"]]

    def close(self) -> None:
        self.server.close()


def _wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        check(time.monotonic() < deadline, f"{what} within {timeout:.0f} s")
        time.sleep(0.02)
    return value


def endless_hovers_then_complete(ctx: Context) -> str:
    """Six hovers whose explanations stream forever, then a completion: it comes back,
    with the backend's text, however long the hovers go on."""
    uri = ctx.uri("fair.py")
    defs = "".join(f"def endless_{i}(x):\n    return x + {i}\n\n\n" for i in range(6))
    ctx.server.open(uri, defs + "import os\nvalue = os.")
    for i in range(6):
        response = ctx.server.request("textDocument/hover", at(uri, 4 * i, 5), timeout=30)
        check("error" not in response, f"hover {i} failed: {response}")
    _wait_until(lambda: ctx.backend.streams_for("endless_"), 10, "no explanation started")
    started = time.monotonic()
    result = ctx.server.inline(uri, 24, 11, timeout=ANSWER_TIMEOUT_S)
    waited = time.monotonic() - started
    items = (result or {}).get("items") or []
    check(items, f"the completion came back empty: {result}")
    check("path.join" in items[0].get("insertText", ""), f"not the backend's text: {items[0]}")
    ctx.server.close_doc(uri)
    return f"completion after six endless hovers: {waited * 1000:.0f} ms"


def cancelled_explain_stops(ctx: Context) -> str:
    """$/cancelRequest for mmlsp.explain: the request is answered -32800 and the
    explanation stops at the backend (its stream is closed)."""
    uri = ctx.uri("explain.py")
    marker = f"explained_{next(ctx._serial)}"
    ctx.server.open(uri, f"def {marker}(x):\n    return x * 2\n")
    params = {"command": "mmlsp.explain",
              "arguments": [uri, {"line": 0, "character": 5}, {"show": False}]}  # fmt: skip
    msg_id, future = ctx.server.request_async("workspace/executeCommand", params)
    _wait_until(lambda: ctx.backend.streams_for(marker), 30, "the explanation never started")
    ctx.server.notify("$/cancelRequest", {"id": msg_id})
    cancelled = time.monotonic()
    response = wait(future, 10, "the cancelled explain was not answered")
    check(error_code(response) == REQUEST_CANCELLED, f"expected -32800: {response}")

    def closed() -> bool:
        return all(s["closed"] for s in ctx.backend.streams_for(marker))

    _wait_until(closed, 10, "the backend still streams the cancelled explanation")
    stopped = max(s["closed"] for s in ctx.backend.streams_for(marker)) - cancelled
    ctx.server.close_doc(uri)
    return f"cancelled explanation stopped at the backend after {stopped * 1000:.0f} ms"


# -- settings that redirect traffic ----------------------------------------------------

SETTINGS = "settings that redirect traffic"
STOLEN_KEY_ENV = "MMLSP_STOLEN_KEY"


def redirect(elsewhere: str) -> dict[str, Any]:
    return {"backend": "openai", "baseUrl": elsewhere, "apiKeyEnv": STOLEN_KEY_ENV}


def _still_local(ctx: Context) -> None:
    """A completion is served by the local model; nothing reached the other address."""
    uri = ctx.uri("redirect.py")
    ctx.server.open(uri, "import os\nx = os.path\n")
    ctx.server.inline(uri, 1, 11)
    ctx.server.close_doc(uri)
    current = ctx.server.status()
    settings = current["settings"]
    check(current["backend"] == "local", f"backend is now {current['backend']}")
    check(settings["backend"] == "local", f"backend setting {settings['backend']}")
    check(settings["apiKeyEnv"] == "", f"apiKeyEnv is now {settings['apiKeyEnv']!r}")
    check("127.0.0.1:8000" in settings["baseUrl"], f"baseUrl is now {settings['baseUrl']!r}")
    check(current["state"] == "ready", f"model state {current['state']}")
    check(ctx.elsewhere.connections == 0, "a connection reached the address from settings")


def redirect_by_init_options(ctx: Context) -> None:
    """The server was started with the redirect in initializationOptions."""
    _still_local(ctx)
    warnings = ctx.server.messages("window/showMessage")
    check(any("where you start mmlsp" in m for m in warnings), "no warning was shown")


def redirect_by(shape: str) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        target = redirect(ctx.elsewhere.base_url + "/v1")
        shown = len(ctx.server.messages("window/showMessage"))
        if shape == "pulled":  # null settings: the server asks, the client answers
            ctx.server.answers["workspace/configuration"] = lambda _p: [target]
            try:
                ctx.server.notify("workspace/didChangeConfiguration", {"settings": None})
                _wait_until(
                    lambda: len(ctx.server.messages("window/showMessage")) > shown,
                    10,
                    "the pulled settings were not refused with a message",
                )
            finally:
                ctx.server.answers.pop("workspace/configuration", None)
        else:
            settings = {"mmlsp": target} if shape == "nested" else target
            ctx.server.notify("workspace/didChangeConfiguration", {"settings": settings})
        _still_local(ctx)
        warnings = ctx.server.messages("window/showMessage")[shown:]
        check(any("--base-url" in m for m in warnings), f"no warning: {warnings}")

    return run


# -- odd text --------------------------------------------------------------------------

ODD_TEXT = "odd text"


def lone_surrogates(ctx: Context) -> None:
    """Lone surrogates (JSON allows "\\ud800") cost only themselves: completion and
    explain work, nothing fails in the tokenizer, the text is held exactly."""
    uri = ctx.uri("surrogates.py")
    text = ('high = "\ud800"\nlow = "\udc00"\nswapped = "\udc00\ud800"\n\n\n'
            'def greet(who):\n    return "hi " + who\n\n\nx = greet(high)\n')  # fmt: skip
    failures_before = len([m for m in ctx.server.messages() if "generation failed" in m])
    ctx.server.open(uri, text)
    result = ctx.server.inline(uri, 9, 15)
    check(isinstance(result, dict) and "items" in result, f"no completion list: {result}")
    params = {"command": "mmlsp.explain",
              "arguments": [uri, {"line": 5, "character": 5}, {"show": False}]}  # fmt: skip
    response = ctx.server.request("workspace/executeCommand", params, timeout=120)
    explained = response.get("result")
    check(isinstance(explained, str) and "greet" in explained, f"explain failed: {response}")
    failures = [m for m in ctx.server.messages() if "generation failed" in m]
    check(len(failures) == failures_before, f"generation failed: {failures[-1:]}")
    state = ctx.server.document_state(uri)
    check(state.get("sha256") == sha256(text), "the server's text differs from the client's")
    ctx.server.close_doc(uri)


def _typing(ctx: Context, uri: str, text: str, line: int, column: int, typed: str) -> str:
    """Type ``typed`` at (line, column in UTF-16 units), asking for a suggestion after
    each character; return the new text (the line is found by "\\n" only)."""
    lines = text.split("\n")
    version = 1
    for char in typed:
        version += 1
        ctx.server.change(uri, version, [insert(line, column, char)])
        # Python indexes code points; the column counts UTF-16 units.
        units, index = 0, 0
        while units < column:
            units += 2 if ord(lines[line][index]) > 0xFFFF else 1
            index += 1
        lines[line] = lines[line][:index] + char + lines[line][index:]
        column += 2 if ord(char) > 0xFFFF else 1
        result = ctx.server.inline(uri, line, column)
        check(result is None or "items" in result, f"bad completion answer: {result}")
    return "\n".join(lines)


def astral_long_line(ctx: Context) -> None:
    """A 100,000-character line holding one emoji; typing at its end and after the
    emoji, asking for a suggestion after each character."""
    uri = ctx.uri("astral.py")
    long_line = "s = '😀" + "a" * 100_000 + "'"
    text = f"import os\n{long_line}\nx = os.path\n"
    ctx.server.open(uri, text)
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in long_line)
    text = _typing(ctx, uri, text, 1, units, " +")
    text = _typing(ctx, uri, text, 1, 7, "😀")  # right after the emoji
    state = ctx.server.document_state(uri)
    check(state.get("sha256") == sha256(text), "the server's text differs from the client's")
    ctx.server.close_doc(uri)


def _big_file(lines: int = 200_000) -> list[str]:
    """About 3 MB: under maxFileBytes, so it is parsed and completed like any file."""
    return [f"v{i} = g({i})" if i % 7 else f"def f{i}(a): return a" for i in range(lines)]


def many_changes_in_one_did_change(ctx: Context) -> None:
    """A formatter's or multi-cursor edit: one didChange with 2,000 content changes on
    a 200,000-line file. Applied exactly, then completion works on the result."""
    uri = ctx.uri("big-many.py")
    lines = _big_file()
    ctx.server.open(uri, "\n".join(lines))
    changes = []
    for k in range(2000):  # one character at the start of every 100th line
        line = k * 100
        changes.append(insert(line, 0, "#"))
        lines[line] = "#" + lines[line]
    ctx.server.change(uri, 2, changes)
    state = ctx.server.document_state(uri)
    check(state.get("sha256") == sha256("\n".join(lines)), "text diverged after 2,000 changes")
    check(state.get("version") == 2, f"version {state.get('version')}")
    result = ctx.server.inline(uri, 1, 10)
    check(result is None or "items" in result, f"bad completion answer: {result}")
    ctx.server.close_doc(uri)


def typing_at_the_top_of_a_huge_file(ctx: Context) -> None:
    """Typing "(" on line 0 of a 200,000-line file: the parse is as big as it gets."""
    uri = ctx.uri("big-typing.py")
    text = "\n".join(["x = print", *_big_file()[1:]])
    ctx.server.open(uri, text)
    text = _typing(ctx, uri, text, 0, 9, "(v")
    state = ctx.server.document_state(uri)
    check(state.get("sha256") == sha256(text), "the server's text differs from the client's")
    ctx.server.close_doc(uri)


# -- the cases -------------------------------------------------------------------------

BIG = 2**31  # past LSP's uinteger
_RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}
HOVER, INLINE = "textDocument/hover", "textDocument/inlineCompletion"


def _params(name: str, method: str, params: Callable[[str], Any], expect: str, **kw) -> Case:
    return Case(PARAMS, name, params_case(method, params, expect, **kw))


def _workspace(name: str, run: Callable[[Context], None], entry: Callable[..., None]) -> Case:
    return Case(WORKSPACES, name, run, WORKSPACE, entry)


CASES: list[Case] = [
    *(Case(FRAMING, name, framing_case(name)) for name in BAD_HEADERS),
    _params("hover at line -1", HOVER, _position(-1, 0), "-32602"),
    _params("hover at line 2^31", HOVER, _position(BIG, 0), "-32602"),
    _params("hover at character 2^31", HOVER, _position(0, BIG), "-32602"),
    _params("completion at line 2^31-1", INLINE, _inline_at(BIG - 1, 0), "null"),
    _params("completion with null params", "textDocument/completion", lambda _: None, "-32602"),
    _params("hover with an array for params", HOVER, lambda u: [u, 0, 0], "-32602"),
    _params(
        "code action without context",
        "textDocument/codeAction",
        lambda u: {"textDocument": {"uri": u}, "range": _RANGE},
        "-32602",
    ),
    _params("inline completion without context", INLINE, _position(1, 0), "-32602"),
    _params(
        "hover with a null textDocument",
        HOVER,
        lambda _: {"textDocument": None, "position": {"line": 0, "character": 0}},
        "-32602",
    ),
    _params(
        "position as strings",
        HOVER,
        lambda u: {"textDocument": {"uri": u}, "position": {"line": "1", "character": "x"}},
        "-32602",
    ),
    _params("mmlsp/status without params", "mmlsp/status", lambda _: None, "status", omit=True),
    _params("mmlsp/status with an array", "mmlsp/status", lambda _: [1, 2], "status"),
    _params(
        "mmlsp/documentState without params",
        "mmlsp/documentState",
        lambda _: None,
        "-32602",
        omit=True,
    ),
    _params("mmlsp/nextEdit without params", "mmlsp/nextEdit", lambda _: None, "-32602"),
    _params("mmlsp/nextEdit at line 2^31", "mmlsp/nextEdit", _position(BIG, 0), "-32602"),
    _params("mmlsp/nextEdit with an array", "mmlsp/nextEdit", lambda u: [u, 0, 0], "-32602"),
    _params("an unknown method", "mmlsp/noSuchMethod", lambda _: {}, "-32601"),
    Case(PARAMS, "mmlsp/warm without params", warm_without_params),
    Case(PARAMS, "mmlsp.explain without arguments", command_without_arguments),
    Case(PARAMS, "a JSON-RPC batch", batch_is_ignored),
    Case(NULL_ANSWERS, "workspace/applyEdit answered null", apply_edit_answered_null),
    Case(NULL_ANSWERS, "workspace/applyEdit answered with an error", apply_edit_refused),
    Case(NULL_ANSWERS, "workspace/applyEdit answered malformed", apply_edit_answered_malformed),
    Case(NULL_ANSWERS, "window/showDocument answered null", show_document_answered_null),
    Case(NULL_ANSWERS, "workspace/configuration answered null", configuration_answered_null),
    Case(SETTINGS, "initializationOptions", redirect_by_init_options),
    Case(SETTINGS, "didChangeConfiguration, nested", redirect_by("nested")),
    Case(SETTINGS, "didChangeConfiguration, flat", redirect_by("flat")),
    Case(SETTINGS, "workspace/configuration answer", redirect_by("pulled")),
    Case(ODD_TEXT, "lone surrogates", lone_surrogates),
    Case(ODD_TEXT, "astral characters on a 100k-character line", astral_long_line),
    Case(ODD_TEXT, "200k lines, 2,000 changes in one didChange", many_changes_in_one_did_change),
    Case(ODD_TEXT, "200k lines, typing on line 0", typing_at_the_top_of_a_huge_file),
    Case(BACKGROUND, "six endless hovers, then typing", endless_hovers_then_complete, BACKEND),
    Case(BACKGROUND, "cancelled mmlsp.explain", cancelled_explain_stops, BACKEND),
    _workspace("*.py symlink to /dev/zero", scan_is_bounded, _link("/dev/zero", "zero.py")),
    _workspace("*.py symlink to /dev/urandom", scan_is_bounded, _link("/dev/urandom", "rand.py")),
    _workspace("FIFO named *.py", scan_is_bounded, _fifo),
    _workspace("socket named *.py", scan_is_bounded, _socket),
    _workspace("symlink loop", scan_is_bounded, _loop),
    _workspace(
        "*.py symlink out of the root",
        _not_indexed("leaked_helper", "LEAKED SECRET DOC"),
        _link_out,
    ),
    _workspace(
        "folder symlink out of the root",
        _not_indexed("folder_helper", "LEAKED FOLDER DOC"),
        _folder_link_out,
    ),
    _workspace("24 MB file", _not_indexed("huge_helper", "HUGE FILE DOC"), _huge),
    _workspace("16 GiB sparse file", _not_indexed("sparse_helper", "SPARSE FILE DOC"), _sparse),
    _workspace("file name with a newline", newline_name_is_indexed, _newline_name),
]


# -- the runner ------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    error: str | None  # what the case did not get, or None
    survived: bool
    problem: str | None  # why it did not survive
    probe: ProbeResult
    seconds: float
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.survived


class Sentinel:
    """A document edited after every case: the server must hold exactly its text."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.uri = "file:///hostile/sentinel.py"
        self.text = "import os\n"
        self.version = 1
        server.open(self.uri, self.text)

    def edit_and_check(self) -> None:
        self.version += 1
        line = self.text.count("\n")
        added = f"step_{self.version} = os.sep\n"
        self.server.change(self.uri, self.version, [insert(line, 0, added)])
        self.text += added
        state = self.server.document_state(self.uri)
        check(state.get("sha256") == sha256(self.text), f"the sentinel's text diverged: {state}")
        check(state.get("version") == self.version, f"sentinel version {state.get('version')}")


class Group:
    """One server shared by a group's cases, restarted when a case kills it."""

    def __init__(
        self, kind: str, cases: list[Case], model: Path, work: Path, root: Path | None = None
    ) -> None:
        """``root``: a workspace folder for a LOCAL group's server (the soak's)."""
        self.kind, self.cases, self.model, self.work = kind, cases, model, work
        self.elsewhere: Any = None
        self.backend: FakeBackend | None = None
        self.root: Path | None = root
        self.server: Server | None = None
        self.startup: ProbeResult | None = None  # probes while the workspace was scanned
        self.starts = 0

    def start(self) -> Server:
        from tests.llama_server import FakeServer

        self.starts += 1
        cache = self.work / f"{self.kind}-{self.starts}"
        if self.kind == LOCAL:
            if self.elsewhere is None:
                self.elsewhere = FakeServer(lambda r: r.json(500, {"error": "never"}))
            server = Server(
                ["--model", str(self.model)],
                cache,
                root=self.root,
                init_options=redirect(self.elsewhere.base_url + "/v1"),
                env={STOLEN_KEY_ENV: "secret-value"},
            )
        elif self.kind == BACKEND:
            if self.backend is None:
                self.backend = FakeBackend()
            flags = ["--backend", "openai", "--base-url", self.backend.base_url]
            server = Server([*flags, "--model", "fake-model"], cache, init_options={
                "reviewOnSave": "off"})  # fmt: skip
        else:
            self.root = self.work / f"workspace-{self.starts}" / "root"
            prepare_workspace(self.root, self.root.parent / "outside", self.cases)
            # No model: the scan is what is measured, and hover shows definitions at once.
            server = Server(["--model", str(cache / "no-model")], cache, root=self.root)
            probe = StatusProbe(server)
            with contextlib.suppress(CaseFailed):
                server.wait_for_message("workspace files in", 60)
            self.startup = probe.stop()
        self.server = server
        self.expected_state = self._settled_state(server)
        self.sentinel = Sentinel(server)
        return server

    @staticmethod
    def _settled_state(server: Server) -> str:
        deadline = time.monotonic() + 180
        while (state := server.status(60)["state"]) not in ("ready", "failed"):
            check(time.monotonic() < deadline, f"the model is still {state}")
            time.sleep(0.05)
        return state

    def context(self) -> Context:
        assert self.server is not None
        ctx = Context(self.server, self.work, self.model, self.backend, self.root)
        ctx.elsewhere = self.elsewhere  # type: ignore[attr-defined]
        return ctx

    def survival(self) -> str | None:
        server = self.server
        if server is None or not server.alive():
            code = server.proc.returncode if server else None
            return f"the server exited (status {code})"
        try:
            state = server.status(20)["state"]
            check(state == self.expected_state, f"model state {state}, was {self.expected_state}")
            self.sentinel.edit_and_check()
        except CaseFailed as exc:
            return str(exc)
        return None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.elsewhere is not None:
            self.elsewhere.close()
        if self.backend is not None:
            self.backend.close()


def run_case(group: Group, case: Case) -> Outcome:
    if group.server is None or not group.server.alive():
        group.start()
    assert group.server is not None
    ctx = group.context()
    probe = StatusProbe(group.server)
    started = time.monotonic()
    error = note = None
    try:
        note = case.run(ctx)
    except CaseFailed as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a case that breaks is a failed case
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    if (left := MIN_PROBE_S - seconds) > 0:
        time.sleep(left)
    result = probe.stop()
    if case.group == WORKSPACE and group.startup is not None:  # the scan happened before
        result = ProbeResult(
            result.sent + group.startup.sent,
            result.unanswered + group.startup.unanswered,
            result.errors + group.startup.errors,
            max(result.worst_s, group.startup.worst_s),
        )
    problem = group.survival()
    if problem is None and (result.unanswered or result.errors):
        problem = f"{result.unanswered} status probes unanswered, {result.errors} errors"
    return Outcome(case, error, problem is None, problem, result, seconds, note)


def run_cases(
    cases: list[Case], model: Path, work: Path, report: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Run ``cases`` group by group (a server per group); one outcome per case, in order."""
    outcomes: dict[int, Outcome] = {}
    for kind in (LOCAL, BACKEND, WORKSPACE):
        members = [(i, c) for i, c in enumerate(cases) if c.group == kind]
        if not members:
            continue
        group = Group(kind, [c for _, c in members], model, work)
        try:
            for i, case in members:
                outcomes[i] = run_case(group, case)
                if report is not None:
                    report(outcomes[i])
        finally:
            group.close()
    return [outcomes[i] for i in sorted(outcomes)]


def summary(outcomes: list[Outcome]) -> list[tuple[str, int, int, int, float]]:
    """Per class: (class, cases tried, survived, handled as expected, worst status s)."""
    rows: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        rows.setdefault(outcome.case.klass, []).append(outcome)
    return [
        (
            klass,
            len(group),
            sum(o.survived for o in group),
            sum(o.error is None for o in group),
            max(o.probe.worst_s for o in group),
        )
        for klass, group in rows.items()
    ]


def describe(outcome: Outcome) -> str:
    mark = "ok" if outcome.ok else "FAILED"
    text = (
        f"{mark:6} {outcome.case.id}: worst status {outcome.probe.worst_s * 1000:.0f} ms "
        f"({outcome.probe.sent} probes), {outcome.seconds:.1f} s"
    )
    if outcome.note:
        text += f"; {outcome.note}"
    if outcome.error:
        text += f"\n       wrong: {outcome.error}"
    if outcome.problem:
        text += f"\n       did not survive: {outcome.problem}"
    return text


def tiny_model() -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(Path(tempfile.mkdtemp(prefix="mmlsp-tiny-")))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model dir (default: the tiny test model)")
    parser.add_argument("-k", default="", help="only cases whose id contains this")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.k.lower() in c.id.lower()]
    model = args.model or tiny_model()
    with tempfile.TemporaryDirectory(prefix="mmlsp-hostile-") as work:
        outcomes = run_cases(cases, model, Path(work), lambda o: print(describe(o), flush=True))
    for klass, tried, survived, handled, worst in summary(outcomes):
        print(f"{klass}: {tried} tried, {survived} survived, {handled} handled as expected, "
              f"worst status {worst * 1000:.0f} ms")  # fmt: skip
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
