"""The llama.cpp engine (GGUF on the CPU) on the tiny real model written as GGUF, and the
choice between it and torch.

Skipped where llama-cpp-python is not installed, except the choice itself, which is
pure logic.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from mmlsp.config import BUILTIN_MODEL, Settings
from mmlsp.engine import EngineHost, GenerationRequest, LoadSpec
from mmlsp.engine.factory import choose_engine, is_gguf
from mmlsp.prompt.fim import QWEN
from tests.tiny_model import CHAT_TEMPLATE, write_tiny_gguf

SOURCE = '''import os


def walk(root):
    """Yield every file below root."""
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            yield from walk(path)
        else:
            yield path


def count(root):
    total = 0
    for path in walk(root):
        total += 1
    return total
'''


# -- the choice (pure) ------------------------------------------------------------------


def test_gguf_on_the_cpu_runs_on_llama_cpp():
    for device, cuda in (("cpu", False), ("auto", False), ("cpu", True)):
        choice = choose_engine(BUILTIN_MODEL, device, cuda=cuda, llama_cpp=True)
        assert choice.kind == "llamacpp" and "llama.cpp" in choice.reason, (device, cuda)
        assert not choice.warning
    assert choose_engine("/m/x.GGUF", "cpu", cuda=False, llama_cpp=True).kind == "llamacpp"


def test_everything_else_runs_on_torch():
    cases = [
        (("org/model", "cpu"), {"cuda": False, "llama_cpp": True}, "not a GGUF"),
        (("/m/dir", "cpu"), {"cuda": False, "llama_cpp": True}, "not a GGUF"),
        ((BUILTIN_MODEL, "auto"), {"cuda": True, "llama_cpp": True}, "CUDA"),
        ((BUILTIN_MODEL, "cuda"), {"cuda": True, "llama_cpp": True}, "CUDA"),
        ((BUILTIN_MODEL, "cpu"), {"cuda": False, "llama_cpp": True, "dtype": "int8"}, "dtype"),
        (
            (BUILTIN_MODEL, "cpu"),
            {"cuda": False, "llama_cpp": True, "decode_mode": "static"},
            "decodeMode",
        ),
    ]
    for args, kwargs, why in cases:
        choice = choose_engine(*args, **kwargs)
        assert choice.kind == "torch" and why in choice.reason, (args, kwargs, choice)
        assert not choice.warning


def test_missing_llama_cpp_falls_back_to_torch_with_a_message():
    choice = choose_engine(BUILTIN_MODEL, "cpu", cuda=False, llama_cpp=False)
    assert choice.kind == "torch"
    assert "llama-cpp-python is not installed" in choice.warning
    assert "mmlsp[cpu]" in choice.warning
    assert is_gguf("builtin:smollm2-135m-instruct") and not is_gguf("Qwen/Qwen2.5-Coder")


# -- the engine on the tiny GGUF ----------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_gguf: Path):
    pytest.importorskip("llama_cpp")
    from mmlsp.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(str(tiny_gguf), reason="test", max_documents=2, threads=1)
    engine.warm_up()
    engine.set_stop_tokens(QWEN.stop)
    yield engine
    engine.close()


def fim(text: str, cursor: int) -> str:
    return QWEN.render(text[:cursor], text[cursor:])


def run(engine, prompt: str, key: str | None = None, n: int = 16, **kwargs):
    return engine.generate(GenerationRequest(prompt, n, cache_key=key, **kwargs))


def test_generates_deterministically_and_reports_itself(engine):
    prompt = fim(SOURCE, SOURCE.index("total += 1"))
    first, second = run(engine, prompt), run(engine, prompt)
    assert first.text == second.text and first.generated_tokens > 0
    # The confidence the acceptance gate reads: one log-probability per token shown.
    assert len(first.token_logprobs) == len(first.token_ends) > 0
    assert all(lp <= 0 for lp in first.token_logprobs)
    assert list(first.token_ends) == sorted(first.token_ends)
    assert first.token_ends[-1] == len(first.text)
    assert first.prompt_tokens == engine.count_tokens(prompt)
    assert engine.info.backend == "llamacpp" and engine.info.device == "cpu"
    assert engine.info.reason == "test"
    assert "<|fim_prefix|>" in engine.vocabulary()
    template, _source = engine.choose_template("auto")
    assert template is not None and template.name == "qwen"


def test_stop_cuts_the_text(engine):
    prompt = fim(SOURCE, SOURCE.index("total += 1"))
    full = run(engine, prompt, n=30)
    assert len(full.text) > 3, full
    cut = run(engine, prompt, n=30, stop_at=lambda text: 2 if len(text) >= 3 else None)
    assert cut.finish_reason == "stop" and cut.text == full.text[:2]
    assert cut.generated_tokens < full.generated_tokens


def test_cancel_mid_generation_stops_at_the_next_token(engine):
    cancel = threading.Event()
    seen: list[str] = []

    def cancel_after_two(text: str) -> None:
        seen.append(text)
        if len(seen) == 2:
            cancel.set()  # as if the user typed, from another thread's point of view

    result = run(engine, fim(SOURCE, 40), n=200, stop_at=cancel_after_two, cancel=cancel)
    if result.finish_reason == "eos":
        pytest.skip("random weights ended the text within two tokens")
    assert result.finish_reason == "cancelled"
    assert len(seen) == 2 and result.generated_tokens == 2


def test_deadline_ends_generation(engine):
    assert run(engine, fim(SOURCE, 40), deadline=0.0).finish_reason == "deadline"
    # A deadline that passes while decoding: what was generated by then is kept.
    ticks: list[str] = []

    def slow(text: str) -> None:
        ticks.append(text)
        time.sleep(0.05)

    result = run(engine, fim(SOURCE, 40), n=500, stop_at=slow, deadline=time.monotonic() + 0.2)
    if result.finish_reason != "eos":
        assert result.finish_reason == "deadline"
        assert 1 <= result.generated_tokens < 500 and result.text == ticks[-1]


def _edit(rng: random.Random, text: str, cursor: int) -> tuple[str, int]:
    roll = rng.random()
    if roll < 0.6:
        char = rng.choice("abcdefghij_ ()=.:\n")
        return text[:cursor] + char + text[cursor:], cursor + 1
    if roll < 0.8 and cursor > 0:
        return text[: cursor - 1] + text[cursor:], cursor - 1
    return text, rng.randrange(len(text))


def test_reuse_and_drafts_never_change_greedy_output(engine):
    """Random typing over two documents: each request with its document's sequence
    reused (and drafts from its last generation, and prompt lookup) gives exactly the
    text a fresh run gives."""
    rng = random.Random(7)
    docs = {"a": (SOURCE, SOURCE.index("total += 1")), "b": (SOURCE[::-1], 100)}
    reused = drafted = 0
    for step in range(24):
        key = "a" if step % 5 else "b"
        text, cursor = _edit(rng, *docs[key])
        docs[key] = (text, cursor)
        prompt = fim(text, cursor)
        fresh = run(engine, prompt)
        kept = run(engine, prompt + "", key, reuse_draft=4, prompt_lookup=3 if step % 2 else 0)
        assert kept.text == fresh.text, (step, kept, fresh)
        assert kept.finish_reason == fresh.finish_reason
        reused += kept.reused_tokens
        drafted += kept.draft_tokens
    assert reused > 0 and drafted > 0
    usage = engine.cache_usage()
    assert usage.entries == 2 and usage.nbytes > 0


def test_more_documents_than_sequences_evicts_the_oldest(engine):
    prompts = {key: fim(SOURCE, 50 + 10 * i) for i, key in enumerate("xyz")}
    expected = {key: run(engine, p).text for key, p in prompts.items()}
    for key, p in prompts.items():  # two sequences: x, then y, then z evicts x
        assert run(engine, p, key).text == expected[key]
    assert run(engine, prompts["z"], "z").reused_tokens > 0
    assert run(engine, prompts["x"], "x").reused_tokens == 0  # evicted
    engine.forget("x")
    assert run(engine, prompts["x"], "x").text == expected["x"]
    # Forgotten while a generation holds the engine: dropped when the next one starts,
    # and forget() itself does not wait.
    with engine._lock:
        started = time.monotonic()
        engine.forget("z")
        assert time.monotonic() - started < 0.5
    assert run(engine, prompts["x"], "x").reused_tokens > 0  # kept: x, z
    assert run(engine, prompts["z"], "z").reused_tokens == 0


def test_prompt_over_the_context_is_a_clear_error(engine):
    from mmlsp.engine.base import EngineError

    with pytest.raises(EngineError, match="per document"):
        run(engine, "x " * (engine.context_per_document + 10))


# -- chat through the GGUF's template ---------------------------------------------------


def test_chat_uses_the_gguf_chat_template(tiny_model_dir: Path, tmp_path: Path):
    pytest.importorskip("llama_cpp")
    from mmlsp.engine.llamacpp import LlamaCppEngine

    path = write_tiny_gguf(tiny_model_dir, tmp_path / "chat.gguf", chat_template=CHAT_TEMPLATE)
    engine = LlamaCppEngine(str(path), max_documents=1)
    try:
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Explain x = 1"},
        ]
        prompt = engine.render_chat(messages)
        assert prompt == (
            "<|repo_name|>system\nBe brief.<|endoftext|>\n<|repo_name|>user\nExplain x = 1"
            "<|endoftext|>\n<|repo_name|>assistant\n"
        )
        assert engine.chat_stop_tokens() == ("<|endoftext|>",)
        assert run(engine, prompt, n=8).prompt_tokens == len(engine.tokenize(prompt))
    finally:
        engine.close()


def test_without_a_chat_template_chat_is_plain_text(engine):
    prompt = engine.render_chat([{"role": "user", "content": "hi"}])
    assert prompt.startswith("### Instruction:\nhi") and engine.chat_stop_tokens() == ()


# -- through the host: the status says which engine runs and why -------------------------


def test_host_loads_a_gguf_on_the_cpu_with_llama_cpp(tiny_gguf: Path, tmp_path: Path):
    pytest.importorskip("llama_cpp")
    host = EngineHost()
    spec = LoadSpec.from_settings(
        Settings(model=str(tiny_gguf), device="cpu", cache_dir=str(tmp_path))
    )
    try:
        host.load(spec)
        status = host.wait_ready(60)
        assert status.state == "ready", status
        assert status.backend == "llamacpp" and status.device == "cpu"
        assert status.backend_reason and "llama.cpp" in status.backend_reason
        assert status.warning is None
        assert not (tmp_path / "converted").exists()  # no float32 conversion
        assert not host.chat_is_fast()
    finally:
        host.shutdown()


# -- the real server over LSP ----------------------------------------------------------


async def test_server_over_lsp_completes_on_llama_cpp(tiny_gguf: Path, tmp_path: Path):
    """The real server with a GGUF on the CPU: llama.cpp runs it, says so in the status,
    answers inline completions, and the second keystroke reuses the document's KV."""
    pytest.importorskip("llama_cpp")
    from tests.lsp_helpers import change_doc, inline, lsp_session, open_doc, status, wait_for_state

    options = {"model": str(tiny_gguf), "device": "cpu", "maxNewTokens": 8}
    async with lsp_session([], tmp_path, init_options=options) as client:
        ready = await wait_for_state(client)
        assert ready["state"] == "ready", ready
        assert ready["backend"] == "llamacpp" and "llama.cpp" in ready["backend_reason"]
        uri = "file:///tmp/llama_e2e.py"
        text = SOURCE[: SOURCE.index("total += 1")]
        open_doc(client, uri, text + "\n")
        lines = text.split("\n")
        await inline(client, uri, len(lines) - 1, len(lines[-1]))
        end = (len(lines) - 1, len(lines[-1]))
        change_doc(client, uri, 2, "t", end)
        await inline(client, uri, end[0], end[1] + 1)
        completion = (await status(client))["completion"]
        records = [r._asdict() for r in completion.recent]
        models = [r for r in records if r["outcome"] not in ("typeahead", "inflight")]
        assert models and models[-1]["reused"] > 0, records
