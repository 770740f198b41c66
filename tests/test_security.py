"""Safe defaults: nothing leaves the machine, user code and model output are never run."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.lsp_helpers import inline, lsp_session, open_doc, wait_for_state

PACKAGE = Path(__file__).resolve().parent.parent / "mmlsp"
# Builtins that run code, and os functions that start programs.
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_OS = {"system", "popen", "startfile", "fork", "forkpty"}
FORBIDDEN_OS_PREFIXES = ("exec", "spawn", "posix_spawn")
FORBIDDEN_MODULES = {"subprocess", "pty", "runpy", "code", "codeop"}


def _network_sockets(pid: int) -> list[str]:
    """The process's TCP/UDP sockets (unix socketpairs, as asyncio uses, are not network)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = str(fd.readlink())
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            if len(fields) > 9 and fields[9] in inodes:
                found.append(f"{table}: {fields[1]} -> {fields[2]}")
    return found


async def test_local_server_opens_no_network_sockets(tiny_model_dir, tmp_path):
    """With the default (local) backend, the server process holds no TCP/UDP socket."""
    async with lsp_session(["--model", str(tiny_model_dir)], tmp_path) as client:
        assert (await wait_for_state(client))["state"] == "ready"
        uri = "file:///sec/a.py"
        open_doc(client, uri, "import os\nx = os.path.")
        await inline(client, uri, 1, 12)
        assert _network_sockets(client._server.pid) == []


def parse(path: Path) -> ast.Module:
    """``ast.parse``, retried: CPython 3.11's AST builder can raise a spurious SystemError
    ("AST constructor recursion depth mismatch", gh-106905) after an earlier failed parse
    elsewhere in the process; it failed once in a full-suite run, never alone."""
    for attempt in range(3):
        try:
            return ast.parse(path.read_text(), filename=str(path))
        except SystemError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_product_code_never_executes_code_or_starts_programs():
    """User code and model output are data: no eval/exec/subprocess anywhere in mmlsp/."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = parse(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name.split(".")[0] for alias in node.names]
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.append(node.module.split(".")[0])
                offenders += [f"{path.name}: import {n}" for n in names if n in FORBIDDEN_MODULES]
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                    offenders.append(f"{path.name}:{node.lineno}: {func.id}()")
                elif (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "os"
                    and (func.attr in FORBIDDEN_OS or func.attr.startswith(FORBIDDEN_OS_PREFIXES))
                ):
                    offenders.append(f"{path.name}:{node.lineno}: os.{func.attr}()")
    assert offenders == []


def _model_with_remote_code(model_dir: Path, out: Path, marker: Path) -> Path:
    """The tiny model plus a config that names Python code shipped beside the weights.

    The code only writes ``marker``, so the test can see whether it ever ran.
    """
    import json
    import shutil

    shutil.copytree(model_dir, out)
    config = json.loads((out / "config.json").read_text())
    # A model type transformers does not know: only the shipped code can load it.
    config["model_type"] = "remote_only"
    config["auto_map"] = {
        "AutoConfig": "remote_model.RemoteConfig",
        "AutoModelForCausalLM": "remote_model.RemoteModel",
    }
    (out / "config.json").write_text(json.dumps(config))
    (out / "remote_model.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import Qwen2Config, Qwen2ForCausalLM\n"
        "class RemoteConfig(Qwen2Config):\n"
        "    model_type = 'remote_only'\n"
        "class RemoteModel(Qwen2ForCausalLM):\n"
        "    config_class = RemoteConfig\n"
    )
    return out


def test_remote_code_runs_only_when_the_user_turns_it_on(tiny_model_dir, tmp_path):
    import pytest

    from mmlsp.engine.base import EngineError
    from mmlsp.engine.local import LocalEngine

    marker = tmp_path / "ran.txt"
    model = _model_with_remote_code(tiny_model_dir, tmp_path / "remote", marker)
    with pytest.raises(EngineError, match="trust_remote_code"):
        LocalEngine(str(model), device="cpu", cache_dir=tmp_path / "cache")
    assert not marker.exists()
    LocalEngine(str(model), device="cpu", cache_dir=tmp_path / "cache", trust_remote_code=True)
    assert marker.read_text() == "ran"


def test_workspace_settings_cannot_turn_on_remote_code():
    from mmlsp.cli import build_parser, settings_from_args
    from mmlsp.config import Settings, from_environment, merge

    # What an editor sends (initializationOptions, didChangeConfiguration) may come
    # from a cloned repository's own settings file.
    for raw in ({"trustRemoteCode": True}, {"mmlsp": {"trustRemoteCode": "on"}}):
        settings, errors = merge(Settings(), raw)
        assert settings.trust_remote_code is False
        assert any("--trust-remote-code" in error for error in errors)
    # The user's own launch can.
    assert from_environment({"MMLSP_TRUST_REMOTE_CODE": "1"})[0].trust_remote_code is True
    args = build_parser().parse_args(["--trust-remote-code"])
    assert settings_from_args(args)[0].trust_remote_code is True
    assert settings_from_args(build_parser().parse_args([]))[0].trust_remote_code is False


async def test_trust_remote_code_flag_reaches_the_loader_through_the_server(
    tiny_model_dir, tmp_path
):
    marker = tmp_path / "ran.txt"
    model = _model_with_remote_code(tiny_model_dir, tmp_path / "remote", marker)
    async with lsp_session(["--model", str(model)], tmp_path / "c1") as client:
        refused = await wait_for_state(client)
    assert refused["state"] == "failed" and "trust_remote_code" in refused["message"]
    assert not marker.exists()
    flags = ["--model", str(model), "--trust-remote-code"]
    async with lsp_session(flags, tmp_path / "c2", {"trustRemoteCode": False}) as client:
        # The editor cannot turn it off either: only the user's launch decides.
        assert (await wait_for_state(client))["state"] == "ready"
    assert marker.read_text() == "ran"
