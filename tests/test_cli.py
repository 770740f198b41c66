"""The command line as a newcomer uses it: real subprocesses, real models."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmlsp import __version__

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = "import os\nx = os.path."


def run_mmlsp(*args: str, cache: Path, env: dict[str, str] | None = None, timeout: int = 300):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "MMLSP_CACHE_DIR": str(cache), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mmlsp", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


@pytest.fixture()
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.py"
    path.write_text(SAMPLE)
    return path


def test_version(tmp_path):
    result = run_mmlsp("--version", cache=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"mmlsp {__version__}"


def test_complete_with_local_directory(tiny_model_dir, sample, tmp_path):
    result = run_mmlsp(
        "complete",
        str(sample),
        "--line",
        "1",
        "--character",
        "12",
        "--model",
        str(tiny_model_dir),
        cache=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), result.stderr
    assert "template qwen" in result.stderr


def test_complete_with_gguf_file_matches_directory(tiny_model_dir, tiny_gguf, sample, tmp_path):
    """The GGUF copy of the tiny model holds the same weights, so it suggests the same text
    on torch (dtype set; without it, llama.cpp runs the GGUF as it is)."""
    args = ("complete", str(sample), "--line", "1", "--character", "12", "--dtype", "float32")
    from_dir = run_mmlsp(*args, "--model", str(tiny_model_dir), cache=tmp_path / "a")
    from_gguf = run_mmlsp(*args, "--model", str(tiny_gguf), cache=tmp_path / "b")
    assert from_gguf.returncode == 0, from_gguf.stderr
    assert from_gguf.stdout == from_dir.stdout
    # The conversion is cached, so a second start reads safetensors, not the GGUF.
    converted = list((tmp_path / "b" / "converted").iterdir())
    assert len(converted) == 1 and (converted[0] / ".complete").is_file()
    again = run_mmlsp(*args, "--model", str(tiny_gguf), cache=tmp_path / "b")
    assert again.stdout == from_dir.stdout
    assert "converting" not in again.stderr


def test_model_from_environment(tiny_model_dir, sample, tmp_path):
    result = run_mmlsp(
        "complete",
        str(sample),
        "--line",
        "1",
        "--character",
        "12",
        cache=tmp_path,
        env={"MMLSP_MODEL": str(tiny_model_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert str(tiny_model_dir) in result.stderr


def test_missing_model_is_a_clear_error(sample, tmp_path):
    result = run_mmlsp(
        "complete",
        str(sample),
        "--line",
        "0",
        "--character",
        "0",
        "--model",
        str(tmp_path / "no-such-model"),
        cache=tmp_path,
    )
    assert result.returncode == 1
    assert "model path does not exist" in result.stderr


def test_unreadable_file_and_bad_line(tmp_path, tiny_model_dir):
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00bad")
    result = run_mmlsp("complete", str(binary), "--line", "0", "--character", "0", cache=tmp_path)
    assert result.returncode == 2 and "cannot read" in result.stderr
    short = tmp_path / "short.py"
    short.write_text("x = 1\n")
    result = run_mmlsp("complete", str(short), "--line", "40", "--character", "0", cache=tmp_path)
    assert result.returncode == 2 and "outside" in result.stderr


@pytest.mark.slow
def test_readme_first_command_uses_the_builtin_model():
    """The README's first command: the real Gemma-3-270M shipped on PyPI, fully offline.

    Uses the user's cache dir on purpose, so the one-time GGUF conversion is shared
    with the README command (about two minutes on 2 cores the first time).
    """
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmlsp",
            "complete",
            "examples/demo.py",
            "--line",
            "7",
            "--character",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "template none (prefix only)" in result.stderr
    # Greedy decoding of a real model: the classic recursive answer.
    assert "fibonacci(n - 1)" in result.stdout, result.stdout + result.stderr


def test_dtype_flag_reaches_the_engine(tiny_model_dir, sample, tmp_path):
    args = ["complete", str(sample), "--line", "1", "--character", "12"]
    for dtype in ("bfloat16", "int8"):
        result = run_mmlsp(*args, "--model", str(tiny_model_dir), "--dtype", dtype, cache=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"({dtype}, dynamic decode)" in result.stderr
    default = run_mmlsp(*args, "--model", str(tiny_model_dir), cache=tmp_path)
    assert "(float32, dynamic decode)" in default.stderr


@pytest.mark.parametrize(
    ("target", "line", "character", "says"),
    [
        ("short.py", "-1", "0", "count from 0"),
        ("short.py", "0", "-3", "count from 0"),
        ("short.py", "5", "0", "line 5 is outside"),
        ("short.py", "0", "99", "character 99 is outside line 0"),
        ("missing.py", "0", "0", "does not exist"),
        (".", "0", "0", "is a directory"),
        ("blob.py", "0", "0", "not UTF-8"),
    ],
)
def test_unusable_file_or_position_is_one_clear_line(tmp_path, target, line, character, says):
    (tmp_path / "short.py").write_text("x = 1\n")
    (tmp_path / "blob.py").write_bytes(b"\xff\xfe\x00bad")
    path = tmp_path / target
    # No model is loaded to find out: a missing one would fail differently (exit 1).
    result = run_mmlsp(
        "complete",
        str(path),
        "--line",
        line,
        "--character",
        character,
        "--model",
        str(tmp_path / "no-model"),
        cache=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_file_says_so_without_loading_a_model(tmp_path, content):
    path = tmp_path / "empty.py"
    path.write_text(content)
    result = run_mmlsp(
        "complete",
        str(path),
        "--line",
        "0",
        "--character",
        "0",
        "--model",
        str(tmp_path / "no-model"),
        cache=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("mmlsp: no suggestion: the file ")
    assert "loading" not in result.stderr


def test_why_an_answer_is_empty():
    from mmlsp.cli import _why_empty
    from mmlsp.engine.base import GenerationResult

    def result(text: str, reason: str = "stop") -> GenerationResult:
        return GenerationResult(text, reason, 10, 3, 0.1)  # type: ignore[arg-type]

    assert "larger than maxFileBytes" in _why_empty(None)
    assert "ended its answer at once" in _why_empty(result("", "eos"))
    assert "time budget ran out" in _why_empty(result("", "deadline"))
    assert "nothing was left of the model's answer after cleanup" in _why_empty(result("x"))


def test_demo_docstring_and_readme_name_the_demo_s_hole():
    """Both give the same position: the empty body line, after its indent."""
    command = re.compile(r"mmlsp complete examples/demo\.py --line (\d+) --character (\d+)")
    demo = (ROOT / "examples" / "demo.py").read_text()
    from_demo = command.search(demo.splitlines()[0])
    from_readme = command.search((ROOT / "README.md").read_text())
    assert from_demo and from_readme
    assert from_demo.groups() == from_readme.groups()
    line, character = map(int, from_demo.groups())
    hole = demo.split("\n")[line]
    assert hole.strip() == "" and len(hole) == character
    assert demo.split("\n")[line - 1].strip() == "return n"
