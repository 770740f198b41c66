"""Acceptance journeys for the AI actions and image hover: a person in real Neovim, in tmux.

Each installed Neovim (0.11.x and Debian's 0.7.2) runs in tmux with the journeys'
minimal configuration (``clients/nvim/tests/journey_init.lua``) and one mmlsp server
whose chat model is the real built-in SmolLM2-135M-Instruct and whose vision model is
the tiny random-weight LLaVA the tests build (``tests/tiny_vlm.py``); completions,
which these journeys do not use, come from the tiny text model. The person:

- puts the cursor on a comment that describes code, opens the code-action menu,
  picks "Generate code with AI", watches the progress in the echo area
  ("mmlsp: writing the code: writing: …"), sees the code inserted below the comment
  and "…: done", and takes it back with ``u`` (a $/progress handler of the user's own,
  set in the configuration, still saw every message); then starts it again and stops
  it with ``:MmlspCancel`` ("…: cancelled", the buffer unchanged);
- selects a function, runs ``:MmlspEdit``, types the instruction into the
  ``vim.ui.input`` prompt, watches the progress, sees the rewritten function, and
  takes it back with one ``u``;
- presses ``K`` on an image path in a comment (a PNG the test draws): the hover shows
  the file's name, format and size and says to hover again; the next ``K`` shows the
  vision model's description (noise, from random weights) under them.

Everything is read off the screen (``tmux capture-pane``). Waits are generous and
nothing asserts on time; each step prints how long it took. The instruction and the
comment are ones SmolLM2-135M (greedy) carries out here; a refusal fails the journey
with the server's message.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.acceptance_nvim import NvimInTmux, Timings
from tests.test_nvim import FINDERS
from tests.test_nvim_journeys import (
    CLOSE_FLOATS,
    Journey,
    _message,
    close_journey,
    journey_binary,
    journey_env,
    wait_models_ready,
)
from tests.tiny_vlm import draw_mockup

pytestmark = pytest.mark.slow

CHAT_MODEL = "builtin:smollm2-135m-instruct"
READY_TIMEOUT = 300  # the tiny model, the chat model and the vision model loaded
STEP_TIMEOUT = 300  # one chat-model action on a busy 2-core machine
QUICK_TIMEOUT = 30  # what needs no model

GENERATE = "# return the sum of the squares of the numbers in a list\n"
GREET = 'def greet(name):\n    return "Hello, " + name\n'
INSTRUCTION = "use an f-string"
FORM = '''"""The sign-up form."""


# The layout follows docs/mockup.png
def build_form():
    return None
'''
# The server's progress titles (mmlsp/features/actions/service.py).
WRITING = "mmlsp: writing the code"
EDITING = "mmlsp: editing the code"
REFUSED = re.compile(r"nothing was changed|failed|[Ee]rror|[Ww]arning")


@pytest.fixture(scope="module")
def timings(request):
    t = Timings()
    yield t
    if t.steps:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(t.table())
        else:
            print(t.table())


@pytest.fixture(scope="module", params=list(FINDERS))
def journey(
    request,
    tmp_path_factory: pytest.TempPathFactory,
    timings: Timings,
    tiny_model_dir: Path,
    tiny_vlm_dir: Path,
):
    """Neovim in tmux with the chat model and the vision model loaded."""
    version = request.param
    binary = journey_binary(version)
    tmp = tmp_path_factory.mktemp(f"ai-journey-{version}")
    work = tmp / "work"
    work.mkdir()
    (work / "gen.py").write_text(GENERATE, encoding="utf-8")
    (work / "greet.py").write_text(GREET, encoding="utf-8")
    (work / "form.py").write_text(FORM, encoding="utf-8")
    (work / "pyproject.toml").write_text("[project]\nname = 'journey'\n", encoding="utf-8")
    draw_mockup(work / "docs" / "mockup.png")
    env = journey_env(
        tmp,
        MMLSP_JOURNEY_MODEL=str(tiny_model_dir),
        MMLSP_JOURNEY_CHAT_MODEL=CHAT_MODEL,
        MMLSP_JOURNEY_VISION_MODEL=str(tiny_vlm_dir),
        MMLSP_JOURNEY_USER_PROGRESS="1",
    )
    nv = NvimInTmux(binary, work, env)
    nv.start("gen.py")
    j = Journey(nv, version, work, timings)
    try:
        nv.wait_text(r"# return the sum", QUICK_TIMEOUT, "gen.py on screen")
        wait_models_ready(j)
        yield j
    finally:
        close_journey(nv, tmp, version)


def _bottom(nv: NvimInTmux) -> str:
    """The last screen row: the echo area."""
    rows = nv.text().splitlines()
    return rows[-1] if rows else ""


def _buffer_rows(nv: NvimInTmux) -> list[str]:
    """The buffer's rows on screen (sign column dropped), up to the first "~" row."""
    out = []
    for row in nv.text().splitlines():
        if row.startswith("~"):
            break
        out.append(row[2:])
    return out


