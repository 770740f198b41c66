"""bench/next_edit.py: cases from a git history (a synthetic repository with known
hunks), scoring, and a run on the tiny model over a few cases."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.next_edit import (
    ROOT,
    Hunk,
    file_changes,
    main,
    parse_hunk,
    select_cases,
    similarity,
)

FILLER = "".join(f"\n\ndef helper_{n}():\n    return {n + 10}\n" for n in range(12))
V1 = (
    "def total(prices, quantities):\n"
    "    result = 0\n"
    "    for p, q in zip(prices, quantities):\n"
    "        result += p * q\n"
    "    return result\n"
    "\n"
    "\n"
    "def report(prices, quantities):\n"
    "    print(total(prices, quantities))\n" + FILLER + "\n\ndef last():\n    return 1\n"
)
# Three hunks: the signature, the return two lines below, and one 50 lines further.
V2 = (
    V1.replace("def total(prices, quantities):", "def total(prices, quantities, tax):")
    .replace("    return result\n", "    return result * (1 + tax)\n")
    .replace("    return 1\n", "    return 2\n")
)
# An insertion and, three lines below it, a deletion.
V3 = V2.replace("    result = 0\n", "    result = 0\n    count = 0\n    seen = set()\n").replace(
    "    print(total(prices, quantities))\n", ""
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "bench")
    for n, text in enumerate((V1, V2, V3)):
        (repo / "shop.py").write_text(text)
        (repo / "notes.txt").write_text(f"not python {n}\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", f"version {n + 1}")
    return repo


def test_hunk_headers_are_zero_based_lines() -> None:
    assert parse_hunk("@@ -1 +1 @@") == Hunk(0, 1, 0, 1)
    assert parse_hunk("@@ -5,2 +5,3 @@ def f():") == Hunk(4, 2, 4, 3)
    assert parse_hunk("@@ -2,0 +3,2 @@") == Hunk(2, 0, 2, 2)  # inserted after old line 2
    assert parse_hunk("@@ -9 +10,0 @@") == Hunk(8, 1, 10, 0)  # deleted; new text goes on at 10


def test_file_changes_list_python_files_newest_first(repo: Path) -> None:
    changes = file_changes(repo, 10)
    assert [c.path for c in changes] == ["shop.py", "shop.py"]  # notes.txt is not Python
    newest, older = changes
    assert newest.hunks == (Hunk(2, 0, 2, 2), Hunk(8, 1, 10, 0))
    assert [(h.old, h.new) for h in older.hunks] == [(0, 0), (4, 4), (V1.count("\n") - 1,) * 2]


def test_cases_have_the_history_cursor_and_truth_of_the_edit_sequence(repo: Path) -> None:
    head, first = git(repo, "rev-parse", "HEAD", "HEAD~1").split()
    by = {(c.commit, c.hunk): c for c in select_cases(repo, 10, 50, 0, per_file=5)}
    assert set(by) == {(first, 1), (first, 2), (first, 3), (head, 1), (head, 2)}

    # After the signature: the return two lines below is the next edit, in the region.
    one = by[first, 1]
    sig = "def total(prices, quantities, tax):"
    assert one.text == V1.replace("def total(prices, quantities):", sig)
    assert one.cursor == len(sig) and one.cursor_line == 0
    assert one.changed and one.next_hunk_line == 4
    assert one.region[0] == 0 and one.region[1] > 4
    assert one.expected == one.text.replace(
        "    return result\n", "    return result * (1 + tax)\n"
    )
    assert one.expected_region.startswith(sig + "\n") and "(1 + tax)" in one.expected_region
    assert len(one.history) == 1
    assert "-def total(prices, quantities):\n+" + sig in one.history[0].diff

    # After the return: the next hunk is 50 lines down, outside the region.
    two = by[first, 2]
    assert two.text[: two.cursor].endswith("    return result * (1 + tax)")
    assert two.cursor_line == 4 and not two.changed and two.expected == two.text
    assert two.next_hunk_line is not None and two.next_hunk_line >= two.region[1]
    assert [("(1 + tax)" in e.diff, "tax):" in e.diff) for e in two.history] == [
        (True, False),  # most recent first
        (False, True),
    ]

    # The last hunk: nothing follows; its history holds all three hunks.
    three = by[first, 3]
    assert three.text == V2 and not three.changed and three.next_hunk_line is None
    assert three.text[: three.cursor].endswith("def last():\n    return 2")
    assert len(three.history) == 3 and "+    return 2" in three.history[0].diff

    # An insertion: the cursor ends its last line; the deletion 3 lines below is next.
    ins = by[head, 1]
    assert ins.text[: ins.cursor].endswith("    result = 0\n    count = 0\n    seen = set()")
    assert ins.changed and ins.expected == V3
    # A deletion: the cursor at the start of the line after it.
    dele = by[head, 2]
    assert dele.text == V3 and not dele.changed
    assert dele.text[dele.cursor :].startswith(FILLER[:20])


def test_selection_is_seeded_deduplicated_and_split_by_kind(repo: Path) -> None:
    ids = [c.id for c in select_cases(repo, 10, 4, seed=3)]
    assert ids == [c.id for c in select_cases(repo, 10, 4, seed=3)]
    assert len(ids) == len(set(ids)) == 4
    picked = select_cases(repo, 10, 2, seed=3)
    assert sorted(c.changed for c in picked) == [False, True]
    assert len(select_cases(repo, 10, 4, seed=3, per_file=1)) == 2
    # --rev pins the history: up to the first change only.
    first = git(repo, "rev-parse", "HEAD~1").strip()
    assert {c.commit for c in select_cases(repo, 10, 50, 0, rev="HEAD~1")} == {first}
    # Hunk size caps: every hunk has a line on one side at least.
    assert select_cases(repo, 10, 50, 0, max_lines=0) == []


def test_similarity_is_one_minus_normalized_levenshtein() -> None:
    assert similarity("abc", "abc") == 1.0
    assert similarity("", "") == 1.0
    assert similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert similarity("x" * 50 + "ab" + "y" * 48, "x" * 50 + "b" + "y" * 48) == 0.99


def test_runs_on_the_tiny_model_and_prints_both_methods(
    tiny_model_dir: Path, repo: Path, tmp_path: Path
) -> None:
    # This repository's own history when the checkout has it (not a shallow clone).
    history = subprocess.run(
        ["git", "-C", str(ROOT), "rev-list", "--count", "HEAD"], capture_output=True, text=True
    )
    source = ROOT if history.returncode == 0 and int(history.stdout or 0) >= 20 else repo
    out, report = tmp_path / "cases.json", tmp_path / "BENCHMARKS.md"
    cases, answers, body = main(
        ["--model", str(tiny_model_dir), "--repo", str(source), "--commits", "30"]
        + ["--cases", "4", "--threads", "1", "--json", str(out), "--out", str(report)]
    )
    assert 1 <= len(cases) <= 4
    assert {m: len(rows) for m, rows in answers.items()} == {
        "next-edit": len(cases),
        "completion": len(cases),
        "no edit": len(cases),
    }
    assert "| next-edit (generic) |" in body and "| completion |" in body
    assert "| no edit |" in body
    written = report.read_text()
    assert "\n## Next-edit suggestions\n" in written and "<!-- next-edit:" in written
    saved = json.loads(out.read_text())
    assert len(saved) == len(cases) and set(saved[0]["answers"]) == set(answers)
    for case, row in zip(cases, answers["no edit"], strict=True):
        assert not row.shown and row.exact == (not case.changed)
