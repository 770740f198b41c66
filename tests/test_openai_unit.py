"""The openai backend's parts: SSE parsing, retry policy, error messages, key hygiene,
template choice, concurrency, cancellation and the host's shutdown, against real
sockets (``tests.llama_server.FakeServer``), without a model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Collection
from pathlib import Path

import httpx
import pytest

from mmlsp.config import Settings, merge
from mmlsp.engine import Engine, EngineHost, EngineInfo, GenerationRequest, GenerationResult
from mmlsp.engine.base import ChatPrompt
from mmlsp.engine.host import LoadSpec
from mmlsp.engine.openai import (
    BackendError,
    OpenAIEngine,
    RemoteSpec,
    SSEDecoder,
    SSEEvent,
    backoff_s,
    http_error,
    parse_event,
    redact_url,
    server_root,
    should_retry,
    template_from_name,
)
from mmlsp.prompt.fim import ContextPiece, build_prompt, render_context
from tests.llama_server import FakeRequest, FakeServer, completion_chunk, refused_port

# -- SSE ------------------------------------------------------------------------------

STREAM = (
    ": keep-alive comment\r\n"
    'data: {"choices": [{"text": "def", "finish_reason": null}]}\r\n'
    "\r\n"
    "event: delta\n"
    "data: line one\n"
    "data: line two\n"
    "\n"
    'data: {"choices": [{"text": " f", "finish_reason": "length"}]}\r'
    "\r"
    "data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"choices": [{"text": "def", "finish_reason": null}]}'),
    SSEEvent("line one\nline two", "delta"),
    SSEEvent('{"choices": [{"text": " f", "finish_reason": "length"}]}'),
    SSEEvent("[DONE]"),
]


def test_sse_whole_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(STREAM) + decoder.flush() == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_sse_any_chunking_gives_the_same_events(size: int) -> None:
    decoder = SSEDecoder()
    events = []
    for at in range(0, len(STREAM), size):
        events += decoder.feed(STREAM[at : at + size])
    assert events + decoder.flush() == EXPECTED


def test_sse_every_split_point() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) + decoder.flush()
        assert events == EXPECTED, cut


def test_sse_last_event_without_blank_line_is_flushed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: a\ndata: b") == []
    assert decoder.flush() == [SSEEvent("a\nb")]


def test_parse_event_shapes() -> None:
    completion = parse_event('{"choices": [{"text": "x = 1", "finish_reason": null}]}')
    assert (completion.text, completion.finish_reason, completion.done) == ("x = 1", None, False)
    chat = parse_event('{"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]}')
    assert (chat.text, chat.finish_reason) == ("Hi", "stop")
    role_only = parse_event('{"choices": [{"delta": {"role": "assistant"}}]}')
    assert role_only.text == ""
    infill = parse_event('{"content": "", "stop": true, "stop_type": "limit"}')
    assert infill.done and infill.finish_reason == "length"
    assert parse_event("[DONE]").done
    usage = parse_event('{"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}')
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 4)
    assert parse_event('{"error": {"message": "out of memory"}}').error == "out of memory"
    assert parse_event("not json").error is not None


# -- retry policy and messages ------------------------------------------------------------


def test_retry_only_connection_errors_before_a_response() -> None:
    request = httpx.Request("POST", "http://x/v1/completions")
    assert should_retry(httpx.ConnectError("refused", request=request), False)
    assert should_retry(httpx.ConnectTimeout("slow", request=request), False)
    assert should_retry(httpx.RemoteProtocolError("stale keep-alive", request=request), False)
    # Once a response started, a failure is not retried (text was already streamed).
    assert not should_retry(httpx.RemoteProtocolError("cut", request=request), True)
    assert not should_retry(httpx.ReadTimeout("slow", request=request), False)
    response = httpx.Response(404, request=request)
    for status in (400, 401, 404, 422, 501):
        response = httpx.Response(status, request=request)
        assert not should_retry(
            httpx.HTTPStatusError("x", request=request, response=response), False
        )
        assert not should_retry(http_error(status, b"{}", "u", "m", ""), False)


def test_backoff_is_bounded_and_growing() -> None:
    delays = [backoff_s(n) for n in range(8)]
    assert delays == sorted(delays) and delays[0] > 0 and max(delays) <= 2.0


def test_http_error_messages() -> None:
    where = "http://h:1/v1/completions"
    auth = http_error(401, b'{"detail":"Invalid API key"}', where, "m", "MMLSP_KEY")
    assert auth.kind == "auth" and "MMLSP_KEY" in str(auth) and "401" in str(auth)
    assert "apiKeyEnv" in str(http_error(401, b"", where, "m", ""))
    model = http_error(
        404, b'{"error":{"message":"The model `m` does not exist."}}', where, "m", ""
    )
    assert model.kind == "model" and "'m'" in str(model)
    missing = http_error(404, b'{"detail":"Not Found"}', where, "m", "")
    assert missing.kind == "endpoint" and "baseUrl" in str(missing)
    infill = http_error(501, b"", "http://h:1/infill", "m", "")
    assert infill.kind == "unsupported" and "completionEndpoint" in str(infill)


def test_urls() -> None:
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("https://h/api") == "https://h/api"
    assert redact_url("https://user:pw@h:8443/v1?key=s3cret") == "https://h:8443/v1"


def test_template_from_name() -> None:
    assert template_from_name("Qwen/Qwen2.5-Coder-1.5B").name == "qwen"
    assert template_from_name("bigcode/starcoder2-3b").name == "starcoder"
    assert template_from_name("deepseek-ai/deepseek-coder-1.3b-base").name == "deepseek"
    assert template_from_name("my-finetune") is None


# -- settings ---------------------------------------------------------------------------


def test_backend_settings_are_validated_and_the_key_is_never_echoed() -> None:
    settings, errors = merge(
        Settings(),
        {"backend": "openai", "baseUrl": "http://gpu:8000/v1/", "apiKeyEnv": "MMLSP_TEAM_KEY"},
        user_level=True,  # the user's own flags and environment
    )
    assert errors == []
    assert (settings.backend, settings.base_url, settings.api_key_env) == (
        "openai",
        "http://gpu:8000/v1",
        "MMLSP_TEAM_KEY",
    )
    pasted = "sk-live-0123456789abcdef"
    settings, errors = merge(
        Settings(), {"apiKeyEnv": pasted, "baseUrl": "gpu:8000"}, user_level=True
    )
    assert len(errors) == 2 and all(pasted not in e and "gpu:8000" not in e for e in errors)
    assert settings.api_key_env == ""
    # Other environment variables (cloud credentials...) cannot be named.
    assert merge(Settings(), {"apiKeyEnv": "AWS_SECRET_ACCESS_KEY"}, user_level=True)[1]
    assert merge(Settings(), {"backend": "ollama"}, user_level=True)[1]
    # From the editor (settings a workspace may supply), none of them is taken, and
    # the refusal does not echo the value either.
    settings, errors = merge(Settings(), {"apiKeyEnv": pasted, "backend": "openai"})
    assert (settings.backend, settings.api_key_env) == ("local", "")
    assert len(errors) == 2 and all(pasted not in e for e in errors)


# -- against a fake server (real sockets) ----------------------------------------------------


def stream_text(*pieces: str) -> callable:
    def handle(request: FakeRequest) -> None:
        request.start_stream()
        for piece in pieces:
            request.event(completion_chunk(piece))
        request.event(completion_chunk("", "stop"))
        request.event("[DONE]")
        request.end_stream()

    return handle


def engine_for(server: FakeServer | str, **kw) -> OpenAIEngine:
    url = server if isinstance(server, str) else server.base_url + "/v1"
    return OpenAIEngine(RemoteSpec(url, kw.pop("model", "fake-model"), **kw))


def test_stream_and_stop_at_the_callers_stop() -> None:
    with FakeServer(stream_text("    return", " a", " + b\n", "print(1)")) as server:
        engine = engine_for(server)
        stop = lambda text: text.index("\n") if "\n" in text else None  # noqa: E731
        result = engine.generate(GenerationRequest("def f(a, b):\n", 16, stop_at=stop))
        assert result.text == "    return a + b" and result.finish_reason == "stop"
        (post,) = server.posts("/v1/completions")
        assert post.body["prompt"] == "def f(a, b):\n" and post.body["stream"] is True
        assert post.body["model"] == "fake-model" and post.body["temperature"] == 0
        assert "authorization" not in post.headers  # no apiKeyEnv: no key sent


def test_infill_sends_the_middle_start_as_prompt() -> None:
    """/infill gets the text before the middle as input_prefix and the middle's start
    (the cursor line's text, here on a snap line) as ``prompt`` (llama.cpp puts it
    after its FIM middle token), as build_prompt lays out a local FIM prompt;
    llama.cpp's own stream format comes back."""

    def handle(request: FakeRequest) -> None:
        request.start_stream()
        request.event({"content": "a + b", "stop": False})
        request.event({"content": "", "stop": True, "stop_type": "eos"})
        request.end_stream()

    with FakeServer(handle) as server:
        engine = engine_for(server, completion_endpoint="infill")
        template, _ = engine.choose_template("auto")
        prefix = "def f(a, b):\n    return "
        prompt = build_prompt(template, prefix, "\n\nprint(f(1, 2))\n", first_line=3)
        assert engine.generate(GenerationRequest(prompt, 16)).text == "a + b"
        (post,) = server.posts("/infill")
        assert post.body["input_prefix"] == "def f(a, b):\n"
        assert post.body["prompt"] == "    return "
        assert post.body["input_suffix"] == "\n\nprint(f(1, 2))\n"
        assert "input_extra" not in post.body


