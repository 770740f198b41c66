"""Pure pieces of the chat path: reply cleaning, review parsing, chat prompt rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmlsp import chat
from mmlsp.engine.base import PLAIN_CHAT_MARKERS, render_plain_chat
from mmlsp.engine.local import LocalEngine


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("```python\nx = 1\n```", "x = 1"),
        (
            "Here is the fixed code:\n\n```py\ndef f():\n    return 1\n```\nThis fixes it.",
            "def f():\n    return 1",
        ),
        ("~~~\ny = 2\n~~~", "y = 2"),
        ("```python\nz = 3\n", "z = 3"),  # unclosed fence
        ("```\n```\n```python\nfirst = 1\n```\n```python\nsecond = 2\n```", "first = 1"),
        ("Sure! Here's the corrected version:\nx = 1\n\nThis version avoids the bug.", "x = 1"),
        ("x = 1\ny = 2", "x = 1\ny = 2"),  # no fences, no chatter: untouched
    ],
)
def test_strip_fences(reply: str, code: str) -> None:
    assert chat.strip_fences(reply) == code


def test_reindent_restores_the_target_indentation() -> None:
    reply = "def f(x):\n    if x:\n        return 1\n\n    return 2"
    assert chat.reindent(reply, "    ") == (
        "def f(x):\n        if x:\n            return 1\n\n        return 2"
    )
    # A reply that kept the original indentation is first dedented.
    assert chat.reindent("    a = 1\n    b = 2", "    ") == "a = 1\n    b = 2"


def test_clean_markdown() -> None:
    assert chat.clean_markdown("```markdown\n# Title\n\nText\n```") == "# Title\n\nText"
    assert chat.clean_markdown("Sure! Here is the explanation:\nIt adds.\n\n\n\nDone.") == (
        "It adds.\n\nDone."
    )


def test_clean_markdown_drops_repeated_prose_but_never_code() -> None:
    loop = "It fails on an empty list."
    code = "```python\nx = 1\n\nx = 1\n```"
    text = f"Adds numbers.\n\n{loop}\n\n{loop}\n\n{code}\n\n{loop}"
    assert chat.clean_markdown(text) == f"Adds numbers.\n\n{loop}\n\n{code}"


def test_review_example_copied_by_the_model_is_not_a_finding() -> None:
    reply = chat.REVIEW_EXAMPLE + "\n2|warning|Divides by zero when the list is empty."
    assert chat.parse_review(reply, 5) == [
        chat.Finding(2, "warning", "Divides by zero when the list is empty.")
    ]


def test_stop_at_turn_cuts_an_invented_next_turn() -> None:
    assert chat.stop_at_turn("answer\n\n### Instruction:\nmore") == len("answer\n\n")
    assert chat.stop_at_turn("## A heading\ntext") is None


def test_parse_review_well_formed() -> None:
    findings = chat.parse_review("3|warning|Divides by zero.\n5|info|May be slow.", 10)
    assert findings == [
        chat.Finding(3, "warning", "Divides by zero."),
        chat.Finding(5, "info", "May be slow."),
    ]


def test_parse_review_is_robust_to_malformed_output() -> None:
    text = "\n".join(
        [
            "Here are the bugs I found:",  # chatter
            "- 2 | WARNING | `items` may be empty",  # bullet, spaces, capitals
            "Line 4: error: off by one in the loop",  # other separators, synonym
            "L6,note,file is never closed",
            "99|warning|out of the function",  # line out of range
            "0|warning|line zero does not exist",
            "3|critical|unknown severity",
            "4|warning|",  # empty message
            "2 | WARNING | `items` may be empty",  # duplicate
            "NONE",
            "|||",
            "7|warning",  # missing message
            "garbage 1|2|3",
        ]
    )
    assert chat.parse_review(text, 8) == [
        chat.Finding(2, "warning", "`items` may be empty"),
        chat.Finding(4, "warning", "off by one in the loop"),
        chat.Finding(6, "info", "file is never closed"),
    ]
    assert chat.parse_review("NONE", 5) == []
    assert chat.parse_review("", 5) == []
    assert len(chat.parse_review("\n".join(f"1|warning|bug {i}" for i in range(9)), 3)) == 5


def test_retry_messages_feed_the_error_back() -> None:
    first = chat.fix_messages("python", "x = (", "unclosed", "", "")
    again = chat.retry_messages(first, "x = ((", 'Missing ")" on line 1')
    assert again[: len(first)] == first
    assert again[-2] == {"role": "assistant", "content": "x = (("}
    assert 'Missing ")" on line 1' in again[-1]["content"]


def test_plain_chat_fallback() -> None:
    prompt = render_plain_chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert prompt == f"Be brief.\n\n{PLAIN_CHAT_MARKERS[0]}\nHi\n\n{PLAIN_CHAT_MARKERS[1]}\n"


def test_local_engine_uses_the_chat_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    engine = LocalEngine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert engine.render_chat(messages) == (
        "<|repo_name|>system\nS<|endoftext|>\n<|repo_name|>user\nU<|endoftext|>\n"
        "<|repo_name|>assistant\n"
    )
    assert engine.chat_stop_tokens() == ("<|endoftext|>",)


def test_local_engine_without_template_falls_back(tiny_gguf: Path, tmp_path: Path) -> None:
    engine = LocalEngine(str(tiny_gguf), device="cpu", cache_dir=tmp_path)
    messages = [{"role": "user", "content": "U"}]
    assert engine.render_chat(messages) == render_plain_chat(messages)
    assert engine.chat_stop_tokens() == ()


def test_stop_after_code_block() -> None:
    text = "Here:\n```python\nx = 1\n```\nThis sets x."
    assert text[: chat.stop_after_code_block(text)] == "Here:\n```python\nx = 1\n```"
    assert chat.stop_after_code_block("```python\nx = 1\n") is None  # still open
    assert chat.stop_after_code_block("x = 1\n### Instruction:") == len("x = 1\n")


def test_stop_at_repetition_ends_a_looping_answer() -> None:
    loop = "Intro.\n\nIt returns numbers.\n\nIt returns numbers.\n\nIt returns numbers.\n\nIt"
    cut = chat.stop_at_repetition(loop)
    assert loop[:cut] == "Intro.\n\nIt returns numbers.\n\nIt returns numbers.\n\n"
    assert chat.stop_at_repetition("- a\n- a\n- a\n") is None  # short lines may repeat
    assert chat.stop_at_repetition("Fine.\n### Instruction:") == len("Fine.\n")
