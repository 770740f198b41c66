"""Cross-file context: names near the cursor, ranking, dedupe, budget, stable order."""

from __future__ import annotations

from mmlsp.complete import prepare_prompt
from mmlsp.config import Settings
from mmlsp.context.window import build_context
from mmlsp.context.workspace import WorkspaceIndex
from mmlsp.prompt.crossfile import (
    Candidate,
    cross_file_pieces,
    jaccard,
    names_near_cursor,
    select,
)
from mmlsp.prompt.fim import QWEN, ContextPiece

HELPERS = '''def parse_row(line: str) -> list[str]:
    """Split one CSV line."""
    return line.split(",")


def unrelated(x):
    return x
'''
MODELS = '''class Invoice:
    """An invoice."""

    def total(self) -> float:
        return 0.0
'''
MAIN = """from helpers import parse_row
from models import Invoice


def load(path):
    rows = []
    for line in open(path):
        rows.append(parse_row(line))
    inv = Invoice()
    return inv.tot"""


def ctx_for(text: str, offset: int | None = None):
    offset = len(text) if offset is None else offset
    return build_context(
        text, offset, prefix_tokens=2000, suffix_tokens=200, count=len, language="python"
    )


def index_with(**files: str) -> WorkspaceIndex:
    index = WorkspaceIndex()
    for name, text in files.items():
        index.opened(f"file:///proj/{name}.py", text)
    return index


def test_names_near_cursor_nearest_first_without_builtins_or_partial_word() -> None:
    names = names_near_cursor(ctx_for(MAIN))
    assert names[:5] == ["inv", "Invoice", "line", "parse_row", "append"]
    assert "tot" not in names  # being typed
    assert not {"open", "for", "in", "return", "self"} & set(names)


def test_definitions_from_other_files_in_stable_order() -> None:
    index = index_with(helpers=HELPERS, models=MODELS, main=MAIN)
    pieces = cross_file_pieces(index, "file:///proj/main.py", ctx_for(MAIN), 500, len)
    # Ranked by use (Invoice is nearer the cursor) but ordered by path, then line.
    assert [p.path for p in pieces] == ["helpers.py", "models.py"]
    assert pieces[0].text.startswith("def parse_row(line: str) -> list[str]:\n")
    assert '"""Split one CSV line."""' in pieces[0].text
    assert "def total(self) -> float: ..." in pieces[1].text
    assert "unrelated" not in pieces[0].text  # only the definitions that are used


def test_budget_keeps_the_best_ranked_first() -> None:
    index = index_with(helpers=HELPERS, models=MODELS, main=MAIN)
    ctx = ctx_for(MAIN)
    every = cross_file_pieces(index, "file:///proj/main.py", ctx, 10_000, len)
    invoice = next(p for p in every if p.path == "models.py")
    budget = len("# path: models.py\n") + len(invoice.text)
    pieces = cross_file_pieces(index, "file:///proj/main.py", ctx, budget, len)
    assert [p.path for p in pieces] == ["models.py"]  # nearer use wins the tight budget
    assert cross_file_pieces(index, "file:///proj/main.py", ctx, 0, len) == []
    assert cross_file_pieces(None, "file:///proj/main.py", ctx, 500, len) == []


def test_the_current_file_is_never_its_own_context() -> None:
    index = index_with(main=MAIN + "\n\ndef parse_row(x):\n    pass\n")
    assert cross_file_pieces(index, "file:///proj/main.py", ctx_for(MAIN), 500, len) == []


def test_dedupe_by_jaccard() -> None:
    ctx = ctx_for("x = compute(alpha)\n")
    same = "def compute(alpha, beta):\n    return alpha + beta\n"
    found = [
        Candidate("a.py", 0, same, "definition"),
        Candidate("b.py", 0, same.replace("beta", "beta"), "definition"),
        Candidate("c.py", 3, "x = compute(alpha)\n", "edit"),  # what the model sees anyway
        Candidate("d.py", 9, "def other(gamma):\n    ...\n", "definition"),
    ]
    pieces = select(found, ctx, 1000, len)
    assert [p.path for p in pieces] == ["a.py", "d.py"]
    assert jaccard({"a", "b"}, {"a", "b"}) == 1.0 and jaccard({"a"}, {"b"}) == 0.0


def test_recent_edits_elsewhere_are_candidates() -> None:
    index = index_with(main=MAIN)
    notes = "".join(f"setting_{n} = {n}\n" for n in range(20))
    index.opened("file:///proj/config.py", notes)
    index.changed("file:///proj/config.py", notes, [])
    assert cross_file_pieces(index, "file:///proj/main.py", ctx_for(MAIN), 500, len) == []
    from lsprotocol import types

    at = types.Position(10, 0)
    change = types.TextDocumentContentChangePartial(range=types.Range(at, at), text="")
    index.changed("file:///proj/config.py", notes, [change])
    pieces = cross_file_pieces(index, "file:///proj/main.py", ctx_for(MAIN), 500, len)
    assert pieces == [ContextPiece("config.py", "".join(notes.splitlines(True)[6:15]))]


def test_prompt_start_is_stable_while_typing() -> None:
    """The stable parts (labelled cross-file pieces) lead the prompt, keystroke after
    keystroke, in the model's repo format."""
    index = index_with(helpers=HELPERS, models=MODELS)
    settings = Settings(prefix_tokens=2000, suffix_tokens=200, cross_file_tokens=500)
    prompts = []
    for typed in ("a", "al", "al_", "al_s"):
        text = MAIN[: -len("tot")] + typed
        _, prompt = prepare_prompt(
            text,
            len(text),
            settings,
            len,
            QWEN,
            language="python",
            workspace=index,
            uri="file:///proj/main.py",
        )
        prompts.append(prompt)
    head = prompts[0][: prompts[0].index("<|fim_prefix|>")]
    assert head.startswith("<|file_sep|>helpers.py\ndef parse_row(")
    assert "<|file_sep|>models.py\nclass Invoice:" in head
    assert head.endswith("<|file_sep|>main.py\n")
    # The middle opens on line 8 (a multiple of MIDDLE_SNAP_LINES), the line above
    # the cursor's.
    above = "".join(MAIN.splitlines(keepends=True)[:8])
    assert all(p.startswith(head + "<|fim_prefix|>" + above) for p in prompts)
    assert all(b.startswith(a) for a, b in zip(prompts, prompts[1:], strict=False))
    # Without the setting, no cross-file context at all.
    off = Settings(prefix_tokens=2000, suffix_tokens=200, cross_file_tokens=0)
    _, plain = prepare_prompt(
        MAIN, len(MAIN), off, len, QWEN, language="python", workspace=index, uri="file:///x.py"
    )
    assert plain.startswith("<|fim_prefix|>from helpers import")