def test_infill_sends_other_files_as_input_extra_and_keeps_any_text_intact() -> None:
    """Cross-file context goes in llama.cpp's ``input_extra`` (labelled by the server in
    the model's repo format), not into the prefix; and code that contains the
    private-use characters the prompt's text is spelled with (Nerd Font icons in a
    statusline config) reaches the server unchanged."""

    def handle(request: FakeRequest) -> None:
        request.start_stream()
        request.event({"content": "", "stop": True, "stop_type": "eos"})
        request.end_stream()

    icons = "sep = '\ue000\ue001\ue002'\n"
    with FakeServer(handle) as server:
        engine = engine_for(server, completion_endpoint="infill")
        template, _ = engine.choose_template("auto")
        pieces = [ContextPiece("util.py", "def helper():\n    return 1\n")]
        context = render_context(template, pieces, "main.py")
        prompt = build_prompt(
            template,
            icons + "x = \ue002",
            "\ue001\nprint(x)\n",
            context=context,
            pieces=pieces,
            first_line=3,
        )
        engine.generate(GenerationRequest(prompt, 8))
        (post,) = server.posts("/infill")
        assert post.body["input_prefix"] == icons
        assert post.body["prompt"] == "x = \ue002"
        assert post.body["input_suffix"] == "\ue001\nprint(x)\n"
        assert post.body["input_extra"] == [
            {"filename": "util.py", "text": "def helper():\n    return 1\n"}
        ]