def _open_code_actions(journey: Journey, title: str) -> None:
    """The code-action menu at the cursor, and ``title`` picked from it by its number."""
    nv = journey.nv
    if journey.version == "0.7":
        nv.command("lua vim.lsp.buf.code_action()")
    else:
        nv.type("gra")  # 0.11's default mapping
    match = nv.wait_text(rf"(?m)^\s*(\d+): {re.escape(title)}\s*$", QUICK_TIMEOUT, title)
    nv.type(match.group(1))
    nv.keys("Enter")


def _watch(nv: NvimInTmux, title: str, done, timeout: float) -> tuple[list[str], object]:
    """Polls the screen until ``done()`` returns something, keeping every distinct
    progress line of ``title`` shown in the echo area meanwhile."""
    seen: list[str] = []

    def poll():
        bottom = _bottom(nv)
        if bottom.startswith(title) and (not seen or seen[-1] != bottom):
            seen.append(bottom)
        return done()

    return seen, nv.wait_for(f"the end of {title!r}", poll, timeout, interval=0.2)


def test_generate_from_a_comment_shows_progress_and_inserts_code(journey: Journey) -> None:
    nv = journey.nv
    journey.reset("gen.py")
    journey.cursor_to(1, "return")
    start = time.monotonic()
    _open_code_actions(journey, "Generate code with AI")

    def outcome():
        rows = _buffer_rows(nv)
        if len(rows) > 1 and rows[1].strip():
            return "inserted"
        message = _message(nv.text().splitlines())
        if REFUSED.search(message) and not message.startswith(WRITING):
            return message
        return None

    seen, result = _watch(nv, WRITING, outcome, STEP_TIMEOUT)
    seconds = time.monotonic() - start
    assert result == "inserted", f"Generate code with AI failed: {result}\n{nv.text()}"
    code = [r.strip() for r in _buffer_rows(nv)[1:] if r.strip()]
    journey.step("generate from comment", seconds, " | ".join(code)[:70])
    print(f"progress lines seen: {seen}")
    assert any(re.search(r": (thinking…|writing: .+)$", s) for s in seen), (
        f"no progress while the model wrote: {seen}\n{nv.text()}"
    )
    nv.wait_text(rf"(?m)^{re.escape(WRITING)}: done\s*$", QUICK_TIMEOUT, "…: done")
    assert _buffer_rows(nv)[0] == GENERATE.rstrip("\n"), nv.text()
    assert code and code[0].startswith("def "), f"not a function: {code}\n{nv.text()}"

    nv.keys("u")
    nv.wait_for(
        "the code taken back by u",
        lambda: [r for r in _buffer_rows(nv) if r.strip()] == [GENERATE.rstrip("\n")],
        QUICK_TIMEOUT,
    )
    # The user's own $/progress handler (journey_init.lua) still saw the progress.
    nv.command("echo 'user handler saw ' . g:user_progress . ' progress messages'")
    saw = nv.wait_text(r"user handler saw (\d+) progress messages", QUICK_TIMEOUT)
    assert int(saw.group(1)) >= len(seen), saw.group(0)


def test_cancel_stops_a_running_action(journey: Journey) -> None:
    nv = journey.nv
    journey.reset("gen.py")
    journey.cursor_to(1, "return")
    _open_code_actions(journey, "Generate code with AI")
    nv.wait_for("progress in the echo area", lambda: _bottom(nv).startswith(WRITING), STEP_TIMEOUT)
    start = time.monotonic()
    nv.command("MmlspCancel")
    nv.wait_text(rf"(?m)^{re.escape(WRITING)}: cancelled\s*$", QUICK_TIMEOUT, "…: cancelled")
    journey.step(":MmlspCancel", time.monotonic() - start, _bottom(nv))
    time.sleep(2)  # nothing arrives late
    assert [r for r in _buffer_rows(nv) if r.strip()] == [GENERATE.rstrip("\n")], nv.text()
    nv.dismiss_prompt()


