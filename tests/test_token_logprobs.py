"""The in-process engine reports each generated token's log-probability (the model's
confidence in a suggestion), the same with or without drafts (tiny real model)."""

from __future__ import annotations

import math

import pytest
import torch

from mmlsp.engine import GenerationRequest
from mmlsp.engine.local import LocalEngine
from mmlsp.prompt.fim import QWEN

SOURCE = "import os\n\n\ndef count(root):\n    total = 0\n    for path in os.listdir(root):\n"


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    engine = LocalEngine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path_factory.mktemp("c"))
    engine.set_stop_tokens(QWEN.stop)
    yield engine
    engine.close()


def test_logprobs_match_transformers_scores(engine):
    prompt = QWEN.render(SOURCE, "    return total\n")
    inputs = engine.tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = engine.model.generate(
            **inputs,
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=engine._eos_ids,
            output_scores=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    expected = []
    for token, scores in zip(new, out.scores, strict=True):
        if token in engine._eos_ids:
            break
        expected.append(float(torch.log_softmax(scores[0].float(), -1)[token]))
    result = engine.generate(GenerationRequest(prompt, 12))
    assert len(result.token_logprobs) == len(expected) > 0
    for got, want in zip(result.token_logprobs, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-3)
    assert all(lp <= 0 for lp in result.token_logprobs)
    # The text through each token: growing, ending where the text does.
    assert list(result.token_ends) == sorted(result.token_ends)
    assert result.token_ends[-1] == len(result.text)


def test_drafts_and_kept_caches_give_the_same_logprobs(engine):
    repetitive = SOURCE + "        total += 1\n    for path in os.listdir("
    prompt = QWEN.render(repetitive, "")
    plain = engine.generate(GenerationRequest(prompt, 20))
    drafted = engine.generate(GenerationRequest(prompt, 20, prompt_lookup=4, cache_key="k"))
    again = engine.generate(GenerationRequest(prompt, 20, prompt_lookup=4, cache_key="k"))
    assert drafted.text == plain.text == again.text
    for other in (drafted, again):
        assert len(other.token_logprobs) == len(plain.token_logprobs)
        assert all(
            math.isclose(a, b, abs_tol=1e-3)
            for a, b in zip(other.token_logprobs, plain.token_logprobs, strict=True)
        )