def test_chat_goes_to_chat_completions_with_the_messages() -> None:
    def handle(request: FakeRequest) -> None:
        request.start_stream()
        request.event({"choices": [{"delta": {"content": "It adds."}, "finish_reason": "stop"}]})
        request.event("[DONE]")
        request.end_stream()

    with FakeServer(handle) as server:
        engine = engine_for(server)
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "?"}]
        prompt = engine.render_chat(messages)
        assert isinstance(prompt, ChatPrompt) and "Be brief." in prompt
        assert engine.generate(GenerationRequest(prompt, 8)).text == "It adds."
        (post,) = server.posts("/v1/chat/completions")
        assert post.body["messages"] == messages


def test_dropped_stale_connection_is_retried_once() -> None:
    calls = []

    def handle(request: FakeRequest) -> None:
        calls.append(request.path)
        if len(calls) == 1:
            request.drop()  # before any response byte: like a stale keep-alive socket
            return
        stream_text("ok")(request)

    with FakeServer(handle) as server:
        result = engine_for(server).generate(GenerationRequest("x", 4))
        assert result.text == "ok"
        assert len(server.posts("/v1/completions")) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422, 501])
def test_http_errors_are_never_retried(status: int) -> None:
    with FakeServer(lambda r: r.json(status, {"error": {"message": "no"}})) as server:
        engine = engine_for(server)
        with pytest.raises(BackendError) as info:
            engine.generate(GenerationRequest("x", 4))
        assert f"HTTP {status}" in str(info.value)
        assert len(server.posts("/v1/completions")) == 1


def test_connection_refused_is_retried_with_backoff_then_fails_fast() -> None:
    engine = engine_for(f"http://127.0.0.1:{refused_port()}")
    assert any("cannot reach" in w for w in engine.warnings)

    waits = backoff_s(0) + backoff_s(1)  # what an attempt's two retries wait

    async def run() -> None:
        start = time.monotonic()
        with pytest.raises(BackendError) as first:
            await engine.agenerate(GenerationRequest("x", 4))
        assert first.value.kind == "unreachable" and first.value.first
        assert time.monotonic() - start >= waits
        start = time.monotonic()
        with pytest.raises(BackendError) as again:
            await engine.agenerate(GenerationRequest("x", 4))
        # No new attempt: quicker than an attempt's waits (a bound of 0.05 s, the
        # first wait alone, is tight on a loaded machine).
        assert not again.value.first and time.monotonic() - start < waits
        assert str(again.value) == str(first.value)

    asyncio.run(run())


