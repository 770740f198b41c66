"""Build the project's tiny random vision-language model (tests/tiny_vlm.py) into a
directory, and draw the image the journeys hover (a form mockup, as the server's tests do).

Usage: python build_vlm.py OUT_DIR [IMAGE.png]. Skips the build when OUT_DIR already
holds it. The weights are noise: the journeys check that the hover shows the image's
name and size and then the vision model's answer, not what it says.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[3]  # the repository root
sys.path.insert(0, str(ROOT))

from tests.tiny_vlm import build_tiny_vlm, draw_mockup  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    if len(sys.argv) > 2:
        draw_mockup(Path(sys.argv[2]))
    if (out / "config.json").is_file() and (out / "processor_config.json").is_file():
        print(f"tiny vision model already at {out}")
        return
    build_tiny_vlm(out)
    print(f"tiny vision model built at {out}")


if __name__ == "__main__":
    main()
