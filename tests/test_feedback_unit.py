"""Pure pieces behind the user's feedback: why an answer was empty, where a document is
warmed, how progress shows the text written so far."""

from __future__ import annotations

from lsprotocol import types

from mmlsp import chat
from mmlsp.complete import empty_reason, warm_offset
from mmlsp.config import Settings
from mmlsp.context.window import build_context
from mmlsp.engine import GenerationResult
from mmlsp.features.progress import Work, preview
from mmlsp.postprocess import finish, finish_why
from mmlsp.text.changes import edit_end


def result(text: str, reason: str = "eos") -> GenerationResult:
    return GenerationResult(text, reason, 10, len(text.split()), 0.1)  # type: ignore[arg-type]


def test_finish_why_names_the_filter_that_dropped_the_text() -> None:
    text = "x = 1\ny = "
    ctx = build_context(text, len(text), prefix_tokens=100, suffix_tokens=100, count=len)
    assert finish_why("", ctx) == (None, "no text")
    assert finish_why("   ", ctx) == (None, "drop_trivial")
    assert finish_why("x + 2", ctx) == ("x + 2", None) == (finish("x + 2", ctx), None)


def test_empty_reasons() -> None:
    assert empty_reason(result("", "deadline"), "no text") == "time budget"
    assert empty_reason(result("", "eos"), "no text") == "model wrote nothing"
    assert empty_reason(result("", "cancelled"), None) == "cancelled"
    assert empty_reason(result("))", "stop"), "check_parse") == "filter:check_parse"


def test_warm_offset_is_the_end_of_the_first_window() -> None:
    settings = Settings(prefix_tokens=100)
    small = "a b c\nd e f\n"
    assert warm_offset(small, settings, lambda t: len(t.split())) == len(small)
    big = "".join(f"w{i} w w w w\n" for i in range(100))  # 5 words a line
    offset = warm_offset(big, settings, lambda t: len(t.split()))
    assert big[:offset].count("\n") == 17 and big[offset] == "\n"  # 18 lines, 90 words


def test_edit_end_is_where_the_last_inserted_text_ends() -> None:
    def partial(sl: int, sc: int, el: int, ec: int, text: str):
        rng = types.Range(types.Position(sl, sc), types.Position(el, ec))
        return types.TextDocumentContentChangePartial(range=rng, text=text)

    after = "ab\ncXYd\n"
    assert edit_end(after, [partial(1, 1, 1, 1, "XY")]) == types.Position(1, 3)
    assert edit_end(after, [partial(0, 0, 0, 0, "q"), partial(1, 1, 1, 1, "XY")]) == (
        types.Position(1, 3)
    )
    assert edit_end(after, [types.TextDocumentContentChangeWholeDocument(text=after)]) is None
    assert edit_end(after, []) is None


def test_progress_previews_the_latest_words_and_is_throttled() -> None:
    assert preview("short  text\nhere") == "short text here"
    long = " ".join(f"word{i}" for i in range(100))
    shown = preview(long, 40)
    assert shown.startswith("…") and shown.endswith("word99") and len(shown) <= 40
    sent: list[tuple[object, object]] = []
    now = [0.0]
    work = Work(
        "mmlsp: test", lambda token, value: sent.append((token, value)), "t", lambda: now[0]
    )
    work.on_text("one")
    work.on_text("one two")  # within the throttle window: not sent
    now[0] = 1.0
    work.on_text("one two three")
    work.end("done")
    work.on_text("late")  # after the end: nothing
    assert [getattr(v, "message", None) for _, v in sent] == [
        "writing: one",
        "writing: one two three",
        "done",
    ]
    assert isinstance(sent[-1][1], types.WorkDoneProgressEnd)


def test_prompt_echo_and_empty_prose_are_recognised() -> None:
    messages = chat.explain_messages("python", "def f(x):\n    return x", "f")
    assert chat.prose_problem("It returns its argument unchanged.", messages) is None
    echo = "Explain `f` to a colleague who is reading it for the first time. Then"
    assert chat.prose_problem(echo, messages) == (
        "the model repeated the question instead of answering it"
    )
    assert chat.prose_problem("### Instruction:\nexplain", messages) is not None
    assert chat.prose_problem("```python\ndef f(x):\n    return x\n```", messages) == (
        "the model gave no explanation"
    )
    # The code itself may be quoted in an answer; only the instructions are an echo.
    assert chat.prose_problem("`return x` hands back the input as it is.", messages) is None
    # Replacement characters (a split character's bytes) are dropped; what is left counts.
    assert chat.clean_markdown("\ufffd\ufffdIt returns\ufffd x.") == "It returns x."
    assert chat.prose_problem(chat.clean_markdown("\ufffd\ufffd`x`\ufffd"), messages) == (
        "the model gave no explanation"
    )


def test_a_vision_chat_echo_is_recognised_in_its_text_parts() -> None:
    from mmlsp.chat.vision import describe_messages

    messages = describe_messages("form.png")
    echo = "This image, form.png, is referred to from source code. Describe it"
    assert chat.prose_problem(echo, messages) is not None
    assert chat.prose_problem("- A form with a Name field and a blue button.", messages) is None


def test_an_unclosed_code_block_is_closed() -> None:
    assert chat.clean_markdown("Uses:\n\n```python\nf(1)") == "Uses:\n\n```python\nf(1)\n```"


def test_a_reply_cut_short_loses_its_unfinished_sentence() -> None:
    assert chat.trim_unfinished("It adds numbers. Then it") == "It adds numbers."
    assert chat.trim_unfinished("- adds them\n- The function") == "- adds them"
    assert chat.trim_unfinished("Done.") == "Done."
    assert chat.Reply("x", "deadline").cut_short and not chat.Reply("x", "eos").cut_short


def test_code_quoted_back_is_dropped_from_an_explanation() -> None:
    code = "def f(x):\n    return x"
    echoed = "Intro.\n\n```python\ndef f(x):\n    return x\n```\n\nIt returns x."
    assert chat.drop_echoed_code(echoed, code) == "Intro.\n\nIt returns x."
    other = "Better:\n```python\ndef f(x):\n    return x + 1\n```"
    assert chat.drop_echoed_code(other, code) == other
