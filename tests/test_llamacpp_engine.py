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
from tests.test_kv_reuse import SOURCE
from tests.tiny_model import CHAT_TEMPLATE, write_tiny_gguf

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


# -- token healing ------------------------------------------------------------------------


def reference_healed(engine, prompt: str, heal: int, max_new_tokens: int) -> str:
    """Greedy decoding with the whole text run afresh every step (a scratch sequence, no
    reuse, no drafts), healed by hand with the allowed tokens found by scanning the
    vocabulary: what the engine's generation must equal."""
    import numpy as np

    from mmlsp.engine.healing import plan
    from mmlsp.engine.llamacpp import PREFILL_CHUNK, _Sequence

    ids = engine.tokenize(prompt)
    pieces = engine.token_texts().pieces
    rest = healed = b""
    if heal:
        healing = plan(ids, engine.token_texts(), prompt[-heal:].encode())
        assert healing is not None and healing.keep < len(ids)
        ids, rest = ids[: healing.keep], healing.text
        healed = rest
    scratch = _Sequence(engine.max_documents)
    generated: list[int] = []
    steps = 0
    while len(generated) - steps < max_new_tokens:
        engine._clear(scratch)
        text = ids + generated
        for at in range(0, len(text), PREFILL_CHUNK):
            engine._feed(scratch, text[at : at + PREFILL_CHUNK], 1)
        row = np.ctypeslib.as_array(
            engine._llama.llama_get_logits(engine._ctx.ctx), (1, engine.n_vocab)
        )[0].copy()
        if rest:
            allowed = [
                i
                for i, p in enumerate(pieces)
                if p and (p.startswith(rest) or (rest.startswith(p) and p != rest))
            ]
            token = max(allowed, key=lambda i: row[i])
            piece = pieces[token]
            assert piece is not None
            rest = b"" if piece.startswith(rest) else rest[len(piece) :]
            steps += 1
        else:
            token = int(row.argmax())
        if token in engine.eos_ids:
            break
        generated.append(token)
    engine._clear(scratch)
    text = engine.detokenize(generated)
    if not heal:
        return text
    healed_text = healed.decode()
    assert text.startswith(healed_text), (text, healed_text)
    return text[len(healed_text) :]


HEAL_PREFIX, HEAL_SUFFIX = "import os\n\ndef join(a, b):\n    retu", "\n\nprint(join)\n"


def healing_prompt(prefix: str, suffix: str = HEAL_SUFFIX) -> tuple[str, int]:
    """A FIM prompt that ends with the cursor's line (the middle), and its heal count."""
    from mmlsp.complete import heal_chars
    from mmlsp.prompt.fim import build_prompt

    prompt = build_prompt(QWEN, prefix, suffix)
    return prompt, heal_chars(prompt, prefix)


def test_token_texts_spell_what_llama_cpp_tokenizes(engine):
    texts = engine.token_texts()
    assert len(texts) == engine.n_vocab
    for text in ["def f(x):\n    return self.items[0]  # ok\n", "naïve = 'é'\n\tpass"]:
        ids = engine.tokenize(text, add_bos=False)
        assert b"".join(texts.pieces[i] or b"?" for i in ids) == text.encode("utf-8")
    assert texts.pieces[engine.special_ids["<|fim_middle|>"]] is None


@pytest.mark.parametrize("fim_prompt", [False, True])
def test_healed_generation_is_the_constrained_greedy_one(engine, fim_prompt):
    from mmlsp.complete import heal_chars
    from mmlsp.prompt.fim import build_prompt

    prompt = build_prompt(QWEN if fim_prompt else None, HEAL_PREFIX, HEAL_SUFFIX)
    heal = heal_chars(prompt, HEAL_PREFIX)
    assert heal == 4
    expected = reference_healed(engine, prompt, heal, 12)
    healed = run(engine, prompt, n=12, heal=heal)
    assert healed.text == expected
    assert healed.prompt_tokens < len(engine.tokenize(prompt))  # backed up over "retu"
    # The healed tokens are not the suggestion's: their ends are 0, and only the
    # tokens after them count against max_new_tokens.
    assert len(healed.token_logprobs) == len(healed.token_ends) == healed.generated_tokens
    assert healed.token_ends[-1] == len(healed.text)
    if healed.finish_reason == "length":
        assert healed.generated_tokens > 12
        assert healed.token_ends[0] == 0 or healed.generated_tokens == 13
    # The same with the document's sequence kept, twice (the second reuses it and
    # drafts from the last generation and the prompt).
    for _ in range(2):
        kept = run(engine, prompt, "heal", n=12, heal=heal, reuse_draft=4, prompt_lookup=3)
        assert kept.text == expected, kept
    assert kept.reused_tokens > 0
    # Without healing: the plain greedy text, as before.
    plain = run(engine, prompt, n=12)
    assert plain.text == reference_healed(engine, prompt, 0, 12)


