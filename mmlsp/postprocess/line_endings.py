"""Line endings: the filters work on ``\\n`` only, and the document's own come back last.

``normalize_line_endings`` is the pipeline's first step and ``restore_line_endings``
its last, so no filter in between has to know about ``\\r\\n`` or ``\\r``.
"""

from __future__ import annotations

from mmlsp.context.window import CursorContext


def normalize_line_endings(text: str, ctx: CursorContext) -> str | None:
    """Work on ``\\n`` only; ``restore_line_endings`` puts the document's back."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def restore_line_endings(text: str, ctx: CursorContext) -> str | None:
    """Write the document's line ending (``ctx.eol``) where the filters wrote ``\\n``."""
    return text.replace("\n", ctx.eol) if ctx.eol != "\n" else text
