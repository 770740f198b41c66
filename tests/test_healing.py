"""Token healing: the prefix constraint over a vocabulary, the plan that backs a prompt
up, the strip, and the in-process engine and pipeline with the tiny real model
(greedy: healed output checked against a plain reference decode, unhealed output
unchanged)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from mmlsp.complete import complete, heal_chars, prepare_prompt
from mmlsp.config import Settings
from mmlsp.engine import EngineHost, GenerationRequest, LoadSpec
from mmlsp.engine.healing import (
    Constraint,
    Healing,
    TokenTexts,
    best_allowed,
    heal,
    partial_word,
    plan,
    token_texts,
)
from mmlsp.prompt.fim import QWEN, build_prompt

# A fake vocabulary for the pure parts: id -> bytes (None: a special token).
FAKE = [None, b"    ", b"ret", b"u", b"return", b"re", b"r", b" ret", b"x", b"turn", b"urn", b"\n"]
FAKE_IDS = {piece: index for index, piece in enumerate(FAKE) if piece}


def fake_texts() -> TokenTexts:
    return TokenTexts(FAKE)


def ids_of(*pieces: bytes) -> list[int]:
    return [FAKE_IDS[p] for p in pieces]


def pieces_of(ids) -> set[bytes]:
    return {FAKE[int(i)] for i in ids}  # type: ignore[misc]


# -- the pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "chars"),
    [
        ("    retu", 4),
        ("x = self.ite", 3),
        ("f(a_b1", 4),
        ("x = ", 0),
        ("foo(", 0),
        ("self.", 0),
        ("", 0),
        ("naïve_na", 8),
    ],
)
def test_partial_word_is_the_word_the_cursor_is_in(text, chars):
    assert partial_word(text) == chars


def test_allowed_tokens_extend_the_text_or_are_a_start_of_it():
    texts = fake_texts()
    assert pieces_of(texts.allowed(b"retu")) == {b"r", b"re", b"ret", b"return"}
    assert pieces_of(texts.allowed(b"u")) == {b"u", b"urn"}
    # A token that is the whole text is allowed; one that only shares a start is not.
    assert pieces_of(texts.allowed(b"re")) == {b"r", b"re", b"ret", b"return"}
    assert pieces_of(texts.allowed(b" re")) == {b" ret"}
    assert len(texts.allowed(b"zz")) == 0
    # Special tokens are never allowed, and their ids never come back.
    assert 0 not in set(texts.allowed(b"r").tolist())


def test_extending_is_exact_at_byte_edges():
    texts = TokenTexts([b"a\xff", b"a\xff\xff", b"b", b"\xff", b"\xff\x00"])
    assert sorted(texts.extending(b"a\xff").tolist()) == [0, 1]
    assert sorted(texts.extending(b"\xff").tolist()) == [3, 4]


def test_plan_backs_up_over_the_tokens_the_word_ends_in():
    texts = fake_texts()
    prompt = ids_of(b"    ", b"ret", b"u")
    assert plan(prompt, texts, b"retu") == Healing(1, b"retu")
    # The first backed-up token may start before the word (its space).
    assert plan(ids_of(b"x", b" ret", b"u"), texts, b"retu") == Healing(1, b" retu")
    # Only the last token when the word is one token's end.
    assert plan(ids_of(b"x", b"ret"), texts, b"t") == Healing(1, b"ret")
    # At most max_tokens, from the end.
    assert plan(prompt, texts, b"retu", max_tokens=1) == Healing(2, b"u")


def test_plan_never_backs_over_special_tokens_nor_a_mismatch():
    texts = fake_texts()
    assert plan([0], texts, b"x") is None  # the prompt ends with a special token
    assert plan([0, *ids_of(b"u")], texts, b"retu") == Healing(1, b"u")
    # Tokens that do not spell the prompt's end (a normalizing tokenizer): no healing.
    assert plan(ids_of(b"ret", b"x"), texts, b"retu") is None
    assert plan([], texts, b"x") is None


def test_constraint_heals_over_several_tokens():
    texts = fake_texts()
    constraint = Constraint(texts, b"retu")
    assert not constraint.done
    constraint.advance(FAKE_IDS[b"re"])  # a start of it: "tu" still to spell
    assert constraint.rest == b"tu"
    assert pieces_of(constraint.allowed()) == {b"turn"}
    constraint.advance(FAKE_IDS[b"turn"])
    assert constraint.done and constraint.steps == 2
    assert constraint.visible("return x") == "rn x"
    with pytest.raises(ValueError):
        Constraint(texts, b"retu").advance(FAKE_IDS[b"x"])


def test_heal_and_best_allowed_are_an_engines_whole_use():
    import numpy as np

    texts = fake_texts()
    ids = ids_of(b"    ", b"ret", b"u")
    kept, constraint = heal(ids, texts, "    retu", 4)
    assert kept == ids[:1] and constraint is not None and constraint.text == b"retu"
    assert heal(ids, texts, "    retu", 0) == (ids, None)
    assert heal(ids, None, "    retu", 4) == (ids, None)
    assert heal(ids, texts, "x\ud800", 1) == (ids, None)  # not encodable: left alone
    # The best allowed token, though "x" has the higher logit.
    row = np.zeros(len(FAKE))
    row[FAKE_IDS[b"x"]], row[FAKE_IDS[b"return"]], row[FAKE_IDS[b"re"]] = 9.0, 2.0, 1.0
    assert best_allowed(row, constraint) == FAKE_IDS[b"return"]


def test_visible_is_empty_while_spelling_and_strips_the_healed_text():
    texts = fake_texts()
    constraint = Constraint(texts, b" retu")
    constraint.advance(FAKE_IDS[b" ret"])
    assert constraint.visible(" ret") == ""
    constraint.advance(FAKE_IDS[b"urn"])
    assert constraint.visible(" return") == "rn"
    # A decoder that drops the first token's leading space.
    assert constraint.visible("return") == "rn"


def test_heal_chars_only_where_the_prompt_ends_with_the_word():
    assert heal_chars("prompt\n    retu", "    retu") == 4
    assert heal_chars("prompt\n    x = ", "    x = ") == 0
    # A FIM prompt ends with its middle, the cursor line's start: healed.
    fim = build_prompt(QWEN, "def f():\n    retu", "\n")
    assert fim.endswith("retu") and heal_chars(fim, "def f():\n    retu") == 4
    # A template that ends with its middle marker: not.
    assert heal_chars("<PRE> def f():\n    retu <SUF>\n <MID>", "def f():\n    retu") == 0


# -- the tiny real model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from mmlsp.engine.local import LocalEngine

    engine = LocalEngine(
        str(tiny_model_dir), device="cpu", cache_dir=tmp_path_factory.mktemp("cache")
    )
    yield engine
    engine.close()


def test_token_texts_spell_the_tokenizers_encodings(engine):
    texts = token_texts(engine.tokenizer)
    assert len(texts) == len(engine.tokenizer)
    for text in ["def f(x):\n    return self.items[0]  # ok\n", "naïve = 'é'\n\tpass"]:
        ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert b"".join(texts.pieces[i] for i in ids) == text.encode("utf-8")
    special = engine.tokenizer.convert_tokens_to_ids("<|fim_middle|>")
    assert texts.pieces[special] is None


def reference(engine, prompt: str, heal: int, max_new_tokens: int) -> str:
    """Greedy decoding with full forward passes (no cache, no drafts), healed by hand:
    what the engine's healed generation must equal."""
    import torch

    ids = engine.prompt_encoder.encode(prompt)
    texts = engine.token_texts()
    constraint = None
    if heal:
        healing = plan(ids, texts, prompt[-heal:].encode())
        assert healing is not None
        ids, constraint = ids[: healing.keep], Constraint(texts, healing.text)
    generated: list[int] = []
    with torch.inference_mode():
        while len(generated) - (constraint.steps if constraint else 0) < max_new_tokens:
            logits = engine.model(torch.tensor([ids + generated])).logits[0, -1]
            if constraint is not None and not constraint.done:
                allowed = torch.from_numpy(constraint.allowed())
                token = int(allowed[torch.argmax(logits[allowed])])
                constraint.advance(token)
            else:
                token = int(torch.argmax(logits))
            if token in engine.eos_ids:
                break
            generated.append(token)
    text = engine.tokenizer.decode(generated, skip_special_tokens=True)
    return constraint.visible(text) if constraint is not None else text


