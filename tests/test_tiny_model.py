"""The tiny test model: builds fast, loads through Auto classes, generates, survives GGUF."""

from __future__ import annotations

import sysconfig
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mmlsp.prompt.fim import detect_template
from tests.tiny_model import SPECIAL_TOKENS, build_tiny_model, write_tiny_gguf

# Spaces, tabs, trailing blanks, blank lines, CRLF and non-ASCII (already NFC:
# the Qwen2 tokenizer class NFC-normalizes, exactly like real Qwen2.5-Coder).
TRICKY_SOURCE = (
    "class Foo:\n"
    "    def bar(self, x):  \n"
    "\tif x:\n"
    "\t\treturn '  spaced  '\r\n"
    "\n\n\n"
    "        # café — ünïcode 🐍\n"
    "    pass\n"
    "x = {'a': [1, 2 ,3 ] } ;  y=x .get( 'a' )\n"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("tiny") / "model"
    start = time.perf_counter()
    build_tiny_model(out)
    return out, time.perf_counter() - start


@pytest.fixture(scope="module")
def model_dir(built: tuple[Path, float]) -> Path:
    return built[0]


@pytest.fixture(scope="module")
def gguf_file(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(model_dir, tmp_path_factory.mktemp("gguf") / "tiny-qwen2-f32.gguf")


def stdlib_source() -> str:
    path = Path(sysconfig.get_paths()["stdlib"]) / "argparse.py"
    return path.read_text(encoding="utf-8")


def test_build_is_fast_and_writes_safetensors(built: tuple[Path, float]) -> None:
    out, seconds = built
    assert seconds < 20  # budget is 10 s on 2 cores; slack for loaded CI
    assert (out / "model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    assert (out / "config.json").is_file()


def test_loads_with_auto_classes_and_generates(model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == len(tok)
    assert model.config.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token == "<|endoftext|>"
    assert tok.pad_token is not None

    inputs = tok("def add(a, b):\n    return", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    assert 1 <= out.shape[1] - prompt_len <= 5
    assert isinstance(tok.decode(out[0, prompt_len:]), str)


@pytest.mark.parametrize("text", [TRICKY_SOURCE, stdlib_source()], ids=["tricky", "argparse"])
def test_encode_decode_round_trips_source_exactly(model_dir: Path, text: str) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_tokenizer_learned_python(model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    text = stdlib_source()
    # ~1000 merges learned from Python compress real source well below 1 token/char.
    assert len(tok(text)["input_ids"]) < len(text) / 2


def test_special_tokens_are_single_and_detected_as_qwen(model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    vocab = tok.get_vocab()
    for token in SPECIAL_TOKENS:
        assert token in vocab
    template = detect_template(set(vocab))
    assert template is not None and template.name == "qwen"
    prompt = template.render("def f(x):\n    ", "\n    return y\n")
    pieces = tok.tokenize(prompt)
    assert pieces.count("<|fim_prefix|>") == 1
    assert pieces.count("<|fim_suffix|>") == 1
    assert pieces[-1] == "<|fim_middle|>"
    # Every stop the detected template keeps is one real token.
    assert template.stop == ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>")
    assert all(stop in vocab for stop in template.stop)


def test_same_seed_same_weights(model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    first = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    second = AutoModelForCausalLM.from_pretrained(again).state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_gguf_loads_with_identical_tokenizer_and_weights(model_dir: Path, gguf_file: Path) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    gtok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    assert len(gtok) == len(tok)
    assert gtok.eos_token == "<|endoftext|>"
    text = TRICKY_SOURCE + stdlib_source()[:4000] + "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    assert gtok(text)["input_ids"] == tok(text)["input_ids"]
    assert gtok.decode(gtok(TRICKY_SOURCE)["input_ids"]) == TRICKY_SOURCE
    template = detect_template(set(gtok.get_vocab()))
    assert template is not None and template.name == "qwen"

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    gmodel = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    original, loaded = model.state_dict(), gmodel.state_dict()
    assert original.keys() == loaded.keys()
    for name, tensor in original.items():
        assert torch.equal(tensor, loaded[name].to(tensor.dtype)), name


def test_gguf_generates_like_the_original(model_dir: Path, gguf_file: Path) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    gmodel = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    inputs = tok("import os\n\ndef main():\n    ", return_tensors="pt")
    with torch.no_grad():
        expected = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        got = gmodel.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert torch.equal(expected, got)
