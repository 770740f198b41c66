"""KV prefix reuse and prompt-lookup drafts never change greedy output (tiny real model)."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from mmlsp.engine import GenerationRequest
from mmlsp.engine.base import EngineError
from mmlsp.engine.kvcache import PrefixCache, common_prefix, seq_length
from mmlsp.engine.local import LocalEngine
from mmlsp.engine.lookup import accepted, continuation_draft, ngram_draft
from mmlsp.prompt.fim import QWEN

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


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    engine = LocalEngine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path_factory.mktemp("c"))
    engine.set_stop_tokens(QWEN.stop)
    yield engine
    engine.close()


def fim(text: str, cursor: int) -> str:
    return QWEN.render(text[:cursor], text[cursor:])


def run(engine, prompt: str, key: str | None, lookup: int = 0, n: int = 16, reuse_draft: int = 0):
    request = GenerationRequest(
        prompt, n, cache_key=key, prompt_lookup=lookup, reuse_draft=reuse_draft
    )
    return engine.generate(request)


def test_own_loop_matches_transformers_generate(engine):
    prompt = fim(SOURCE, SOURCE.index("total += 1"))
    inputs = engine.tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = engine.model.generate(
            **inputs, max_new_tokens=16, do_sample=False, eos_token_id=engine._eos_ids
        )
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    new = [t for t in new if t not in engine._eos_ids]
    expected = engine.tokenizer.decode(new, skip_special_tokens=True)
    assert run(engine, prompt, None).text == expected


def _random_edit(rng: random.Random, text: str, cursor: int) -> tuple[str, int]:
    roll = rng.random()
    if roll < 0.55:  # type a character
        char = rng.choice("abcdefghij_ ()=.:\n")
        return text[:cursor] + char + text[cursor:], cursor + 1
    if roll < 0.75 and cursor > 0:  # backspace
        return text[: cursor - 1] + text[cursor:], cursor - 1
    if roll < 0.9:  # jump somewhere else
        return text, rng.randrange(len(text) + 1)
    at = rng.randrange(len(text) + 1)  # edit elsewhere (a paste above or below)
    text = text[:at] + "x = 1\n" + text[at:]
    return text, cursor + 6 if at <= cursor else cursor


@pytest.mark.parametrize("reuse_draft", [0, 8])
@pytest.mark.parametrize("seed", range(3))
def test_reuse_gives_identical_greedy_output(engine, seed, reuse_draft):
    rng = random.Random(seed)
    text, cursor = SOURCE, SOURCE.index("    return total")
    engine.prefix_cache.clear()
    reused_any = False
    for _ in range(15):
        text, cursor = _random_edit(rng, text, cursor)
        prompt = fim(text, cursor)
        with_reuse = run(engine, prompt, f"doc{seed}", n=10, reuse_draft=reuse_draft)
        without = run(engine, prompt, None, n=10)
        assert with_reuse.text == without.text
        assert with_reuse.generated_tokens == without.generated_tokens
        assert with_reuse.finish_reason == without.finish_reason
        assert with_reuse.reused_tokens + with_reuse.prefilled_tokens == with_reuse.prompt_tokens
        assert without.reused_tokens == 0
        reused_any |= with_reuse.reused_tokens > 0
    assert reused_any


def test_follow_up_prefills_only_the_changed_tail(engine):
    engine.prefix_cache.clear()
    cursor = SOURCE.index("    return total")
    first = run(engine, fim(SOURCE, cursor), "tail")
    typed = SOURCE[:cursor] + " " + SOURCE[cursor:]
    second = run(engine, fim(typed, cursor + 1), "tail")
    assert first.reused_tokens == 0 and first.prefilled_tokens == first.prompt_tokens
    assert second.reused_tokens > 0
    assert second.prefilled_tokens < first.prefilled_tokens
    # The same prompt again: everything but the last token comes from the cache.
    again = run(engine, fim(typed, cursor + 1), "tail")
    assert again.prefilled_tokens == 1


@pytest.mark.parametrize("lookup", [2, 5])
def test_prompt_lookup_gives_identical_greedy_output(engine, lookup):
    repetitive = SOURCE + "\n\ndef count2(root):\n    total = 0\n    for path in walk("
    for cursor in (len(repetitive), SOURCE.index("path = os"), SOURCE.index("total = 0")):
        prompt = fim(repetitive, cursor)
        plain = run(engine, prompt, None, n=24)
        drafted = run(engine, prompt, None, lookup=lookup, n=24)
        assert drafted.text == plain.text
        assert drafted.generated_tokens == plain.generated_tokens
        assert drafted.accepted_draft_tokens <= drafted.draft_tokens


def test_reuse_drafts_verify_the_last_generation_at_once(engine):
    """Type the first token of a suggestion: the follow-up says the rest again, and
    reuse drafts verify it in a few forward passes instead of one per token."""
    tokenize = engine.tokenizer.encode
    checked = 0
    for cursor in range(40, len(SOURCE), 7):
        if checked == 3:
            break
        prompt = SOURCE[:cursor]  # a plain prompt: the cursor at its end
        first = run(engine, prompt, None, n=1).text
        typed = prompt + first
        # Only where typing that text gives the same tokens the model saw generating it.
        ids = tokenize(typed)
        if ids[:-1] != tokenize(prompt) or engine.tokenizer.decode(ids[-1:]) != first:
            continue
        engine.prefix_cache.clear()
        shown = run(engine, prompt, "doc", n=14)
        plain = run(engine, typed, None, n=12)
        drafted = run(engine, typed, "doc", n=12, reuse_draft=8)
        assert shown.text.startswith(first) and shown.generated_tokens == 14
        assert drafted.text == plain.text and drafted.generated_tokens == plain.generated_tokens
        assert plain.text == shown.text[len(first) :][: len(plain.text)]
        # Every draft token was right: after the prefill's token, the 11 others took
        # two forward passes (8 drafted + the model's next, then 1 + 1), not 11.
        assert drafted.draft_tokens == drafted.accepted_draft_tokens == 9
        assert drafted.generated_tokens - 1 - drafted.accepted_draft_tokens == 2
        checked += 1
    assert checked == 3


def test_reuse_drafts_off_and_without_reuse(engine):
    prompt = SOURCE[: SOURCE.index("total += 1")]
    engine.prefix_cache.clear()
    run(engine, prompt, "doc", n=12)
    again = run(engine, prompt + " ", "doc", n=12, reuse_draft=0)
    assert again.draft_tokens == 0  # off: decoded token by token
    run(engine, prompt, "doc", n=12)
    no_key = run(engine, prompt + " ", None, n=12, reuse_draft=8)
    assert no_key.draft_tokens == 0  # no cache key: nothing to draft from


def test_continuation_draft():
    previous = [7, 1, 2, 3, 4, 1, 2, 5]
    # Longest n-gram first, earliest match at or after ``start``.
    assert continuation_draft(previous, [9, 1, 2], 3) == ([3, 4, 1], 3)
    assert continuation_draft(previous, [4, 1, 2], 3) == ([5], 7)
    assert continuation_draft(previous, [9, 9, 2], 2, start=3) == ([5], 7)
    assert continuation_draft(previous, [9, 9, 5], 2) == ([], 0)  # nothing follows
    assert continuation_draft(previous, [8], 2, start=4) == ([], 4)
    assert continuation_draft(previous, [1], 0) == ([], 0)
    assert continuation_draft([], [1], 4) == ([], 0)


def test_prefix_cache_hands_on_the_tokens_it_drops(engine):
    cache = PrefixCache()
    prompt = engine.tokenizer.encode(SOURCE)
    half = len(prompt) // 2
    with torch.inference_mode():
        _, kv = engine.forward(prompt, engine.fresh_cache(), 1)
    cache.put("doc", prompt, kv)
    reuse = cache.take("doc", [*prompt[:half], -1])
    assert reuse.reused == half and reuse.previous == prompt[half:]
    cache.put("doc", prompt[:half], reuse.cache)
    assert cache.take("doc", [*prompt[:half], -1]).previous == []


@pytest.mark.parametrize("reuse_draft", [0, 4])
def test_prompt_lookup_with_reuse_and_stops(engine, reuse_draft):
    prompt = fim(SOURCE, SOURCE.index("total += 1"))
    full = run(engine, prompt, None, n=24)
    assert len(full.text) > 3

    def stop(text: str) -> int | None:
        return 3 if len(text) >= 4 else None

    for lookup in (0, 4):
        request = GenerationRequest(
            prompt, 24, stop_at=stop, cache_key="s", prompt_lookup=lookup, reuse_draft=reuse_draft
        )
        result = engine.generate(request)
        assert result.finish_reason == "stop" and result.text == full.text[:3]


def test_cancel_mid_decode_still_keeps_a_consistent_cache(engine):
    engine.prefix_cache.clear()
    cancel = threading.Event()

    def cancel_now(_text: str) -> None:
        cancel.set()

    prompt = fim(SOURCE, SOURCE.index("total += 1"))
    result = engine.generate(
        GenerationRequest(prompt, 50, stop_at=cancel_now, cancel=cancel, cache_key="c")
    )
    assert result.finish_reason == "cancelled" and result.generated_tokens == 1
    again = run(engine, prompt, "c")
    assert again.prefilled_tokens == 1
    assert again.text == run(engine, prompt, None).text


def test_prefix_cache_is_bounded(engine):
    cache = PrefixCache(max_entries=2)
    engine.prefix_cache = cache
    try:
        for i in range(5):
            run(engine, fim(SOURCE, 10 * i), f"doc{i}", n=2)
        assert len(cache) == 2
        cache.max_bytes = 1
        run(engine, fim(SOURCE, 5), "doc9", n=2)
        assert len(cache) == 0
    finally:
        engine.prefix_cache = PrefixCache()


def test_common_prefix():
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    long = list(range(1000))
    assert common_prefix(long, long) == 1000
    assert common_prefix(long, [*long[:700], -1]) == 700
    assert common_prefix(long[:300], long) == 300


def test_ngram_draft():
    assert ngram_draft([1, 2, 3, 9, 1, 2], 3) == [3, 9, 1]
    assert ngram_draft([5, 6, 7, 5, 6, 8, 5, 6], 2) == [8, 5]  # latest match wins
    assert ngram_draft([1, 2, 3], 2) == []
    assert ngram_draft([4, 4], 3) == [4]
    assert ngram_draft([1, 2, 1], 0) == []
    assert accepted([1, 2, 3], [1, 2, 4, 5]) == 2
    assert accepted([], [7]) == 0


# -- decode modes: a static cache (and a compiled decode step) give the same output ----


def _engine(tiny_model_dir, tmp_path_factory, mode: str, cache_dir=None) -> LocalEngine:
    engine = LocalEngine(
        str(tiny_model_dir),
        device="cpu",
        cache_dir=cache_dir or tmp_path_factory.mktemp("c"),
        decode_mode=mode,
    )
    engine.set_stop_tokens(QWEN.stop)
    return engine


@pytest.fixture(scope="module")
def static_engine(tiny_model_dir, tmp_path_factory):
    engine = _engine(tiny_model_dir, tmp_path_factory, "static")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def compiled_engine(tiny_model_dir, tmp_path_factory):
    # The CPU's: the decode step compiled by inductor with dynamic shapes, over the
    # documents' dynamic caches.
    engine = _engine(tiny_model_dir, tmp_path_factory, "compiled")
    engine.warm_up()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def static_compiled_engine(tiny_model_dir, tmp_path_factory):
    # The GPU's layout (one static cache, every step the same shapes), compiled here by
    # inductor instead of into CUDA graphs.
    import mmlsp.engine.local as local

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local, "compiled_on_static_cache", lambda _device: True)
        engine = _engine(tiny_model_dir, tmp_path_factory, "compiled")
    engine.warm_up()
    yield engine
    engine.close()


def _same_as_dynamic(
    engine, other, seed: int, steps: int, lookup: int = 0, reuse_draft: int = 0
) -> int:
    """Replay random edits on both engines (with reuse); return the tokens reused."""
    rng = random.Random(seed)
    text, cursor = SOURCE, SOURCE.index("    return total")
    reused = 0
    for _ in range(steps):
        text, cursor = _random_edit(rng, text, cursor)
        prompt = fim(text, cursor)
        got = run(other, prompt, "doc", lookup=lookup, n=12, reuse_draft=reuse_draft)
        want = run(engine, prompt, None, n=12)
        assert (got.text, got.generated_tokens, got.finish_reason) == (
            want.text,
            want.generated_tokens,
            want.finish_reason,
        )
        assert got.reused_tokens + got.prefilled_tokens == got.prompt_tokens
        reused += got.reused_tokens
    return reused


@pytest.mark.parametrize(("seed", "lookup", "reuse_draft"), [(0, 0, 0), (1, 0, 8), (2, 3, 8)])
def test_static_cache_gives_identical_greedy_output(
    engine, static_engine, seed, lookup, reuse_draft
):
    assert static_engine.info.decode == "static"
    assert _same_as_dynamic(engine, static_engine, seed, 12, lookup, reuse_draft) > 0


def test_static_cache_is_one_cache_reused_across_documents(static_engine):
    prompt = fim(SOURCE, SOURCE.index("total += 1"))
    first = run(static_engine, prompt, "a")
    # Another document with the same text: the engine's one static cache still holds it.
    second = run(static_engine, prompt, "b")
    assert second.prefilled_tokens == 1 and second.text == first.text
    assert len(static_engine.prefix_cache) == 1


def test_prompt_longer_than_the_static_cache_decodes_on_a_dynamic_one(
    engine, tiny_model_dir, tmp_path_factory, monkeypatch
):
    import mmlsp.engine.local as local

    monkeypatch.setattr(local, "STATIC_CACHE_TOKENS", 64)
    small = _engine(tiny_model_dir, tmp_path_factory, "static")
    try:
        prompt = fim(SOURCE, SOURCE.index("total += 1"))
        long = run(small, prompt, "doc")
        assert long.prompt_tokens > 64 and long.text == run(engine, prompt, None).text
        short = run(small, "def f(x):\n    return", "doc", n=4)
        assert short.text == run(engine, "def f(x):\n    return", None, n=4).text
    finally:
        small.close()


def test_static_compiled_decode_step_gives_identical_greedy_output(engine, static_compiled_engine):
    compiled = static_compiled_engine
    assert compiled.info.decode == "compiled"  # compiled, not fallen back to eager
    assert compiled._static is not None
    assert _same_as_dynamic(engine, compiled, 3, 8) > 0
    assert _same_as_dynamic(engine, compiled, 4, 4, lookup=3, reuse_draft=8) >= 0


def test_cpu_compiled_step_decodes_every_dynamic_cache_with_one_graph(engine, compiled_engine):
    """On the CPU, "compiled" keeps per-document dynamic caches (prefix reuse, any
    length) and one graph with symbolic lengths: no recompiling as prompts change."""
    from torch._dynamo.utils import counters
    from transformers import DynamicCache

    assert compiled_engine.info.decode == "compiled" and compiled_engine._static is None
    step, caches, lengths = compiled_engine._decode_step, [], set()

    def counting_step(**kwargs):  # the real compiled step, with its caches noted
        cache = kwargs[compiled_engine._cache_name]  # `cache` where transformers has it
        caches.append(cache)
        lengths.add(seq_length(cache))
        return step(**kwargs)

    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0  # the warm-up compiled (counted where this test looks)
    compiled_engine._decode_step = counting_step
    try:
        assert _same_as_dynamic(engine, compiled_engine, 3, 8) > 0
        assert _same_as_dynamic(engine, compiled_engine, 4, 4, lookup=3, reuse_draft=8) >= 0
    finally:
        compiled_engine._decode_step = step
    assert len(caches) > 20 and all(type(cache) is DynamicCache for cache in caches)
    assert len(lengths) > 10  # reused caches of many lengths, in one graph
    assert counters["stats"]["unique_graphs"] == graphs  # warm-up's graph served them all


def test_decode_mode_choice():
    from transformers import Qwen2Config

    from mmlsp.engine.base import EngineError
    from mmlsp.engine.local import pick_decode_mode

    full = Qwen2Config(num_hidden_layers=2)
    sliding = Qwen2Config(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"])
    assert pick_decode_mode("auto", "cpu", full) == "dynamic"
    assert pick_decode_mode("auto", "cuda", full) == "compiled"
    assert pick_decode_mode("auto", "cuda", sliding) == "dynamic"
    assert pick_decode_mode("static", "cpu", sliding) == "dynamic"
    assert pick_decode_mode("compiled", "cpu", full) == "compiled"
    # On the CPU the compiled step runs over dynamic caches, which sliding layers allow.
    assert pick_decode_mode("compiled", "cpu", sliding) == "compiled"
    assert pick_decode_mode("compiled", "cuda", sliding) == "dynamic"
    recurrent = SimpleNamespace(layer_types=["linear_attention", "full_attention"])
    assert pick_decode_mode("compiled", "cpu", recurrent) == "dynamic"
    with pytest.raises(EngineError):
        pick_decode_mode("graphs", "cpu", full)


@pytest.mark.parametrize(("kind", "eager"), [("static_engine", "static"), ("engine", "dynamic")])
def test_a_failing_compiled_step_falls_back_to_eager_decoding(engine, request, kind, eager):
    def broken_step(**_kwargs):
        raise RuntimeError("graph capture failed")

    prompt = fim(SOURCE, SOURCE.index("total += 1"))
    want = run(engine, prompt, None).text
    other = request.getfixturevalue(kind)
    other._decode_step = broken_step  # as if compiled; fails like a bad graph
    other.info = replace(other.info, decode="compiled")
    try:
        with pytest.raises(EngineError, match="compiled decode step failed"):
            run(other, prompt, "doc")
        assert other._decode_step is None and other.info.decode == eager
        # The next request decodes eagerly, from a cache that was not trusted blindly.
        assert run(other, prompt, "doc").text == want
    finally:
        other._decode_step = None
        other.info = replace(other.info, decode=eager)


def test_dtype_choice():
    from mmlsp.engine.local import pick_dtype

    assert pick_dtype("cpu") is torch.float32  # exact reuse on the CPU by default
    assert pick_dtype("cpu", "bfloat16") is torch.bfloat16
    assert pick_dtype("cuda", "float32") is torch.float32
    assert pick_dtype("cpu", "int8") is torch.bfloat16  # int8 weights, bf16 arithmetic
    with pytest.raises(EngineError, match="unknown dtype"):
        pick_dtype("cpu", "int4")
    with pytest.raises(EngineError, match="'int8' is for the CPU"):
        pick_dtype("cuda", "int8")


def test_int8_engine_quantizes_on_the_generating_thread_and_reuse_keeps_output(
    tiny_model_dir, tmp_path
):
    from mmlsp.engine.quantize import Int8Linear

    engine = LocalEngine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path, dtype="int8")
    try:
        engine.set_stop_tokens(QWEN.stop)
        assert engine.info.dtype == "int8"
        linears = sum(isinstance(m, torch.nn.Linear) for m in engine.model.modules())
        # Not on the loading thread: warm_up (the host runs it on the generation thread).
        assert not any(isinstance(m, Int8Linear) for m in engine.model.modules())
        engine.warm_up()
        assert sum(isinstance(m, Int8Linear) for m in engine.model.modules()) == linears
        for marker in ("total += 1", "    return total", "yield path"):
            cursor = SOURCE.index(marker)
            typed = SOURCE[:cursor] + "x" + SOURCE[cursor:]
            run(engine, fim(SOURCE, cursor), "doc", n=12)
            reused = run(engine, fim(typed, cursor + 1), "doc", n=12)
            assert reused.reused_tokens > 0 and reused.generated_tokens > 0
            assert reused.text == run(engine, fim(typed, cursor + 1), None, n=12).text
    finally:
        engine.close()


def test_int8_weights_compile_into_the_cpu_decode_step(tiny_model_dir, tmp_path):
    """int8 layers (the packed kernel) go through inductor too, not back to eager."""
    engine = LocalEngine(
        str(tiny_model_dir), device="cpu", cache_dir=tmp_path, dtype="int8", decode_mode="compiled"
    )
    try:
        engine.set_stop_tokens(QWEN.stop)
        engine.warm_up()  # quantizes, then compiles the quantized step
        assert (engine.info.dtype, engine.info.decode) == ("int8", "compiled")
        step, steps = engine._decode_step, []
        engine._decode_step = lambda **kwargs: steps.append(1) or step(**kwargs)
        cursor = SOURCE.index("total += 1")
        typed = SOURCE[:cursor] + "x" + SOURCE[cursor:]
        run(engine, fim(SOURCE, cursor), "doc", n=12)
        reused = run(engine, fim(typed, cursor + 1), "doc", n=12)
        assert reused.reused_tokens > 0 and reused.generated_tokens > 1 and steps
        assert engine.info.decode == "compiled"  # no step failed and fell back
    finally:
        engine.close()


def test_bfloat16_engine_on_the_cpu_reuses_its_cache(tiny_model_dir, tmp_path):
    engine = LocalEngine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path, dtype="bfloat16")
    try:
        assert engine.info.dtype == "bfloat16"
        assert next(engine.model.parameters()).dtype is torch.bfloat16
        cursor = SOURCE.index("    return total")
        first = run(engine, fim(SOURCE, cursor), "doc")
        typed = SOURCE[:cursor] + "x" + SOURCE[cursor:]
        second = run(engine, fim(typed, cursor + 1), "doc")
        assert first.generated_tokens > 0 and second.generated_tokens > 0
        assert second.reused_tokens > 0
        assert second.reused_tokens + second.prefilled_tokens == second.prompt_tokens
    finally:
        engine.close()


def test_cpu_compiled_step_warms_up_both_sides_of_a_sliding_window(tiny_model_dir, tmp_path):
    """Sliding-window masks branch where the cache passes the window; warm-up compiles
    both graphs, so no prompt of any length compiles again (Gemma-3 did, for 0.7 s)."""
    import shutil

    from torch._dynamo.utils import counters
    from transformers import AutoConfig, Gemma3ForCausalLM, Gemma3TextConfig

    from mmlsp.engine.local import sliding_window
    from tests.tiny_model import TINY_SHAPE

    model_dir = tmp_path / "sliding"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "model.safetensors").unlink()
    tiny = AutoConfig.from_pretrained(tiny_model_dir)  # the tokenizer's ids, as saved
    config = Gemma3TextConfig(
        vocab_size=tiny.vocab_size,
        **TINY_SHAPE,
        head_dim=16,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        eos_token_id=tiny.eos_token_id,
        bos_token_id=tiny.bos_token_id,
        pad_token_id=tiny.pad_token_id,
    )
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).eval().save_pretrained(model_dir)
    compiled = _engine(model_dir, None, "compiled", cache_dir=tmp_path / "c")
    try:
        assert sliding_window(compiled.model.config) == 64
        compiled.warm_up()
        assert compiled.info.decode == "compiled"
        graphs = counters["stats"]["unique_graphs"]
        for length in (4, 12, 40, 200):  # caches shorter and longer than the window
            prompt = fim(SOURCE[: length * 4], length * 2)
            run(compiled, prompt, "doc", n=6)
            run(compiled, prompt[:-1], "doc", n=6)  # a follow-up on the kept cache
        assert counters["stats"]["unique_graphs"] == graphs
    finally:
        compiled.close()


def test_warm_up_runs_the_model_once_and_keeps_nothing(engine):
    """The first user request should not page in weights or set up kernels."""
    fed, forward = [], engine.forward

    def noting_forward(tokens, *args, **kwargs):  # the real forward, its tokens noted
        fed.append(len(tokens))
        return forward(tokens, *args, **kwargs)

    kept = len(engine.prefix_cache)
    engine.forward = noting_forward
    try:
        engine.warm_up()
    finally:
        del engine.forward
    assert fed and len(engine.prefix_cache) == kept
