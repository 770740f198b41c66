"""The command line as a newcomer uses it: real subprocesses, real models."""

from __future__ import annotations

import os
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
    """The GGUF copy of the tiny model holds the same weights, so it suggests the same text."""
    args = ("complete", str(sample), "--line", "1", "--character", "12")
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
