"""What the user sees while model work runs, end to end over stdio with the real server.

* Long actions show cancellable work-done progress with the text written so far, and
  a cancel (``$/cancelRequest`` or the progress's own cancel) stops the model: the
  backend sees its stream closed, not a reply run to its end.
* ``mmlsp/status`` counts the pauses in typing that ended with a suggestion (the
  shown rate) and why the others ended empty.
* Opening a document warms its prompt's KV cache in the background, so the first
  request reuses it.

The endless model is an OpenAI-compatible ``FakeServer`` in this process that
streams forever: a real model cannot be made to write without end on demand.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.llama_server import FakeRequest, FakeServer
from tests.lsp_helpers import inline, lsp_session, open_doc, status, wait_for_state

TEXT = (
    "def mean(values):\n"  # 0
    "    total = sum(values)\n"  # 1
    "    return total / len(values)\n"  # 2
)


class Endless:
    """A chat backend that writes prose forever, recording when its client hangs up."""

    def __init__(self) -> None:
        self.chunks = 0
        self.closed = threading.Event()

    def __call__(self, request: FakeRequest) -> None:
        request.start_stream()
        try:
            for _ in range(3000):  # 60 s at most, so a broken test cannot hang forever
                delta = {"role": "assistant", "content": "This code adds numbers. "}
                request.event({"object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": delta, "finish_reason": None}]})  # fmt: skip
                self.chunks += 1
                time.sleep(0.02)
            request.end_stream()
        except OSError:  # broken pipe / reset: mmlsp closed the stream
            self.closed.set()


async def until(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition never held")
        await asyncio.sleep(0.02)


def progress_values(client: Any) -> list[Any]:
    return [value for values in client.progress_reports.values() for value in values]


async def start_explain(client: Any, uri: str, msg_id: str) -> asyncio.Future:
    return asyncio.ensure_future(
        client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(
                command="mmlsp.explain", arguments=[uri, {"line": 0, "character": 5}]
            ),
            msg_id=msg_id,
        )
    )


@pytest.mark.parametrize("how", ["cancelRequest", "progressCancel"])
async def test_explain_shows_progress_and_a_cancel_stops_the_model(
    how: str, tmp_path: Path
) -> None:
    endless = Endless()
    with FakeServer(endless, models=("fake-model",)) as backend:
        url = backend.base_url + "/v1"
        flags = ["--backend", "openai", "--base-url", url, "--model", "fake-model"]
        flags += ["--log-level", "debug", "--log-file", str(tmp_path / "server.log")]
        async with lsp_session(flags, tmp_path / "cache") as client:
            assert (await wait_for_state(client))["state"] == "ready"
            uri = "file:///tmp/feedback/mean.py"
            open_doc(client, uri, TEXT)
            request = await start_explain(client, uri, f"explain-{how}")
            # The user sees the work begin, cancellable, then the text as it is written.
            await until(
                lambda: any(
                    isinstance(v, types.WorkDoneProgressReport)
                    and "adds numbers" in (v.message or "")
                    for v in progress_values(client)
                )
            )
            (token,) = [t for t in client.progress_reports if str(t).startswith("mmlsp-work-")]
            begin = client.progress_reports[token][0]
            assert isinstance(begin, types.WorkDoneProgressBegin)
            assert begin.title == "mmlsp: explaining the code" and begin.cancellable
            if how == "cancelRequest":
                client.protocol.notify(
                    types.CANCEL_REQUEST, types.CancelParams(id=f"explain-{how}")
                )
            else:
                client.protocol.notify(
                    types.WINDOW_WORK_DONE_PROGRESS_CANCEL,
                    types.WorkDoneProgressCancelParams(token=token),
                )
            with pytest.raises((JsonRpcException, asyncio.CancelledError)):
                await asyncio.wait_for(request, 20)
            # The model stopped: mmlsp hung up on the backend's stream at once.
            assert await asyncio.to_thread(endless.closed.wait, 30), "the stream was never closed"
            written = endless.chunks
            await asyncio.sleep(0.5)
            assert endless.chunks == written
            # The progress ended, and a cancel is no error popup.
            await until(
                lambda: isinstance(client.progress_reports[token][-1], types.WorkDoneProgressEnd)
            )
            assert not [m for m in client.messages if "explain" in m.message.lower()]
            current = await status(client)
            assert current["state"] == "ready" and current["in_flight"] == 0
            # Nothing is left behind in the server's request table.
            assert current["handling"] <= 1


async def test_status_counts_the_shown_rate_and_why_answers_were_empty(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    async with lsp_session(["--model", str(tiny_model_dir)], tmp_path / "cache") as client:
        assert (await wait_for_state(client))["state"] == "ready"
        uri = "file:///tmp/feedback/shown.py"
        text = "import os\nx = os.path\n\n\ndef f():\n    return "
        open_doc(client, uri, text)
        answers = []
        for line, character in ((1, 11), (5, 11), (3, 0)):
            result = await asyncio.wait_for(inline(client, uri, line, character), 60)
            answers.append(bool(result and result.items))
        completion = (await status(client))["completion"]._asdict()
        pauses = completion["pauses"]._asdict() if completion["pauses"] else {}
        shown, empty = pauses.get("shown", 0), pauses.get("empty", 0)
        assert (shown, empty) == (sum(answers), len(answers) - sum(answers))
        assert completion["shownRate"] == round(shown / len(answers), 3)
        reasons = completion["emptyReasons"]._asdict() if completion["emptyReasons"] else {}
        assert sum(reasons.values()) == empty
        recent = [r._asdict() for r in completion["recent"]][-3:]
        for record, answered in zip(recent, answers, strict=True):
            assert (record["reason"] is None) == answered


async def test_opening_a_document_warms_its_prompt(tiny_model_dir: Path, tmp_path: Path) -> None:
    async with lsp_session(["--model", str(tiny_model_dir)], tmp_path / "cache") as client:
        assert (await wait_for_state(client))["state"] == "ready"
        uri = "file:///tmp/feedback/warm.py"
        body = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(40))
        open_doc(client, uri, body + "def main():\n    ")

        def counts(current: dict) -> dict:
            completion = current["completion"]._asdict()
            return completion["counts"]._asdict() if completion["counts"] else {}

        for _ in range(300):
            current = await status(client)
            if counts(current).get("warmed_tokens", 0) > 0:
                break
            await asyncio.sleep(0.05)
        assert counts(current).get("warmups") == 1
        assert counts(current)["warmed_tokens"] > 200
        assert current["completion"].kvCacheEntries == 1
        # The first request reuses the warmed prompt rather than prefilling it all.
        lines = (body + "def main():\n    ").split("\n")
        await asyncio.wait_for(inline(client, uri, len(lines) - 1, 4), 60)
        record = (await status(client))["completion"].recent[-1]._asdict()
        assert record["reused"] > record["prefilled"], record
