"""FIM template detection from real (tiny) tokenizers, exact rendering, overrides."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mmlsp.prompt.fim import (
    CODELLAMA,
    MIDDLE_SNAP_LINES,
    QWEN,
    TEMPLATE_NAMES,
    ContextPiece,
    FimTemplate,
    build_prompt,
    detect_template,
    render_context,
    restrict_to_vocab,
    split_middle,
    template_by_name,
)

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nprint(add(1, 2))\n"

QWEN_TOKENS = (
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<|im_start|>",
    "<|im_end|>",
)
CODEGEMMA_TOKENS = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|file_separator|>",
)
STARCODER2_TOKENS = (
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<repo_name>",
    "<file_sep>",
)
STARCODER1_TOKENS = (
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<filename>",
    "<reponame>",
)
SANTACODER_TOKENS = ("<|endoftext|>", "<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>")
DEEPSEEK_TOKENS = (
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁begin｜>",
    "<｜fim▁end｜>",
    "<|EOT|>",
)
# CodeLlama keeps these in the sentencepiece vocab, spelled with the ▁ space.
CODELLAMA_VOCAB = ("<s>", "</s>", "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")


def make_tokenizer(
    special: Iterable[str] = (), plain: Iterable[str] = ()
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: `plain` in the model vocab, `special` as added tokens."""
    words = ["[UNK]", "def", "add", "print", *plain]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(special))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def vocab_of(tok: PreTrainedTokenizerFast) -> set[str]:
    return set(tok.get_vocab())


FAMILIES = [
    pytest.param(
        make_tokenizer(QWEN_TOKENS),
        "qwen",
        f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>",
        ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
        "<|file_sep|>",
        id="qwen",
    ),
    pytest.param(
        make_tokenizer(CODEGEMMA_TOKENS),
        "codegemma",
        f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>",
        ("<|file_separator|>", "<eos>", "<end_of_turn>"),
        "<|file_separator|>",
        id="codegemma",
    ),
    pytest.param(
        make_tokenizer(STARCODER2_TOKENS),
        "starcoder",
        f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>",
        ("<|endoftext|>", "<file_sep>"),
        "<file_sep>",
        id="starcoder2",
    ),
    pytest.param(
        make_tokenizer(STARCODER1_TOKENS),
        "starcoder",
        f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>",
        ("<|endoftext|>",),
        "<filename>",  # StarCoder 1's repo format labels files with <filename>
        id="starcoder1-filename",
    ),
    pytest.param(
        make_tokenizer(SANTACODER_TOKENS),
        "santacoder",
        f"<fim-prefix>{PREFIX}<fim-suffix>{SUFFIX}<fim-middle>",
        ("<|endoftext|>",),
        None,
        id="santacoder",
    ),
    pytest.param(
        make_tokenizer(DEEPSEEK_TOKENS),
        "deepseek",
        f"<｜fim▁begin｜>{PREFIX}<｜fim▁hole｜>{SUFFIX}<｜fim▁end｜>",
        ("<|EOT|>", "<｜end▁of▁sentence｜>"),
        None,
        id="deepseek",
    ),
    pytest.param(
        make_tokenizer(plain=CODELLAMA_VOCAB),
        "codellama",
        f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>",
        ("▁<EOT>",),
        None,
        id="codellama",
    ),
]


@pytest.mark.parametrize(("tok", "name", "expected", "stops", "file_sep"), FAMILIES)
def test_detects_family_and_renders_exact_prompt(
    tok: PreTrainedTokenizerFast,
    name: str,
    expected: str,
    stops: tuple[str, ...],
    file_sep: str | None,
) -> None:
    template = detect_template(vocab_of(tok))
    assert template is not None
    assert template.name == name
    assert template.render(PREFIX, SUFFIX) == expected
    # From line 3, the cursor's line is line 4, where the middle starts (a snap line).
    prompt = build_prompt(template, PREFIX, SUFFIX, first_line=3)
    if template.middle_opens:
        # The cursor line's "    " moves from the prefix's end to the middle's start.
        head = PREFIX.removesuffix("    ")
        assert prompt == template.render(head, SUFFIX, "    ") != expected
        assert prompt.endswith(template.middle_marker + "    ")
    else:
        assert prompt == expected
    assert template.stop == stops
    assert template.file_sep == file_sep


