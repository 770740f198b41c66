"""PromptEncoder: a prompt's ids piece by piece are exactly the tokenizer's own."""

from __future__ import annotations

import random

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from mmlsp.engine.tokens import PromptEncoder
from tests.tiny_model import _corpus

FIM = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>"]


def _random_prompts(rng: random.Random, specials: list[str], count: int) -> list[str]:
    """Stdlib source cut anywhere, with special tokens dropped in anywhere: at the
    start and end, in a row, next to spaces and newlines."""
    source = "\n".join(_corpus())[:200_000]
    prompts = []
    for _ in range(count):
        at = rng.randrange(len(source))
        text = source[at : at + rng.randrange(0, 2500)]
        for _ in range(rng.randrange(0, 6)):
            cut = rng.randrange(len(text) + 1)
            text = text[:cut] + rng.choice(specials) + text[cut:]
        prompts.append(text)
    return prompts


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _sentencepiece_style() -> PreTrainedTokenizerFast:
    """A Llama-style tokenizer: "▁" for spaces, one prepended at the very start only,
    a BOS added to every text, and special tokens that strip the spaces beside them."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>"], show_progress=False)
    tokenizer.train_from_iterator(_corpus()[:3], trainer=trainer)
    tokenizer.add_special_tokens(
        [
            AddedToken("<PRE>", lstrip=True, rstrip=True, special=True),
            AddedToken("<SUF>", lstrip=True, special=True),
            AddedToken("<MID>", rstrip=True, special=True),
        ]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>")


def test_pieces_give_the_tokenizers_own_ids(tiny_tokenizer):
    encoder = PromptEncoder(tiny_tokenizer)
    assert encoder._split is not None  # tokenizing by pieces, not whole prompts
    for prompt in _random_prompts(random.Random(0), FIM, 300):
        assert encoder.encode(prompt) == tiny_tokenizer(prompt)["input_ids"], prompt


def test_pieces_keep_boundary_rules_of_sentencepiece_style_tokenizers():
    tokenizer = _sentencepiece_style()
    encoder = PromptEncoder(tokenizer)
    assert encoder._split is not None and encoder._head == [tokenizer.bos_token_id]
    # The boundary rules are there to be kept: a piece alone tokenizes differently.
    assert (
        tokenizer("x = 1", add_special_tokens=False)["input_ids"]
        != (tokenizer("<PRE> x = 1", add_special_tokens=False)["input_ids"][1:])
    )
    for prompt in _random_prompts(random.Random(1), ["<PRE>", "<SUF>", "<MID>"], 300):
        assert encoder.encode(prompt) == tokenizer(prompt)["input_ids"], prompt


class CountingTokenizer:
    """The real tokenizer, with the texts it was asked to tokenize noted."""

    def __init__(self, tokenizer):
        self.inner, self.texts = tokenizer, []
        self.added_tokens_decoder = tokenizer.added_tokens_decoder

    def __call__(self, text, **kwargs):
        self.texts.append(text)
        return self.inner(text, **kwargs)


def test_a_keystroke_tokenizes_only_the_piece_it_changed(tiny_tokenizer):
    counting = CountingTokenizer(tiny_tokenizer)
    encoder = PromptEncoder(counting)
    source = "\n".join(_corpus())[:6000]
    prefix, suffix, middle = source[:4000], source[4000:], "    total = "

    def prompt(middle: str) -> str:
        return f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}"

    encoder.encode(prompt(middle))
    counting.texts.clear()
    for typed in "sum(":
        middle += typed
        ids = encoder.encode(prompt(middle))
        assert ids == tiny_tokenizer(prompt(middle))["input_ids"]
    assert counting.texts == [f"<|fim_middle|>{middle[: len(middle) - 3 + k]}" for k in range(4)]


class FakeNonLocalTokenizer:
    """A test double whose ids depend on the whole text: pieces cannot reproduce them."""

    added_tokens_decoder = {7: AddedToken("<X>", special=True)}

    def __call__(self, text, add_special_tokens=True):
        ids = [len(text) % 5] + [7 if part == "<X>" else 1 for part in text.split()]
        return {"input_ids": ids}


def test_a_tokenizer_pieces_cannot_reproduce_is_tokenized_whole():
    encoder = PromptEncoder(FakeNonLocalTokenizer())
    assert encoder._split is None
    text = "a b <X> c d"
    assert encoder.encode(text) == FakeNonLocalTokenizer()(text)["input_ids"]
