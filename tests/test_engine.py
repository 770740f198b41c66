"""The in-process engine and its host, on the tiny real model."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mmlsp.engine import EngineError, EngineHost, GenerationRequest, LoadSpec
from mmlsp.engine.loading import resolve
from mmlsp.prompt.fim import build_prompt

PROMPT_TEXT = "import os\nx = os.path."


@pytest.fixture(scope="module")
def host(tiny_model_dir, tmp_path_factory):
    host = EngineHost()
    host.load(LoadSpec(str(tiny_model_dir), "cpu", "auto", str(tmp_path_factory.mktemp("c"))))
    status = host.wait_ready(120)
    assert status.state == "ready", status
    yield host
    host.shutdown()


def prompt(host) -> str:
    return build_prompt(host.template, PROMPT_TEXT, "\n")


def test_greedy_generation_is_deterministic(host):
    first = host.engine.generate(GenerationRequest(prompt(host), 20))
    second = host.engine.generate(GenerationRequest(prompt(host), 20))
    assert first.text == second.text
    assert first.generated_tokens <= 20
    assert first.prompt_tokens > 0


def test_cancellation_stops_within_one_token(host):
    cancel = threading.Event()
    seen: list[str] = []

    def cancel_after_first_token(text: str) -> None:
        seen.append(text)
        cancel.set()  # as if the user typed: checked again before the next token
        return None

    result = host.engine.generate(
        GenerationRequest(prompt(host), 200, stop_at=cancel_after_first_token, cancel=cancel)
    )
    assert result.finish_reason == "cancelled"
    assert result.generated_tokens <= 2
    assert len(seen) == 1


def test_stop_callback_cuts_the_text(host):
    full = host.engine.generate(GenerationRequest(prompt(host), 30))
    assert len(full.text) > 3
    result = host.engine.generate(
        GenerationRequest(prompt(host), 30, stop_at=lambda text: 2 if len(text) >= 3 else None)
    )
    assert result.finish_reason == "stop"
    assert result.text == full.text[:2]
    assert result.generated_tokens < full.generated_tokens


def test_expired_deadline_generates_nothing(host):
    result = host.engine.generate(GenerationRequest(prompt(host), 30, deadline=0.0))
    assert result.finish_reason == "deadline" and result.text == ""


async def test_cancelling_the_awaiting_task_cancels_generation(host):
    # The generation holds after its first token until released, so it is surely
    # running when the task is cancelled (random weights may emit EOS at any time).
    first_token, release = threading.Event(), threading.Event()

    def hold(_text: str) -> None:
        first_token.set()
        release.wait(10)

    request = GenerationRequest(prompt(host), 2000, stop_at=hold)
    task = asyncio.ensure_future(host.generate(request))
    assert await asyncio.to_thread(first_token.wait, 10)
    task.cancel()
    try:
        with pytest.raises(asyncio.CancelledError):
            await task
        assert request.cancel.is_set()
    finally:
        release.set()


def test_resolve_errors_are_clear(tmp_path):
    with pytest.raises(EngineError, match="GGUF file not found"):
        resolve(str(tmp_path / "x.gguf"))
    with pytest.raises(EngineError, match="no config.json"):
        resolve(str(tmp_path))
    with pytest.raises(EngineError, match="does not exist"):
        resolve("./models/nope")
    assert resolve("Qwen/Qwen2.5-Coder-1.5B").local is False


async def test_warm_up_runs_on_the_generation_thread(tmp_path):
    """CUDA graph trees are per thread: the compiled step must be recorded where it runs."""
    from tests.scripted_engine import ScriptedEngine, scripted_host

    class WarmRecordingEngine(ScriptedEngine):  # a test double: records threads only
        threads: list[str] = []

        def warm_up(self) -> None:
            self.threads.append(f"warm:{threading.current_thread().name}")

        def generate(self, request):
            self.threads.append(f"generate:{threading.current_thread().name}")
            return super().generate(request)

    engine = WarmRecordingEngine(["x"])
    host = scripted_host(engine, tmp_path)
    try:
        await host.generate(GenerationRequest("p", 4))
        (warm, generate) = engine.threads
        assert warm.startswith("warm:mmlsp-generate")
        assert warm.removeprefix("warm:") == generate.removeprefix("generate:")
    finally:
        host.shutdown()


def test_token_counts_are_remembered_and_exact(host):
    """Context fitting counts every window line per keystroke; a typed character
    should cost one new count (the cursor's line), each still the tokenizer's own."""
    from mmlsp.context.window import build_context

    engine = host.engine
    text = "import os\n" + "".join(f"value_{i} = os.path.join('a', 'b{i}')\n" for i in range(60))
    for line in text.splitlines(keepends=True):
        assert engine.count_tokens(line) == len(engine.tokenizer(line)["input_ids"])

    def context(typed: str):
        return build_context(
            text + typed,
            len(text) + len(typed),
            prefix_tokens=200,
            suffix_tokens=50,
            count=engine.count_tokens,
        )

    context("x")
    before = engine._count.cache_info()
    context("xy")
    after = engine._count.cache_info()
    assert after.misses - before.misses <= 2  # the cursor line, whole and fitted
    assert after.hits - before.hits >= 10
    assert after.maxsize is not None  # bounded
