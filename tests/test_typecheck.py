"""The type checker over ``mmlsp/``: the Engine contract, the Session's snapshots and
the features' ports are checked by mypy (configured in pyproject.toml), not only
written down. Runs mypy as a user would, in a subprocess, and shows its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mmlsp_type_checks() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy"],  # packages and options from pyproject.toml
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_checker_catches_a_broken_contract(tmp_path: Path) -> None:
    # A module calling an Engine method that the contract does not declare: the check
    # above would pass vacuously if mypy could not see through mmlsp's types.
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from mmlsp.engine.base import Engine\n\n"
        "def use(engine: Engine) -> None:\n"
        "    engine.no_such_method()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    assert '"Engine" has no attribute "no_such_method"' in done.stdout
