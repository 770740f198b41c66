"""The import contract: data flows document → syntax → context → prompt → engine →
post-process → features → LSP server, and no module imports one from a later stage.

The import graph is read from the source with ``ast`` (nothing is imported or run):
every ``import``/``from ... import`` in ``mmlsp/`` and ``bench/``, at module level, in a
function, or under ``TYPE_CHECKING`` alike. Two rules:

* **layers**: a module may import its own layer and the layers below it, never one above;
* **features are the server's**: only ``mmlsp.lsp.server`` (and the features themselves)
  import ``mmlsp.features``; whatever else needs a feature's logic (the CLI, the
  benchmarks) needs it moved below the features.

Every module of ``mmlsp/`` must be placed in a layer, so a new module cannot slip in
unplaced. Imports that break a rule today and need a larger move than one line are
listed in ``KNOWN_VIOLATIONS`` with the move that fixes them; the list must only
shrink, so the test also fails when a listed import is gone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A name covers the module and, for a package, everything in it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Everyone may import these: the package's version, the settings (with the names
    # they accept), and the process's memory hygiene.
    ("foundation", ("mmlsp", "mmlsp.config", "mmlsp.memory")),
    # Document text: LSP positions and offsets; content changes applied exactly.
    ("text", ("mmlsp.text",)),
    # Syntax trees and what is read off them: parsing, the open documents' trees, the
    # lexical shape of a completion, definitions and their facts.
    ("syntax", ("mmlsp.syntax",)),
    # What the model is shown: the text around the cursor, the workspace's definitions.
    ("context", ("mmlsp.context",)),
    # Prompts: FIM templates, cross-file snippets, docstring skeletons.
    ("prompt", ("mmlsp.prompt",)),
    # Models: local and remote engines, their host, template detection.
    ("engine", ("mmlsp.engine",)),
    # From model output to a result: the completion filters; the chat prompts and
    # their reply cleaning (``chat.ask`` sends a chat to the engine host, so chat sits
    # above the engine).
    ("post-process", ("mmlsp.postprocess", "mmlsp.chat")),
    # The completion pipeline for one cursor: context → prompt → engine → post-process,
    # no LSP and no server state; the completion feature, the CLI and the benchmarks
    # all call it.
    ("pipeline", ("mmlsp.complete", "mmlsp.next_edit")),
    # What the user did with suggestions, on their machine: the event store, the model's
    # confidence and the gate, the stats report (the CLI reads them too).
    ("acceptance", ("mmlsp.acceptance",)),
    # The per-document state the server keeps; features read snapshots of it.
    ("session", ("mmlsp.session",)),
    # One module per LSP capability: completion, actions, hover, review, diagnostics.
    ("features", ("mmlsp.features",)),
    # The LSP server: the handler table and the wire.
    ("server", ("mmlsp.lsp",)),
    # Entry points.
    ("entry", ("mmlsp.cli", "mmlsp.__main__")),
)
# Outside mmlsp/: the benchmarks sit above everything (only the features rule applies).
TOOLS = ("bench",)
# Who may import mmlsp.features from outside it.
FEATURE_USERS = frozenset({"mmlsp.lsp.server", "mmlsp.lsp.editor"})

# (importer, imported): each needs a move larger than one line. Remove an entry with
# the move that fixes it; a new violation is never added here without a reason.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def module_files() -> dict[str, Path]:
    """Every module of mmlsp/ and bench/ by dotted name."""
    out: dict[str, Path] = {}
    for top in ("mmlsp", *TOOLS):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported_names(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The mmlsp modules that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            # ``from mmlsp import chat`` imports the module mmlsp.chat.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        yield from (t for t in targets if t == "mmlsp" or t.startswith("mmlsp."))


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {name: set(imported_names(name, path, known)) for name, path in known.items()}


def layer_of(module: str) -> int | None:
    """Index of the module's layer in LAYERS (None: not placed)."""
    for index, (_, names) in enumerate(LAYERS):
        for covered in names:
            if module == covered or (covered != "mmlsp" and module.startswith(covered + ".")):
                return index
    return None


def is_tool(module: str) -> bool:
    return module.partition(".")[0] in TOOLS


def in_features(module: str) -> bool:
    return module == "mmlsp.features" or module.startswith("mmlsp.features.")


def violations(graph: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for importer, targets in graph.items():
        low = None if is_tool(importer) else layer_of(importer)
        for target in targets:
            high = layer_of(target)
            if low is not None and high is not None and high > low:
                found[(importer, target)] = (
                    f"{LAYERS[low][0]} imports {LAYERS[high][0]}, a higher layer"
                )
            elif (
                in_features(target) and not in_features(importer) and importer not in FEATURE_USERS
            ):
                found[(importer, target)] = "only the LSP server imports the features"
    return found


def test_every_module_is_placed_in_a_layer() -> None:
    graph = import_graph()
    unplaced = sorted(m for m in graph if not is_tool(m) and layer_of(m) is None)
    assert not unplaced, f"place these modules in a layer of LAYERS: {unplaced}"
    imported = {t for targets in graph.values() for t in targets}
    assert all(layer_of(t) is not None for t in imported)


def test_no_import_runs_against_the_flow() -> None:
    found = violations(import_graph())
    new = {pair: why for pair, why in found.items() if pair not in KNOWN_VIOLATIONS}
    lines = [f"{a} -> {b}: {why}" for (a, b), why in sorted(new.items())]
    assert not new, "imports against the flow:\n" + "\n".join(lines)


def test_known_violations_still_exist() -> None:
    found = violations(import_graph())
    gone = sorted(pair for pair in KNOWN_VIOLATIONS if pair not in found)
    assert not gone, f"fixed: remove these from KNOWN_VIOLATIONS: {gone}"


def test_the_rules_catch_a_back_import() -> None:
    graph = {
        "mmlsp.config": {"mmlsp.prompt.fim"},  # foundation -> prompt
        "mmlsp.engine.host": {"mmlsp.postprocess"},  # engine -> post-process
        "mmlsp.context.window": {"mmlsp.features.completion"},  # both rules
        "mmlsp.features.completion": {"mmlsp.engine", "mmlsp.features.debounce"},  # fine
        "mmlsp.lsp.server": {"mmlsp.features.completion"},  # fine
        "bench.latency": {"mmlsp.engine", "mmlsp.features.completion"},
    }
    assert set(violations(graph)) == {
        ("mmlsp.config", "mmlsp.prompt.fim"),
        ("mmlsp.engine.host", "mmlsp.postprocess"),
        ("mmlsp.context.window", "mmlsp.features.completion"),
        ("bench.latency", "mmlsp.features.completion"),
    }


def test_relative_imports_resolve(tmp_path: Path) -> None:
    path = tmp_path / "__init__.py"
    path.write_text("from . import pipeline\nfrom .lines import Line\nfrom .. import chat\n")
    known = {"mmlsp.postprocess.pipeline": path, "mmlsp.chat": path}
    names = set(imported_names("mmlsp.postprocess", path, known))
    assert names == {"mmlsp.postprocess.pipeline", "mmlsp.postprocess.lines", "mmlsp.chat"}