@pytest.mark.parametrize(
    ("special", "markers"),
    [
        (QWEN_TOKENS, ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")),
        (CODEGEMMA_TOKENS, ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")),
        (STARCODER2_TOKENS, ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")),
        (DEEPSEEK_TOKENS, ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")),
    ],
)
def test_rendered_markers_tokenize_as_single_special_tokens(
    special: tuple[str, ...], markers: tuple[str, str, str]
) -> None:
    tok = make_tokenizer(special)
    template = detect_template(vocab_of(tok))
    assert template is not None
    tokens = tok.tokenize(template.render("def", "print"))
    assert [t for t in tokens if t in markers] == list(markers)


def test_qwen_and_codegemma_told_apart_both_ways() -> None:
    # Same three markers; CodeGemma's separator must win, and its absence must give Qwen.
    gemma = detect_template(vocab_of(make_tokenizer(CODEGEMMA_TOKENS)))
    qwen = detect_template(vocab_of(make_tokenizer(QWEN_TOKENS)))
    assert gemma is not None and gemma.name == "codegemma"
    assert qwen is not None and qwen.name == "qwen"
    bare = detect_template({"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"})
    assert bare is not None and bare.name == "qwen"
    assert bare.stop == () and bare.file_sep is None


def test_no_fim_tokens_means_prefix_only() -> None:
    tok = make_tokenizer(("<|endoftext|>", "<|im_start|>", "<|im_end|>"), plain=("<PRE>",))
    template = detect_template(vocab_of(tok))
    assert template is None
    assert build_prompt(template, PREFIX, SUFFIX) == PREFIX
    assert detect_template(set()) is None


def test_partial_marker_set_is_not_enough() -> None:
    assert detect_template({"<|fim_prefix|>", "<|fim_suffix|>"}) is None
    assert detect_template({"<fim_prefix>", "<fim_middle>"}) is None


def test_codellama_markers_without_space_prefix_are_detected() -> None:
    template = detect_template({"<PRE>", "<SUF>", "<MID>", "<EOT>"})
    assert template is not None and template.name == "codellama"
    assert template.stop == ("<EOT>",)


def test_empty_prefix_and_suffix() -> None:
    qwen = template_by_name("qwen")
    assert qwen is not None
    assert qwen.render("", "") == "<|fim_prefix|><|fim_suffix|><|fim_middle|>"
    assert build_prompt(None, "", "tail") == ""


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("qwen", "<|file_sep|>src/util.py\n"),
        ("starcoder", "<file_sep>src/util.py\n"),
        ("codegemma", "<|file_separator|>src/util.py\n"),
        ("deepseek", None),
        ("codellama", None),
        ("santacoder", None),
    ],
)
def test_render_file_header(name: str, header: str | None) -> None:
    template = template_by_name(name)
    assert template is not None
    assert template.render_file_header("src/util.py") == header


def test_template_by_name_covers_every_name() -> None:
    for name in ("qwen", "codegemma", "starcoder", "deepseek", "codellama", "none"):
        assert name in TEMPLATE_NAMES
    for name in TEMPLATE_NAMES:
        template = template_by_name(name)
        if name == "none":
            assert template is None
        else:
            assert isinstance(template, FimTemplate) and template.name == name


def test_template_by_name_is_case_and_space_tolerant() -> None:
    template = template_by_name(" Qwen ")
    assert template is not None and template.name == "qwen"


def test_override_keeps_full_stop_list_until_restricted() -> None:
    codellama = template_by_name("codellama")
    assert codellama is not None
    assert codellama.stop == ("<EOT>", "▁<EOT>")
    restricted = restrict_to_vocab(codellama, set(CODELLAMA_VOCAB))
    assert restricted.stop == ("▁<EOT>",)
    assert restricted.render("a", "b") == codellama.render("a", "b")


def test_unknown_name_raises_listing_valid_names() -> None:
    with pytest.raises(ValueError) as excinfo:
        template_by_name("gpt4")
    message = str(excinfo.value)
    assert "gpt4" in message
    for name in TEMPLATE_NAMES:
        assert name in message


def test_templates_are_immutable() -> None:
    template = template_by_name("qwen")
    assert template is not None
    with pytest.raises(AttributeError):
        template.name = "other"  # type: ignore[misc]


PIECES = [ContextPiece("pkg/util.py", "def helper(x):\n    ..."), ContextPiece("b.py", "y = 2\n")]


def test_repo_format_context_for_qwen() -> None:
    qwen = restrict_to_vocab(QWEN, set(QWEN_TOKENS))
    context = render_context(qwen, PIECES, "main.py", repo="proj")
    assert context == (
        "<|repo_name|>proj\n"
        "<|file_sep|>pkg/util.py\ndef helper(x):\n    ...\n"
        "<|file_sep|>b.py\ny = 2\n"
        "<|file_sep|>main.py\n"
    )
    prompt = build_prompt(
        qwen, PREFIX, SUFFIX, context=context, preamble="import os\n", first_line=3
    )
    # Context before the FIM markers; the out-of-view preamble inside the prefix part;
    # the cursor line's text ("    ") opens the middle.
    assert prompt == (
        f"{context}<|fim_prefix|>import os\ndef add(a, b):\n<|fim_suffix|>{SUFFIX}"
        "<|fim_middle|>    "
    )


def test_starcoder_repo_format_per_vocabulary() -> None:
    star2 = detect_template(vocab_of(make_tokenizer(STARCODER2_TOKENS)))
    assert star2 is not None and star2.repo_name == "<repo_name>"
    assert render_context(star2, PIECES[:1], "m.py", repo="r").startswith(
        "<repo_name>r\n<file_sep>pkg/util.py\n"
    )
    star1 = detect_template(vocab_of(make_tokenizer(STARCODER1_TOKENS)))
    assert star1 is not None and (star1.file_sep, star1.repo_name) == ("<filename>", "<reponame>")
    assert render_context(star1, PIECES[:1], "m.py", repo="r") == (
        "<reponame>r\n<filename>pkg/util.py\ndef helper(x):\n    ...\n<filename>m.py\n"
    )


def test_comment_labels_without_repo_format() -> None:
    deepseek = detect_template(vocab_of(make_tokenizer(DEEPSEEK_TOKENS)))
    for template in (None, deepseek):
        context = render_context(template, PIECES[:1], "main.py", repo="proj")
        assert context == "# path: pkg/util.py\ndef helper(x):\n    ...\n\n# path: main.py\n"
    assert build_prompt(None, "x = ", "", context="# c\n", preamble="import os\n") == (
        "# c\nimport os\nx = "
    )


def test_no_pieces_no_context() -> None:
    # Without pieces the prompt is exactly the plain FIM prompt (no labels at all).
    assert render_context(QWEN, [], "main.py", repo="proj") == ""
    assert build_prompt(QWEN, PREFIX, SUFFIX, context="") == QWEN.render(
        "def add(a, b):\n", SUFFIX, "    "
    )


def test_the_middle_opens_on_a_snapped_line() -> None:
    # With a snap of 1, the cursor line's text alone (as llama.vim lays out /infill).
    assert split_middle("a = 1\nb = f(", snap=1) == ("a = 1\n", "b = f(")
    assert split_middle("a = 1\n", snap=1) == ("a = 1\n", "")
    assert split_middle("x = ", snap=1) == ("", "x = ")
    assert split_middle("a\r\nb", snap=1) == ("a\r\n", "b")
    # Snapped to 4: back to the last line whose number is a multiple of 4...
    lines = "".join(f"l{n}\n" for n in range(6)) + "x = "  # the cursor on line 6
    assert split_middle(lines, snap=4) == ("l0\nl1\nl2\nl3\n", "l4\nl5\nx = ")
    assert split_middle(lines, first_line=2, snap=4) == (lines[:-4], "x = ")  # line 8
    # ...but the prefix part keeps its first line (the snapped line 0 is above it).
    assert split_middle("a\nb\nc", first_line=1, snap=4) == ("a\n", "b\nc")
    assert split_middle("x = ", first_line=2, snap=4) == ("", "x = ")  # no line above
    qwen = build_prompt(QWEN, "import os\nx = os.", "\nprint(x)\n", first_line=7)
    assert qwen == "<|fim_prefix|>import os\n<|fim_suffix|>\nprint(x)\n<|fim_middle|>x = os."
    # CodeLlama keeps plain PSM (its tokenizer spaces text after " <MID>").
    llama = build_prompt(CODELLAMA, "import os\nx = os.", "\nprint(x)\n", first_line=7)
    assert llama == "<PRE> import os\nx = os. <SUF>\nprint(x)\n <MID>"
    # The parts travel with the text, for backends that apply the template themselves.
    assert (qwen.prefix, qwen.suffix, qwen.middle) == ("import os\n", "\nprint(x)\n", "x = os.")
    assert (llama.prefix, llama.middle) == ("import os\nx = os.", "")


def test_typing_on_a_line_only_extends_the_prompt() -> None:
    """Each keystroke's prompt starts with the last one's: a kept KV cache prefills
    only the new characters, not the suffix after them."""
    above, below = "def f(a):\n", "\n\nprint(f(1))\n"
    typed = "    return a + 1"
    prompts = [build_prompt(QWEN, above + typed[:n], below) for n in range(len(typed) + 1)]
    for before, after in zip(prompts, prompts[1:], strict=False):
        assert after.startswith(before) and len(after) == len(before) + 1


def test_new_lines_extend_the_prompt_between_snap_lines() -> None:
    """Typing a block line by line: the prompt only grows, except when the cursor
    reaches a line whose number is a multiple of MIDDLE_SNAP_LINES; only there does
    the text before the suffix change (and a kept cache prefill the suffix again)."""
    above, below = "def f(a):\n", "\n\nprint(f(1))\n"
    body = "".join(f"    a += {n}\n" for n in range(9)) + "    return a"
    prompts = [build_prompt(QWEN, above + body[:n], below) for n in range(len(body) + 1)]
    changed_at = [
        (above + body[:n]).count("\n")  # the cursor's line
        for n, (before, after) in enumerate(zip(prompts, prompts[1:], strict=False), start=1)
        if not after.startswith(before)
    ]
    assert changed_at == [4, 8]  # lines 1 to 10 typed, two snaps
    assert MIDDLE_SNAP_LINES == 4


def test_a_new_file_keeps_its_first_line_in_the_prefix() -> None:
    """Typing the first lines of a file: the prefix part is never emptied once there is
    a line above the cursor's, and the prompt changes only when the cursor leaves line
    0 and when it reaches line 4."""
    body = "import os\nimport sys\nx = 1\ny = 2\nz = 3"
    prompts = [build_prompt(QWEN, body[:n], "\n") for n in range(len(body) + 1)]
    for prompt in prompts:
        assert prompt.prefix or "\n" not in prompt.middle  # empty only on line 0
    grows = [b.startswith(a) for a, b in zip(prompts, prompts[1:], strict=False)]
    assert grows.count(False) == 2  # leaving line 0, and reaching line 4
