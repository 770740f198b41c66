"""A scripted stand-in for the mmlsp server, for the next-edit journey (journeys.mjs).

The real built-in model rarely proposes a next edit, so the journey points the extension
at this instead (`mmlsp.serverPath`): a real LSP server over stdio (standard library
only) that keeps the open documents (full sync) and answers `mmlsp/nextEdit` from the
fixed RULES below, in the protocol of mmlsp/features/next_edit.py:

* rename the parameter `rate` to `tax_rate` in `def price_with_tax(price, rate):` and
  it proposes the same rename at the two other uses in the function (two edits, on
  other lines than the cursor's: shown as decorations);
* once those are applied, it proposes inserting ` / 100` right after the second one,
  where the extension leaves the cursor (shown as ghost text);
* anything else: `{"edits": []}`.

A request for another version than the document's current one gets `edits: []`, as
from the real server. It also answers `mmlsp/status` (the status bar then says
`mmlsp: fake-next-edit (cpu)`) and takes `mmlsp.acceptNextEdit` through
`workspace/executeCommand`. Every next-edit request, `mmlsp/nextEditShown` and
executed command is appended as one JSON line to the file given with `--record`.
Other arguments (the extension's `--log-file ...`) are ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

ACCEPT_COMMAND = "mmlsp.acceptNextEdit"

# (what the document must contain, [(unique anchor text, start, end within it, new text)]).
RULES: list[tuple[list[str], list[tuple[str, int, int, str]]]] = [
    (
        ["def price_with_tax(price, tax_rate):", "    if rate < 0:", "(1 + rate)"],
        [("    if rate < 0:", 7, 11, "tax_rate"), ("(1 + rate)", 5, 9, "tax_rate")],
    ),
    (
        ["def price_with_tax(price, tax_rate):", "    if tax_rate < 0:", "(1 + tax_rate)"],
        [("(1 + tax_rate)", 13, 13, " / 100")],
    ),
]


def position_at(text: str, offset: int) -> dict[str, int]:
    before = text[:offset]
    line = before.count("\n")
    return {"line": line, "character": offset - (before.rfind("\n") + 1)}


class Server:
    def __init__(self, record: str | None) -> None:
        self.record_path = record
        self.docs: dict[str, dict[str, Any]] = {}
        # (uri, text) of each prediction made -> its id: the same text gets the same id.
        self.ids: dict[tuple[str, str], int] = {}

    def record(self, entry: dict[str, Any]) -> None:
        if not self.record_path:
            return
        with open(self.record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"t": round(time.time(), 3), **entry}) + "\n")

    def next_edit(self, params: dict[str, Any]) -> dict[str, Any]:
        uri = params["textDocument"]["uri"]
        version = params["textDocument"].get("version")
        doc = self.docs.get(uri)
        answer: list[dict[str, Any]] = []
        if doc is not None and (version is None or version == doc["version"]):
            text = doc["text"]
            for needs, edits in RULES:
                if all(n in text for n in needs):
                    key = (uri, text)
                    pid = self.ids.setdefault(key, len(self.ids) + 1)
                    command = {
                        "title": "Accept next edit",
                        "command": ACCEPT_COMMAND,
                        "arguments": [{"uri": uri, "id": pid}],
                    }
                    for anchor, start, end, new in edits:
                        at = text.index(anchor)
                        answer.append(
                            {
                                "text": new,
                                "textDocument": {"uri": uri, "version": doc["version"]},
                                "range": {
                                    "start": position_at(text, at + start),
                                    "end": position_at(text, at + end),
                                },
                                "command": command,
                            }
                        )
                    break
        self.record(
            {
                "method": "mmlsp/nextEdit",
                "version": version,
                "current": doc and doc["version"],
                "position": params.get("position"),
                "edits": [{"text": e["text"], "range": e["range"]} for e in answer],
                "id": answer[0]["command"]["arguments"][0]["id"] if answer else None,
            }
        )
        return {"edits": answer}

    def handle(self, message: dict[str, Any]) -> Any:
        method = message.get("method")
        params = message.get("params") or {}
        if method == "initialize":
            return {
                "capabilities": {
                    "textDocumentSync": {"openClose": True, "change": 1},
                    "executeCommandProvider": {"commands": [ACCEPT_COMMAND]},
                },
                "serverInfo": {"name": "fake-next-edit", "version": "0"},
            }
        if method == "textDocument/didOpen":
            doc = params["textDocument"]
            self.docs[doc["uri"]] = {"text": doc["text"], "version": doc.get("version")}
        elif method == "textDocument/didChange":
            doc = self.docs.setdefault(params["textDocument"]["uri"], {"text": "", "version": None})
            for change in params["contentChanges"]:
                doc["text"] = change["text"]  # full sync
            doc["version"] = params["textDocument"].get("version")
        elif method == "textDocument/didClose":
            self.docs.pop(params["textDocument"]["uri"], None)
        elif method == "mmlsp/nextEdit":
            return self.next_edit(params)
        elif method == "mmlsp/nextEditShown":
            self.record({"method": method, "params": params})
        elif method == "workspace/executeCommand":
            self.record({"method": method, "params": params})
            return None
        elif method == "mmlsp/status":
            return {"state": "ready", "model": "fake-next-edit", "device": "cpu", "version": "fake"}
        elif method == "shutdown":
            return None
        elif method == "exit":
            sys.exit(0)
        elif "id" in message and not method.startswith("$/"):
            raise LookupError(method)
        return None


def read_message(stream: Any) -> dict[str, Any] | None:
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        return None
    return json.loads(stream.read(length))


def write_message(stream: Any, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("utf-8")
    stream.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    stream.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record")
    args, _ = parser.parse_known_args()
    server = Server(args.record)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (message := read_message(stdin)) is not None:
        try:
            result = server.handle(message)
        except LookupError as error:
            if "id" in message:
                error_body = {"code": -32601, "message": f"unknown method {error}"}
                write_message(stdout, {"jsonrpc": "2.0", "id": message["id"], "error": error_body})
            continue
        if "id" in message and "method" in message:
            write_message(stdout, {"jsonrpc": "2.0", "id": message["id"], "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
