"""Build the project's tiny random test model (tests/tiny_model.py) into a directory.

Usage: python build_model.py OUT_DIR. Skips the build when OUT_DIR already holds it.
The weights are noise: suggestions are nonsense text, which is all the editor tests
need (they check that text arrives and is applied, not what it says).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[3]  # the repository root
sys.path.insert(0, str(ROOT))

from tests.tiny_model import build_tiny_model  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        print(f"tiny model already at {out}")
        return
    build_tiny_model(out)
    print(f"tiny model built at {out}")


if __name__ == "__main__":
    main()
