"""A small scripted LSP server over stdio, for the Neovim plugin's next-edit tests.

The real server with the tiny random-weight test model rarely proposes an edit, so the
plugin's drawing and keys are tested against this one: it speaks real LSP (JSON-RPC
with Content-Length headers), keeps each document's text and version (full sync), and
answers ``mmlsp/nextEdit`` from a script of rules, the first that matches the text:

    {"if": "tax)",            # the document contains this (optional)
     "unless": "1 + tax",     # and not this (optional)
     "delay_ms": 0,           # answer this late (other messages are read meanwhile)
     "version_offset": 0,     # answer for another version (-1: an outdated answer)
     "edits": [{"find": "sum(prices)", "replace": "sum(prices) * (1 + tax)"},
               {"after": "total([1, 2]", "insert": ", tax=0.2"},
               {"before": "return", "insert": "..."}]}

``find`` replaces the first occurrence, ``after`` / ``before`` insert next to it; the
range is in UTF-16 positions. No rule, or a missing anchor: ``edits: []``. Each answer
has a new id in its command's arguments. Everything the client sends is recorded, in
order, and returned by the request ``fake/log`` (and appended to ``--log`` as JSON
lines).

    python tests/fake_next_edit_server.py --script rules.json [--log events.jsonl]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from typing import Any

ACCEPT_COMMAND = "mmlsp.acceptNextEdit"


def utf16_position(text: str, offset: int) -> dict[str, int]:
    before = text[:offset]
    line = before.count("\n")
    start = before.rfind("\n") + 1
    character = len(before[start:].encode("utf-16-le")) // 2
    return {"line": line, "character": character}


class Server:
    def __init__(self, rules: list[dict[str, Any]], log_path: str | None) -> None:
        self.rules = rules
        self.log_path = log_path
        self.docs: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.ids = itertools.count(1)
        self.write_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.out = sys.stdout.buffer

    # -- transport ---------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        with self.write_lock:
            self.out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.out.flush()

    def read(self) -> dict[str, Any] | None:
        stdin = sys.stdin.buffer
        length = None
        while True:
            line = stdin.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length is None:
            return None
        return json.loads(stdin.read(length))

    def record(self, message: dict[str, Any]) -> None:
        event = {"t": time.time(), "method": message.get("method"), "params": message.get("params")}
        if "id" in message:
            event["id"] = message["id"]
        with self.state_lock:
            self.events.append(event)
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    # -- the script ----------------------------------------------------------------------
    def rule_for(self, text: str) -> dict[str, Any] | None:
        for rule in self.rules:
            if "if" in rule and rule["if"] not in text:
                continue
            if "unless" in rule and rule["unless"] in text:
                continue
            return rule
        return None

    def next_edit(self, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
        uri = params["textDocument"]["uri"]
        with self.state_lock:
            doc = dict(self.docs.get(uri) or {})
        if not doc or params["textDocument"].get("version") != doc["version"]:
            return {"edits": []}, 0.0
        text = doc["text"]
        rule = self.rule_for(text)
        if rule is None:
            return {"edits": []}, 0.0
        version = doc["version"] + rule.get("version_offset", 0)
        command = {
            "title": "Accept next edit",
            "command": ACCEPT_COMMAND,
            "arguments": [{"uri": uri, "id": next(self.ids)}],
        }
        edits = []
        for spec in rule["edits"]:
            anchor = spec.get("find") or spec.get("after") or spec.get("before")
            at = text.find(anchor)
            if at < 0:
                return {"edits": []}, 0.0
            if "find" in spec:
                start, end, new = at, at + len(anchor), spec["replace"]
            elif "after" in spec:
                start = end = at + len(anchor)
                new = spec["insert"]
            else:
                start = end = at
                new = spec["insert"]
            edits.append(
                {
                    "text": new,
                    "textDocument": {"uri": uri, "version": version},
                    "range": {
                        "start": utf16_position(text, start),
                        "end": utf16_position(text, end),
                    },
                    "command": command,
                }
            )
        edits.sort(key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]))
        return {"edits": edits}, rule.get("delay_ms", 0) / 1000

    # -- the protocol --------------------------------------------------------------------
    def handle(self, message: dict[str, Any]) -> bool:
        method, params, mid = message.get("method"), message.get("params") or {}, message.get("id")
        self.record(message)
        if method == "initialize":
            self.send(
                {
                    "id": mid,
                    "result": {
                        "capabilities": {
                            "textDocumentSync": 1,
                            "executeCommandProvider": {"commands": [ACCEPT_COMMAND]},
                        },
                        "serverInfo": {"name": "fake-next-edit"},
                    },
                }
            )
        elif method == "textDocument/didOpen":
            doc = params["textDocument"]
            with self.state_lock:
                self.docs[doc["uri"]] = {"text": doc["text"], "version": doc["version"]}
        elif method == "textDocument/didChange":
            uri = params["textDocument"]["uri"]
            with self.state_lock:
                doc = self.docs.setdefault(uri, {"text": "", "version": 0})
                for change in params["contentChanges"]:
                    doc["text"] = change["text"]  # full sync
                doc["version"] = params["textDocument"]["version"]
        elif method == "textDocument/didClose":
            with self.state_lock:
                self.docs.pop(params["textDocument"]["uri"], None)
        elif method == "mmlsp/nextEdit":
            result, delay = self.next_edit(params)
            if delay:
                threading.Timer(delay, self.send, [{"id": mid, "result": result}]).start()
            else:
                self.send({"id": mid, "result": result})
        elif method == "fake/log":
            with self.state_lock:
                events = list(self.events)
            self.send({"id": mid, "result": events})
        elif method == "fake/text":
            with self.state_lock:
                doc = self.docs.get(params["uri"]) or {}
            self.send({"id": mid, "result": doc})
        elif method == "textDocument/inlineCompletion":
            self.send({"id": mid, "result": {"items": []}})
        elif method in ("workspace/executeCommand", "shutdown"):
            self.send({"id": mid, "result": None})
        elif method == "exit":
            return False
        elif mid is not None and method is not None:
            self.send({"id": mid, "error": {"code": -32601, "message": f"no method {method}"}})
        return True

    def serve(self) -> None:
        while (message := self.read()) is not None:
            if not self.handle(message):
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", required=True, help="JSON file: the list of rules")
    parser.add_argument("--log", help="append every message received here (JSON lines)")
    args = parser.parse_args()
    with open(args.script, encoding="utf-8") as f:
        rules = json.load(f)
    Server(rules, args.log).serve()


if __name__ == "__main__":
    main()
