"""Writing benchmark results into BENCHMARKS.md, naming the hardware and the model they
ran on.

Each benchmark owns one ``## `` section. ``replace_section`` rewrites a whole
section (or appends it); ``put_block`` keeps one block per model or run inside a
section, between marker comments, so re-running one model leaves the others alone.
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
from pathlib import Path

TINY_LABEL = "tiny test model (2 layers, random weights)"


def bench_model(model: str) -> tuple[str, str]:
    """The ``--model`` value to load and the label to report for a bench's ``--model``:
    "tiny" builds the test model in a temporary directory."""
    if model != "tiny":
        return model, model
    from tests.tiny_model import build_tiny_model

    return str(build_tiny_model(Path(tempfile.mkdtemp(prefix="mmlsp-tiny-")))), TINY_LABEL


def slug(text: str) -> str:
    """``text`` as a block marker or file name: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace the ``heading`` section (up to the next ``## ``), or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def put_block(path: Path, heading: str, kind: str, slug: str, body: str, intro: str) -> None:
    """Keep one ``<!-- kind:slug -->`` block inside the ``heading`` section.

    Replaces that block where it is, or adds it after the section's other blocks
    (after ``intro`` when the section is new); nothing else in the file changes.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    current = match.group(1).strip() if match else ""
    begin, end = f"<!-- {kind}:{slug} -->", f"<!-- /{kind}:{slug} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in current:
        current = re.sub(
            re.escape(begin) + ".*?" + re.escape(end), lambda _m: block, current, flags=re.S
        )
    else:
        current = "\n\n".join(p for p in (current or intro.strip(), block) if p)
    replace_section(path, heading, current)


def hardware(device: str, threads: int) -> str:
    """The GPU's name when running on one, else the CPU's, its cores and torch threads."""
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores, {threads} torch thread(s)"
