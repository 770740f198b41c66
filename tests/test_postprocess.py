"""Post-processing: golden cases for every filter (tests/golden/postprocess/*.json),
one module per filter, and the whole pipeline. The streaming stop is in
test_postprocess_streaming.py."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

import mmlsp.postprocess
from mmlsp.context.window import CursorContext, build_context
from mmlsp.postprocess import FILTERS, PIPELINE, STOP_RULES, finish, replace_suffix_chars

GOLDEN = Path(__file__).parent / "golden" / "postprocess"
PACKAGE = Path(mmlsp.postprocess.__file__).parent
# Modules of the package that hold no filter: the composition and what filters share.
SHARED = {"__init__", "pipeline", "base", "lines"}
# Post-processing of the next-edit pipeline (edits from a rewritten region), not of a
# completion: tested in tests/test_next_edit.py.
OTHER_PIPELINES = {"next_edit"}
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


def test_each_filter_lives_in_its_own_documented_module() -> None:
    steps = [*PIPELINE, *STOP_RULES, replace_suffix_chars]
    homes = {step.__module__.rpartition(".")[2] for step in steps}
    assert not homes & SHARED, "filters live in their own modules, not with the composition"
    modules = {path.stem for path in PACKAGE.glob("*.py")} - SHARED - OTHER_PIPELINES
    assert modules == homes, "every module of the package owns a step of the pipeline"
    for name in sorted(modules | SHARED):
        module = importlib.import_module(
            f"mmlsp.postprocess.{name}" if name != "__init__" else "mmlsp.postprocess"
        )
        assert module.__doc__ and module.__doc__.strip(), f"{name} says what it owns"


def test_public_names_are_reexported() -> None:
    # The public names of the single module this package replaced, still importable.
    names = {
        *("COMPOUND_NODES", "FILTERS", "MAX_BLOCK_LINES", "MAX_PERIOD", "MIN_LENGTH"),
        *("PIPELINE", "REPEATED_LINE_RUN", "STOP_RULES", "Filter", "StopRule"),
        *("finish", "finish_why", "stop_at", "replace_suffix_chars"),
        *FILTERS,
        *(rule.__name__ for rule in STOP_RULES),
    }
    assert names == set(mmlsp.postprocess.__all__)
    for name in names:
        assert hasattr(mmlsp.postprocess, name), name


def test_pipeline_is_ordered_and_named() -> None:
    names = [f.__name__ for f in PIPELINE]
    assert len(set(names)) == len(names)
    assert names[0] == "normalize_line_endings" and names[-1] == "restore_line_endings"
    # Cheap cuts first, the parse check (which reparses) last before line endings.
    assert names.index("limit_scope_by_indent") < names.index("check_parse")
    assert names.index("drop_trivial") < names.index("check_parse")


def test_tiny_model_single_line_output_survives() -> None:
    # What the e2e suite's tiny random model generates at this position: it must stay.
    raw = "it instanceclu----btwordsstr ch __\ufffd  item\n opstr ch ch"
    ctx = context("import os\nx = os.path.", "", language=None)
    assert finish(raw, ctx) == "it instanceclu----btwordsstr ch __\ufffd  item"
    ctx = context("import os\nx = os.path.join", "")
    assert finish(raw, ctx) == "it instanceclu----btwordsstr ch __\ufffd  item"
