"""Post-processing: golden cases for every filter (tests/golden/postprocess/*.json),
the whole pipeline, and the streaming stop ending generation early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmlsp.context import CursorContext, build_context
from mmlsp.postprocess import FILTERS, PIPELINE, finish, replace_suffix_chars, stop_at

GOLDEN = Path(__file__).parent / "golden" / "postprocess"
# Golden files that are not pipeline filters.
ENTRY_POINTS: dict[str, Any] = {"finish": finish, "replace_suffix_chars": replace_suffix_chars}


def context(prefix: str, suffix: str = "", language: str | None = "python") -> CursorContext:
    return build_context(
        prefix + suffix,
        len(prefix),
        prefix_tokens=1_000_000,
        suffix_tokens=1_000_000,
        count=len,
        language=language,
    )


def golden_cases() -> list[Any]:
    params = []
    for path in sorted(GOLDEN.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            params.append(pytest.param(path.stem, case, id=f"{path.stem}: {case['name']}"))
    return params


@pytest.mark.parametrize(("step", "case"), golden_cases())
def test_golden(step: str, case: dict[str, Any]) -> None:
    ctx = context(case["prefix"], case["suffix"], case["language"])
    apply = ENTRY_POINTS.get(step) or FILTERS[step]
    assert apply(case["raw"], ctx) == case["expected"]


def test_every_filter_has_golden_cases() -> None:
    for name in [*FILTERS, *ENTRY_POINTS]:
        path = GOLDEN / f"{name}.json"
        assert path.is_file(), f"no golden file for {name}"
        assert len(json.loads(path.read_text(encoding="utf-8"))) >= 2


def test_pipeline_is_ordered_and_named() -> None:
    names = [f.__name__ for f in PIPELINE]
    assert len(set(names)) == len(names)
    assert names[0] == "normalize_line_endings" and names[-1] == "restore_line_endings"
    # Cheap cuts first, the parse check (which reparses) last before line endings.
    assert names.index("limit_scope_by_indent") < names.index("check_parse")
    assert names.index("drop_trivial") < names.index("check_parse")


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


def test_tiny_model_single_line_output_survives() -> None:
    # What the e2e suite's tiny random model generates at this position: it must stay.
    raw = "it instanceclu----btwordsstr ch __\ufffd  item\n opstr ch ch"
    ctx = context("import os\nx = os.path.", "", language=None)
    assert finish(raw, ctx) == "it instanceclu----btwordsstr ch __\ufffd  item"
    ctx = context("import os\nx = os.path.join", "")
    assert finish(raw, ctx) == "it instanceclu----btwordsstr ch __\ufffd  item"