@pytest.mark.parametrize("fim", [False, True])
def test_healed_generation_is_the_constrained_greedy_one(engine, fim):
    prefix, suffix = "import os\n\ndef join(a, b):\n    retu", "\n\nprint(join)\n"
    prompt = build_prompt(QWEN if fim else None, prefix, suffix)
    heal = heal_chars(prompt, prefix)
    assert heal == 4
    expected = reference(engine, prompt, heal, 12)
    healed = engine.generate(GenerationRequest(prompt, 12, heal=heal))
    assert healed.text == expected
    # The same with the prompt's KV kept, twice (the second reuses it and drafts).
    for _ in range(2):
        kept = engine.generate(GenerationRequest(prompt, 12, heal=heal, cache_key="doc"))
        assert kept.text == expected
    plain = engine.generate(GenerationRequest(prompt, 12))
    assert plain.text == reference(engine, prompt, 0, 12)


def test_the_healed_text_is_spelled_before_anything_is_shown(engine):
    prompt = "def f(items):\n    for item in ite"
    seen: list[str] = []

    def stop_at(text: str) -> int | None:
        seen.append(text)
        return None

    request = GenerationRequest(prompt, 6, stop_at=stop_at, heal=3)
    result = engine.generate(request)
    # Every text the caller saw is the answer's start: none holds the healed "ite".
    assert all(result.text.startswith(text) for text in seen)
    assert result.text == reference(engine, prompt, 3, 6)


