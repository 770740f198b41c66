"""Post-processing while streaming: ``stop_at`` ends generation as soon as the
suggestion is complete, and agrees with the filters that ``finish`` runs at the end."""

from __future__ import annotations

import pytest

from mmlsp.context.window import CursorContext, build_context
from mmlsp.postprocess import finish, stop_at


def context(prefix: str, suffix: str = "", language: str | None = "python") -> CursorContext:
    return build_context(
        prefix + suffix,
        len(prefix),
        prefix_tokens=1_000_000,
        suffix_tokens=1_000_000,
        count=len,
        language=language,
    )


def feed(text: str, ctx: CursorContext, token_size: int = 3) -> tuple[int, int | None]:
    """Stream ``text`` in tokens into stop_at: (characters consumed, cut index)."""
    check = stop_at(ctx)
    for end in range(token_size, len(text) + token_size, token_size):
        so_far = text[:end]
        cut = check(so_far)
        if cut is not None:
            return len(so_far), cut
    return len(text), None


@pytest.mark.parametrize(
    ("prefix", "suffix", "raw", "kept"),
    [
        # Single line: the first line break ends generation.
        ("import os\nx = os.path.", "", "join(a, b)\nprint(x)\nmore = 1\n", "join(a, b)"),
        # Balance: the line that closes the bracket ends it.
        ("foo(", "\n", "a, b)\nbar()\nbaz()\nqux()\n", "a, b)"),
        # Block: a dedent out of the function body ends it.
        (
            "def f(x):\n    ",
            "\n",
            "y = x\n    return y\ndef g():\n    return 2\n    # more text here\n",
            "y = x\n    return y",
        ),
        # Block: the line already below the cursor ends it.
        (
            "def f():\n    ",
            "\n    return x\n",
            "a = 1\n    return x\n    b = 2\n    c = 3\n",
            "a = 1",
        ),
        # Block: a loop of repeated lines ends it.
        (
            "def f():\n    ",
            "\n",
            "x = 1\n    y()\n    y()\n    y()\n    y()\n    y()\n",
            "x = 1\n    y()",
        ),
    ],
)
def test_streaming_stop_ends_generation_early(
    prefix: str, suffix: str, raw: str, kept: str
) -> None:
    ctx = context(prefix, suffix)
    consumed, cut = feed(raw, ctx)
    assert cut is not None, "generation was never stopped"
    assert consumed < len(raw)  # fewer tokens decoded than the model would have produced
    assert raw[:cut].rstrip() == kept
    # The final filters agree with the stop taken while streaming.
    assert finish(raw[:consumed], ctx) == finish(raw, ctx)


def test_streaming_waits_for_a_complete_line() -> None:
    ctx = context("def f(x):\n    ", "\n")
    check = stop_at(ctx)
    assert check("y = x\n    return y\nde") is None  # "de" may still become a deeper line
    assert check("y = x\n    return y\ndef g():\n") == len("y = x\n    return y")


def test_streaming_exact_cut_index_single_line() -> None:
    ctx = context("x = ", "\n")
    check = stop_at(ctx)
    assert check("foo") is None
    assert check("foo(1)") is None
    assert check("foo(1)\nbar") == len("foo(1)")