def test_the_answer_starts_at_the_cursor(engine):
    prompt, heal = healing_prompt(HEAL_PREFIX)
    assert heal == 4
    seen: list[str] = []

    def stop_at(text: str) -> int | None:
        seen.append(text)
        return None

    result = run(engine, prompt, n=8, stop_at=stop_at, heal=4)
    # Every text the caller saw is the answer's start: none repeats the typed "retu".
    assert seen and all(result.text.startswith(text) for text in seen)
    assert result.text == reference_healed(engine, prompt, 4, 8)
    assert not result.text.startswith(("retu", " retu"))
    # The caller's stops never saw the tokens that spelled the healed text again, and
    # those tokens end at 0 (no part of the suggestion's confidence); they do not count
    # against max_new_tokens.
    spelled = result.token_ends.count(0)
    assert spelled >= 1 and result.token_ends[:spelled] == (0,) * spelled
    assert len(seen) == result.generated_tokens - spelled
    assert result.generated_tokens > 8 or result.finish_reason != "length"


def test_heal_zero_or_outside_a_word_is_unchanged(engine):
    inside, _heal = healing_prompt(HEAL_PREFIX)
    assert run(engine, inside, n=12, heal=0).text == reference_healed(engine, inside, 0, 12)
    outside = fim(SOURCE, SOURCE.index("total += 1"))  # after indentation: no word
    assert run(engine, outside, n=12, heal=0).text == run(engine, outside, n=12).text
    # A heal count over a prompt that ends with a special token backs up over nothing.
    ends_special = fim(SOURCE, 40)
    assert run(engine, ends_special, n=12, heal=3).text == run(engine, ends_special, n=12).text


def test_reuse_with_healing_equals_fresh(engine):
    """Typing a word one character at a time in one document: each healed request on
    the document's kept sequence (drafts on) gives the text a fresh healed run gives."""
    base = HEAL_PREFIX[: -len("retu")]
    reused = healed = 0
    for typed in ["r", "re", "ret", "retu", "retur", "return", "return a"]:
        prompt, heal = healing_prompt(base + typed)
        healed += heal > 0
        fresh = run(engine, prompt, n=10, heal=heal)
        kept = run(engine, prompt, "typing", n=10, heal=heal, reuse_draft=4, prompt_lookup=3)
        assert kept.text == fresh.text, (typed, kept, fresh)
        assert kept.finish_reason == fresh.finish_reason
        reused += kept.reused_tokens
    assert reused > 0 and healed == 7


def test_pipeline_heals_on_llama_cpp(engine):
    """The completion pipeline on the llama.cpp engine: a FIM prompt that ends mid-word
    is healed (the raw generation is the constrained greedy one, cut by the stops), and
    with tokenHealing off it is the plain greedy one."""
    import asyncio
    import dataclasses

    from mmlsp.complete import complete, heal_chars, prepare_prompt

    doc = (
        "import os\n\n\ndef size(path):\n    if os.path.exists(path):\n        retu\n    return 0\n"
    )
    offset = doc.index("retu") + 4
    host = EngineHost(factory=lambda *_args: engine)
    host.load(LoadSpec("loaded", "cpu", "auto", "unused"))
    assert host.wait_ready(60).state == "ready"
    settings = Settings(time_budget_ms=600_000)
    assert settings.token_healing
    ctx, prompt = prepare_prompt(doc, offset, settings, engine.count_tokens, host.template)
    heal = heal_chars(prompt, ctx.prefix)
    assert heal == 4
    healed = reference_healed(engine, prompt, heal, settings.max_new_tokens)
    unhealed = reference_healed(engine, prompt, 0, settings.max_new_tokens)
    assert healed != unhealed  # the checks below would not tell them apart otherwise
    on = asyncio.run(complete(doc, offset, settings, host, language="python"))
    assert on.result is not None and on.result.text and healed.startswith(on.result.text)
    off_settings = dataclasses.replace(settings, token_healing=False)
    off = asyncio.run(complete(doc, offset, off_settings, host, language="python"))
    assert off.result is not None and unhealed.startswith(off.result.text)
