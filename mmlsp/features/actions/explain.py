"""Explain: the model's explanation of a selection or definition as Markdown, and the
private temporary files it is shown from with ``window/showDocument``."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from lsprotocol import types

from mmlsp import chat
from mmlsp.features.actions.check import Ask
from mmlsp.features.actions.document import Doc
from mmlsp.features.actions.errors import ActionError
from mmlsp.features.actions.targets import code_of, explain_target_for, truncate_lines


async def explain_markdown(doc: Doc, rng: types.Range, ask: Ask) -> tuple[str, str]:
    """``(title, Markdown)`` explaining the selection or the definition at ``rng``."""
    target = explain_target_for(doc, rng)
    code = truncate_lines(code_of(doc, target))
    if not code.strip():
        raise ActionError("nothing to explain here")
    messages = chat.explain_messages(doc.language_id, code, target.name)
    reply = await ask(messages)
    answer = chat.drop_echoed_code(chat.clean_markdown(reply), code)
    if (problem := chat.prose_problem(answer, messages)) is not None:
        raise ActionError(f"{problem}; nothing to show")
    if isinstance(reply, chat.Reply) and reply.cut_short:
        answer = chat.clean_markdown(chat.trim_unfinished(answer))
        if (problem := chat.prose_problem(answer, messages)) is not None:
            raise ActionError(f"{problem} before it was cut short; nothing to show")
        answer += "\n\n*(The answer was cut short: the model was still writing at its limit.)*"
    line = doc.index.position_at(target.start)[0] + 1
    title = f"`{target.name}`" if target.name else f"line {line}"
    fence = "````" if "```" in code else "```"
    # Plain Markdown only: every client renders it (HTML such as <sub> shows as text).
    where = doc.uri.rsplit("/", 1)[-1] or doc.uri
    markdown = (
        f"# Explanation of {title}\n\n{answer}\n\n"
        f"*{where}, line {line}:*\n\n{fence}{doc.language_id}\n{code}\n{fence}\n"
    )
    return title, markdown


class ExplainFiles:
    """Markdown files in a private temporary directory (0700, files 0600), removed at exit."""

    def __init__(self) -> None:
        self._dir: Path | None = None

    @property
    def directory(self) -> Path:
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="mmlsp-explain-"))  # mode 0700
        return self._dir

    def write(self, name: str, markdown: str) -> Path:
        safe = re.sub(r"[^\w.-]+", "_", name).strip("_.")[:60] or "explanation"
        path = self.directory / f"{safe}.md"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(markdown)
        os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
        return path

    def cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