def test_edit_by_instruction_in_the_input_prompt(journey: Journey) -> None:
    nv = journey.nv
    journey.reset("greet.py")
    nv.command("call cursor(1, 1)")
    nv.type("Vj:")
    nv.wait_text(r"(?m)^:'<,'>", QUICK_TIMEOUT, "the visual range on the command line")
    nv.type("MmlspEdit")
    nv.keys("Enter")
    nv.wait_text(r"(?m)^mmlsp edit:", QUICK_TIMEOUT, "the instruction prompt")
    nv.type(INSTRUCTION, delay=0.03)
    start = time.monotonic()
    nv.keys("Enter")

    def outcome():
        rows = _buffer_rows(nv)
        if len(rows) > 1 and rows[1].strip() != GREET.splitlines()[1].strip():
            return "edited"
        message = _message(nv.text().splitlines())
        if REFUSED.search(message) and not message.startswith(EDITING):
            return message
        return None

    seen, result = _watch(nv, EDITING, outcome, STEP_TIMEOUT)
    seconds = time.monotonic() - start
    assert result == "edited", f":MmlspEdit {INSTRUCTION!r} failed: {result}\n{nv.text()}"
    rows = [r.strip() for r in _buffer_rows(nv) if r.strip()]
    journey.step(":MmlspEdit", seconds, " | ".join(rows)[:70])
    print(f"progress lines seen: {seen}")
    assert any(re.search(r": (thinking…|writing: .+)$", s) for s in seen), (
        f"no progress while the model wrote: {seen}\n{nv.text()}"
    )
    assert rows[0] == "def greet(name):" and re.search(r"return f[\"'].*\{name\}", rows[1]), (
        f"not an f-string: {rows}"
    )

    nv.keys("Escape", "u")
    want = [line.strip() for line in GREET.splitlines()]
    nv.wait_for(
        "one u taking the edit back",
        lambda: [r.strip() for r in _buffer_rows(nv) if r.strip()] == want,
        QUICK_TIMEOUT,
    )


def _hover_lines(nv: NvimInTmux) -> list[str]:
    """The hover float's rows: from the row naming the image, each row cut at the
    float's left edge (the float overlays the buffer), up to the float's end."""
    rows = nv.text().splitlines()
    for i, row in enumerate(rows):
        match = re.search(r"Image\b.*mockup\.png", row)
        if match and "PNG" in row:
            col = match.start()
            while col > 0 and row[col - 1] in "*│":
                col -= 1
            out = []
            for below in rows[i:]:
                part = below[col:].strip(" │╭╮╰╯")
                if not part:
                    break
                out.append(part)
            return out
    return []


def test_hover_on_an_image_path_describes_it(journey: Journey) -> None:
    nv = journey.nv
    journey.reset("form.py")
    journey.cursor_to(4, "mockup")
    start = time.monotonic()
    pending: list[str] = []

    def answered():
        nv.command(CLOSE_FLOATS)
        nv.keys("K")
        time.sleep(1.5)
        lines = _hover_lines(nv)
        if not lines:
            return None
        if re.search(r"hover again", " ".join(lines)):
            pending.append(" ".join(lines))  # the first hover: described in the background
            return None
        return lines

    lines = nv.wait_for("the image described in the hover", answered, STEP_TIMEOUT, interval=1)
    seconds = time.monotonic() - start
    header = lines[0]
    assert re.search(r"docs/mockup\.png", header) and re.search(r"PNG 160×100", header), lines
    body = [ln for ln in lines[1:] if ln.strip() and not re.fullmatch(r"[-─]+", ln)]
    note = " ".join(body)
    journey.step("image hover (K)", seconds, f"{len(pending)} 'hover again' first; {note[:50]}")
    print(f"first hovers: {pending}\nthen: {lines}")
    # Under the name, the vision model's answer: a description, or (the tiny model's
    # random weights write noise, which the server refuses) the server saying so. Never
    # the name alone, nor a hover still waiting.
    assert body, f"nothing under the image's name: {lines}\n{nv.text()}"
    assert not re.search(r"is loading|describing this image", note), lines
    nv.command(CLOSE_FLOATS)
