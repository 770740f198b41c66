"""The two shapes a post-processing step has.

A ``Filter`` is ``(text, ctx) -> text | None``: it returns the text it keeps, or None
when nothing worth showing is left. A ``StopRule`` is ``(text, ctx, final) -> cut index
| None``: it says where the suggestion ends, and runs both while streaming (``final``
False: the last line may still be growing, so only complete lines are judged) and on
the final text (``final`` True: every line is). Every step is a pure function.
"""

from __future__ import annotations

from collections.abc import Callable

from mmlsp.context.window import CursorContext

Filter = Callable[[str, CursorContext], str | None]
StopRule = Callable[[str, CursorContext, bool], int | None]
