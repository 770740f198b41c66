"""Next-edit suggestions: region selection, prompt formats, diff to edits, the filters,
and the pipeline on a scripted model (exact replies) and the tiny real model."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mmlsp.config import Settings
from mmlsp.context.history import EditHistory
from mmlsp.context.region import MAX_LINES, editable_region
from mmlsp.next_edit import Inputs, Resync, build_request, predict
from mmlsp.postprocess.next_edit import (
    TextEdit,
    apply,
    follow,
    region_edits,
    repeats_below,
    worth_showing,
)
from mmlsp.prompt import next_edit as formats
from mmlsp.syntax.languages import parse
from tests.scripted_engine import ScriptedEngine, scripted_host

GOLDEN = Path(__file__).parent / "golden" / "next_edit"

SOURCE = """import os


def total(prices, quantities):
    result = 0
    for price, qty in zip(prices, quantities):
        result += price * qty
    return result


def describe(item):
    return f"{item.name}: {item.price}"
"""


# -- the region -----------------------------------------------------------------------


def test_region_is_a_window_around_the_cursor_without_a_tree():
    assert editable_region(100, 50) == editable_region(100, 50, None)
    region = editable_region(100, 50)
    assert region.start < 50 < region.end and len(region) <= MAX_LINES


def test_region_edges_do_not_cut_a_bracketed_call():
    lines = ["x = 1"] * 10 + ["call("] + [f"    arg{i}," for i in range(6)] + [")"] + ["y = 2"] * 5
    text = "\n".join(lines) + "\n"
    tree = parse(text, "python")
    # Without the tree, the window's end (cursor 2 + 12 + 1 = line 15) cuts the call.
    assert editable_region(len(lines), 2).end == 15
    region = editable_region(len(lines), 2, tree)
    assert region.end == 18  # the call (lines 10-17) is whole
    # Far from the cursor, the edge moves in instead of growing past the cap.
    long_call = ["x = 1"] * 3 + ["call("] + [f"    a{i}," for i in range(40)] + [")"]
    text = "\n".join(long_call) + "\n"
    region = editable_region(len(long_call), 1, parse(text, "python"))
    assert region.end == 3  # stops before the call starts


def test_region_edge_between_statements_stays():
    text = "\n".join(f"v{i} = {i}" for i in range(60)) + "\n"
    assert editable_region(60, 30, parse(text, "python")) == editable_region(60, 30)


# -- diff to edits ----------------------------------------------------------------------


def test_region_edits_are_minimal_and_reproduce_the_new_region():
    old = "a = 1\nb = compute(x)\nc = 3\n"
    new = "a = 1\nb = compute(x, y)\nc = 3\nd = 4\n"
    edits = region_edits(old, new, offset=100)
    assert edits == [TextEdit(113 + 1, 113 + 1, ", y"), TextEdit(121, 121, "d = 4\n")] or all(
        e.end - e.start <= 1 for e in edits
    )
    assert apply("#" * 100 + old, edits) == "#" * 100 + new
    assert region_edits(old, old) == []


def test_deleting_a_line_is_one_edit():
    old = "a\nb\nc\n"
    edits = region_edits(old, "a\nc\n")
    assert edits == [TextEdit(2, 4, "")]


# -- the filters --------------------------------------------------------------------------


def test_no_change_and_whitespace_only_are_not_shown():
    text = "x = f(1)\n"
    assert worth_showing(text, [], before_last_edit=None, language="python") == "no change"
    spaced = [TextEdit(5, 5, " ")]
    assert worth_showing(text, spaced, before_last_edit=None, language="python") == (
        "whitespace only"
    )


def test_an_edit_that_undoes_the_last_one_is_not_shown():
    before, now = "x = 1\n", "x = 12\n"
    undo = [TextEdit(5, 6, "")]
    assert worth_showing(now, undo, before_last_edit=before, language="python") == (
        "undoes your last edit"
    )
    other = [TextEdit(6, 6, "\ny = 2")]
    assert worth_showing(now, other, before_last_edit=before, language="python") is None


def test_an_edit_that_adds_syntax_errors_is_not_shown():
    text = "def f(x):\n    return x\n"
    broken = [TextEdit(21, 22, "x +")]  # return x +
    assert worth_showing(text, broken, before_last_edit=None, language="python") == (
        "more syntax errors"
    )


def test_a_rewrite_that_copies_the_code_below_is_caught():
    old, below = "a = 1\n", "def g():\n    return 2\n\nx = g()\n"
    assert repeats_below(old, "a = 1\ndef g():\n    return 2\n", below)
    assert not repeats_below(old, "a = 1\nb = 2\nc = 3\n", below)
    assert not repeats_below(old, "a = 1\nx = g()\n", below)  # one line is not a copy


def test_typing_what_was_predicted_keeps_the_rest_of_it():
    source, target = "def f(a):\n    g(a)\n", "def f(a, b):\n    g(a, b)\n"
    edits = region_edits(source, target)
    assert [e.text for e in edits] == [", b", ", b"]
    now = "def f(a, \n    g(a)\n".replace("a, \n", "a, ):\n")  # typed ", "
    left = follow(source, now, edits)
    assert left is not None and apply(now, left) == target
    assert [e.text for e in left] == ["b", ", b"]
    now = "def f(a, b):\n    g(a)\n"  # the first edit done: the second is left
    assert (left := follow(source, now, edits)) is not None and apply(now, left) == target
    assert follow(source, "def f(a, c):\n    g(a)\n", edits) is None  # typed otherwise
    assert follow(source, "def f(a):\n    h(a)\n", edits) is None  # elsewhere


# -- resync -------------------------------------------------------------------------------


def test_resync_stops_once_the_rewrite_copies_old_lines_again():
    old = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
    check = Resync(old, (formats.FILE_SEP,))
    assert check("a = 1\nb = 2\nc = 3\n") is None  # still copying
    text = "a = 1\nb = 22\nc = 3\nd = 4\n"
    cut = check(text)
    assert cut == len(text) and check.tail == "e = 5\n"
    check = Resync(old, (formats.FILE_SEP,))
    assert check("a = 1\n<|file_sep|>") == 6 and check.tail == ""
    # A copied cursor marker is not a change: copying on after it does not resync.
    check = Resync(old, (formats.ZETA_END,))
    assert check(f"a = 1{formats.ZETA_CURSOR}\nb = 2\nc = 3\n") is None
    marked = f"a = 1{formats.ZETA_CURSOR}\nb = 22\nc = 3\nd = 4\n"
    assert check(marked) == len(marked) and check.tail == "e = 5\n"


# -- formats --------------------------------------------------------------------------------


def request() -> formats.Request:
    history = [
        formats.HistoryEntry(
            "shop.py",
            "def total(prices, quantities):\n",
            "def total(prices, quantities, tax):\n",
            "@@ -4,1 +4,1 @@\n-def total(prices, quantities):\n"
            "+def total(prices, quantities, tax):\n",
        )
    ]
    return formats.Request(
        path="shop.py",
        above="import os\n\n\n",
        region="def total(prices, quantities, tax):\n    result = 0\n",
        cursor=len("def total(prices, quantities, tax"),
        below="    return result\n",
        original="def total(prices, quantities):\n    result = 0\n",
        file_start=True,
        history=history,
        related=[("util.py", "def rate():\n    return 0.2\n")],
    )


@pytest.mark.parametrize("name", formats.FORMATS)
def test_prompt_formats_match_their_golden_files(name):
    prompt = formats.build(name, request())
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("MMLSP_WRITE_GOLDEN"):  # after a deliberate change, then reviewed
        golden.write_text(prompt.text)
    assert prompt.text == golden.read_text()
    assert prompt.stops


def test_format_detection():
    assert formats.choose_format("auto", "zed-industries/zeta", ()) == ("zeta", "model name")
    assert formats.choose_format("auto", "sweepai/sweep-next-edit-1.5B", ())[0] == "sweep"
    assert formats.choose_format("auto", "Qwen/Qwen2.5-Coder-1.5B", ())[0] == "generic"
    assert formats.choose_format("auto", "x", {formats.ZETA_START})[0] == "zeta"
    assert formats.choose_format("sweep", "x", ()) == ("sweep", "setting")


def test_region_from_keeps_line_endings_and_drops_markers():
    r = request()
    assert formats.region_from("a\n" + formats.ZETA_CURSOR + "b", r) == "a\nb\n"


# -- the pipeline --------------------------------------------------------------------------


def history_after(before: str, after: str, uri: str) -> EditHistory:
    history = EditHistory()
    start = next(i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b)
    history.record(uri, before, after, (start, start, start + len(after) - len(before)))
    return history


def run_predict(tmp_path, replies, text, offset, history=None, fmt="generic"):
    engine = ScriptedEngine(replies)
    host = scripted_host(engine, tmp_path)
    uri = "file:///w/shop.py"
    inputs = Inputs(
        uri=uri,
        path="shop.py",
        history=history.recent(4000) if history else (),
        language="python",
        format=fmt,
    )
    try:
        return asyncio.run(predict(text, offset, Settings(), host, inputs)), engine
    finally:
        host.shutdown()


def test_pipeline_turns_the_rewrite_into_an_edit_at_the_call_site(tmp_path):
    before = SOURCE
    after = SOURCE.replace("def total(prices, quantities)", "def total(prices, quantities, tax)")
    history = history_after(before, after, "file:///w/shop.py")
    text = after + "\nprint(total([1], [2]))\n"
    offset = text.index("tax") + 3
    inputs = Inputs(uri="file:///w/shop.py", path="shop.py", history=history.recent(4000))
    req, region, lo, before_last = build_request(text, offset, inputs, Settings(), len)
    assert req.original.startswith("\n\ndef total(prices, quantities):") or (
        "def total(prices, quantities):" in req.original
    )
    assert before_last is not None and "def total(prices, quantities):" in before_last
    new_region = req.region.replace("print(total([1], [2]))", "print(total([1], [2], 0.2))")
    assert new_region != req.region
    prediction, engine = run_predict(
        tmp_path, [new_region + formats.FILE_SEP], text, offset, history=history
    )
    assert prediction.reason is None, prediction.reason
    assert [e.text for e in prediction.edits] == [", 0.2"]
    assert apply(text, prediction.edits) == text.replace("[2]))", "[2], 0.2))")
    prompt = engine.prompts[0]
    history = prompt[prompt.index("<|file_sep|>shop.py.diff\noriginal:\n") :]
    assert history.index("def total(prices, quantities):") < history.index("updated:")


def test_pipeline_shows_nothing_when_the_model_keeps_the_region(tmp_path):
    offset = SOURCE.index("result = 0")
    text = SOURCE
    inputs = Inputs(uri="u", path="shop.py")
    req, *_ = build_request(text, offset, inputs, Settings(), len)
    prediction, _ = run_predict(tmp_path, [req.region + formats.FILE_SEP], text, offset)
    assert prediction.edits == [] and prediction.reason == "no change"


def test_pipeline_drops_a_rewrite_that_never_ends(tmp_path):
    offset = SOURCE.index("result = 0")
    # The model's text ends before the region's end marker: taken as the region, it
    # would delete the rest of it.
    prediction, _ = run_predict(tmp_path, ["x = 1\n"], SOURCE, offset)
    assert prediction.edits == [] and prediction.reason == "rewrite unfinished"
    # Sweep's region ends where the model's text ends.
    inputs = Inputs(uri="u", path="shop.py")
    req, *_ = build_request(SOURCE, offset, inputs, Settings(), len)
    rewritten = req.region.replace("result = 0", "result = 0.0")
    prediction, _ = run_predict(tmp_path, [rewritten], SOURCE, offset, fmt="sweep")
    assert [e.text for e in prediction.edits] == [".0"]