@pytest.fixture(scope="module")
def host(engine):
    host = EngineHost(factory=lambda *_args: engine)
    host.load(LoadSpec("loaded", "cpu", "auto", "unused"))
    assert host.wait_ready(60).state == "ready"
    return host


DOC = "import os\n\n\ndef size(path):\n    if os.path.exists(path):\n        retu\n    return 0\n"


def outcome_texts(host, text: str, offset: int, healing: bool) -> tuple[str | None, str]:
    """The suggestion and the raw generation behind it."""
    settings = Settings(token_healing=healing, time_budget_ms=600_000)
    outcome = asyncio.run(complete(text, offset, settings, host, language="python"))
    assert outcome.result is not None
    return (outcome.completion.text if outcome.completion else None), outcome.result.text


@pytest.mark.parametrize("cursor", ["        ", "    if os.path.exists(path):", "    return 0\n"])
def test_pipeline_output_is_unchanged_when_the_cursor_is_not_in_a_word(host, cursor):
    text = DOC.replace("        retu\n", "        \n")
    offset = text.index(cursor) + len(cursor)
    assert partial_word(text[:offset]) == 0
    on = outcome_texts(host, text, offset, True)
    assert on[1]  # the model wrote something: the comparison is not of two empties
    assert on == outcome_texts(host, text, offset, False)


def test_pipeline_heals_a_fim_prompt_mid_word(host, engine):
    offset = DOC.index("retu") + 4
    settings = Settings(time_budget_ms=600_000)
    assert settings.token_healing  # on by default
    ctx, prompt = prepare_prompt(DOC, offset, settings, engine.count_tokens, host.template)
    assert host.template is not None and host.template.name == "qwen"
    heal = heal_chars(prompt, ctx.prefix)
    assert heal == 4
    healed = reference(engine, prompt, heal, settings.max_new_tokens)
    unhealed = reference(engine, prompt, 0, settings.max_new_tokens)
    assert healed != unhealed  # the check below would not tell them apart otherwise
    outcome = asyncio.run(complete(DOC, offset, settings, host, language="python"))
    raw = outcome.result.text if outcome.result else None
    assert raw is not None and healed.startswith(raw)  # the stops cut the same text
    off = asyncio.run(
        complete(DOC, offset, dataclasses.replace(settings, token_healing=False), host)
    )
    assert off.result is not None and unhealed.startswith(off.result.text)