def test_the_api_key_never_appears_in_errors_logs_or_status(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    key = "sk-test-DO-NOT-LEAK-0123456789"
    monkeypatch.setenv("MMLSP_TEST_KEY", key)

    def echo(request: FakeRequest) -> None:
        # A careless server that echoes the credentials it rejects.
        request.json(401, {"error": {"message": f"bad key {request.headers['authorization']}"}})

    caplog.set_level(logging.DEBUG)
    with FakeServer(echo) as server:
        settings = dataclasses.replace(
            Settings(),
            backend="openai",
            base_url=server.base_url,
            api_key_env="MMLSP_TEST_KEY",
            model="fake-model",
        )
        host = EngineHost()
        host.load(LoadSpec.from_settings(settings))
        status = host.wait_ready(30)
        assert status.state == "ready", status

        async def run() -> str:
            with pytest.raises(BackendError) as info:
                await host.generate(GenerationRequest("x", 4))
            return str(info.value)

        message = asyncio.run(run())
        host.shutdown()
        # The key was sent, as a bearer token...
        assert server.requests[0].headers["authorization"] == f"Bearer {key}"
        # ...and appears nowhere mmlsp writes.
        seen = [message, str(status.warning), repr(dataclasses.asdict(status))]
        seen += [r.getMessage() for r in caplog.records]
        seen += [str(settings.to_dict()), repr(LoadSpec.from_settings(settings))]
        assert "401" in message and "MMLSP_TEST_KEY" in message
        assert all(key not in text for text in seen)


def test_template_detected_from_a_vllm_style_tokenize_endpoint() -> None:
    special = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>"}

    def handle(request: FakeRequest) -> None:
        if request.path == "/tokenize" and "prompt" in request.body:
            text = request.body["prompt"]
            tokens = [1] if text in special else [7] * max(1, len(text))
            request.json(200, {"tokens": ([0] + tokens) if text else [0]})
        else:
            request.json(404, {"detail": "Not Found"})

    with FakeServer(handle, models=("my-coder",), paths=("/tokenize",)) as server:
        engine = engine_for(server, model="my-coder")
        template, source = engine.choose_template("auto")
        assert template is not None and template.name == "qwen"
        assert source == "detected from the server's tokenizer"
        assert "<|file_sep|>" not in template.stop  # not a token there: dropped


def test_template_falls_back_to_the_model_name_then_prefix_only() -> None:
    with FakeServer(lambda r: r.json(404, {"detail": "Not Found"}), models=("x",)) as server:
        guessed = engine_for(server, model="Qwen2.5-Coder-7B")
        template, source = guessed.choose_template("auto")
        assert template.name == "qwen" and "model name" in source
        plain, source = engine_for(server, model="x").choose_template("auto")
        assert plain is None and "prefix only" in source
        assert engine_for(server, model="x").choose_template("starcoder")[0].name == "starcoder"


def test_remote_requests_run_concurrently_up_to_the_limit() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def handle(request: FakeRequest) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        stream_text("ok")(request)

    with FakeServer(handle) as server:
        for limit in (2, 4):
            peak[0] = 0
            host = EngineHost()
            host.load(
                LoadSpec("fake-model", "cpu", "auto", "/nonexistent", backend="openai",
                         base_url=server.base_url, max_concurrency=limit)
            )  # fmt: skip
            assert host.wait_ready(30).state == "ready"

            async def burst(host: EngineHost = host) -> list[GenerationResult]:
                return await asyncio.gather(
                    *(host.generate(GenerationRequest(f"p{i}", 4)) for i in range(4))
                )

            results = asyncio.run(burst())
            host.shutdown()
            assert [r.text for r in results] == ["ok"] * 4
            assert peak[0] == limit


def test_cancelling_the_task_closes_the_stream_at_the_server() -> None:
    closed = threading.Event()
    sent = []

    def endless(request: FakeRequest) -> None:
        request.start_stream()
        try:
            for _ in range(200):
                request.event(completion_chunk("tok "))
                sent.append(time.monotonic())
                time.sleep(0.02)
        except OSError:  # broken pipe / reset: the client closed the stream
            closed.set()

    with FakeServer(endless) as server:
        engine = engine_for(server)

        async def run() -> float:
            seen = asyncio.Event()
            request = GenerationRequest("x", 500, stop_at=lambda t: seen.set())
            task = asyncio.ensure_future(engine.agenerate(request))
            await asyncio.wait_for(seen.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic()

        cancelled_at = asyncio.run(run())
        assert closed.wait(5), "the server never saw the stream close"
        # It stopped streaming right after the cancel, not after its 200 events (4 s).
        assert len(sent) < 100 and sent[-1] - cancelled_at < 1.0


def test_deadline_without_tokens_reports_a_slow_server_once() -> None:
    def hang(request: FakeRequest) -> None:
        time.sleep(3)  # never answers in time

    with FakeServer(hang) as server:
        engine = engine_for(server)

        async def run() -> list[BackendError]:
            errors = []
            for _ in range(2):
                request = GenerationRequest("x", 4, deadline=time.monotonic() + 0.3)
                with pytest.raises(BackendError) as info:
                    await engine.agenerate(request)
                errors.append(info.value)
            return errors

        first, second = asyncio.run(run())
        assert first.kind == "slow" and "slow" in str(first) and first.first
        assert not second.first


# -- the host's shutdown ---------------------------------------------------------------


class BlockingEngine(Engine):
    """Generates until cancelled, and records whether it was closed while generating."""

    def __init__(self) -> None:
        self.info = EngineInfo(model="blocking", device="cpu", dtype="none", backend="local")
        self.generating = threading.Event()
        self.closed_while_generating: bool | None = None
        self._busy = False

    def vocabulary(self) -> Collection[str]:
        return frozenset()

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self._busy = True
        self.generating.set()
        start = time.monotonic()
        while not request.cancel.is_set() and time.monotonic() - start < 20:
            time.sleep(0.01)
        time.sleep(0.05)  # the last token's work, after seeing the cancel
        self._busy = False
        return GenerationResult("", "cancelled", 1, 0, time.monotonic() - start)

    def close(self) -> None:
        self.closed_while_generating = self._busy


def test_shutdown_cancels_and_waits_for_the_running_generation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = BlockingEngine()
    host = EngineHost(factory=lambda *_args: engine)
    host.load(LoadSpec("blocking", "cpu", "none", str(tmp_path)))
    assert host.wait_ready(10).state == "ready"

    async def run() -> None:
        task = asyncio.ensure_future(host.generate(GenerationRequest("x", 10)))
        while not engine.generating.is_set():
            await asyncio.sleep(0.01)
        start = time.monotonic()
        host.shutdown()
        assert time.monotonic() - start < 2.0
        result = await task
        assert result.finish_reason == "cancelled"

    caplog.set_level(logging.WARNING)
    asyncio.run(run())
    assert engine.closed_while_generating is False
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_reload_waits_for_the_running_generation_before_closing(tmp_path: Path) -> None:
    engines = [BlockingEngine(), BlockingEngine()]
    made = iter(engines)
    host = EngineHost(factory=lambda *_args: next(made))
    host.load(LoadSpec("first", "cpu", "none", str(tmp_path)))
    assert host.wait_ready(10).state == "ready"

    async def run() -> None:
        task = asyncio.ensure_future(host.generate(GenerationRequest("x", 10)))
        while not engines[0].generating.is_set():
            await asyncio.sleep(0.01)
        host.load(LoadSpec("second", "cpu", "none", str(tmp_path)))  # a model switch
        result = await asyncio.wait_for(task, 10)
        assert result.finish_reason == "cancelled"
        for _ in range(500):
            if engines[0].closed_while_generating is not None:
                break
            await asyncio.sleep(0.01)

    asyncio.run(run())
    assert host.wait_ready(10).model == "second"
    assert engines[0].closed_while_generating is False
    host.shutdown()


def test_cli_flags_select_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmlsp.cli import build_parser, settings_from_args

    for name in ("MMLSP_BACKEND", "MMLSP_BASE_URL", "MMLSP_API_KEY_ENV"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(
        ["--backend", "openai", "--base-url", "http://gpu:8000/v1", "--api-key-env", "MMLSP_K"]
    )
    settings, errors = settings_from_args(args)
    assert errors == []
    spec = LoadSpec.from_settings(settings)
    assert (spec.backend, spec.base_url, spec.api_key_env) == (
        "openai",
        "http://gpu:8000/v1",
        "MMLSP_K",
    )
    # The local backend's spec carries none of it, so those settings cannot reload it.
    local = LoadSpec.from_settings(dataclasses.replace(settings, backend="local"))
    assert (local.base_url, local.api_key_env) == ("", "")
