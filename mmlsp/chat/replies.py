"""Cleaning the chat model's replies into something usable: code without Markdown
fences and chatter, Markdown without preambles, loops or an unclosed fence, and the
checks that tell a prose answer that is no answer (empty, or an echo of the prompt).
Pure functions.
"""

from __future__ import annotations

import re
import textwrap

from mmlsp.chat.prompts import Messages
from mmlsp.engine.base import PLAIN_CHAT_MARKERS

# A Markdown fence line: its fence (backticks or tildes) and its info string.
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[ \t]*$", re.MULTILINE)
_CHATTER = re.compile(
    r"^\s*(sure|certainly|of course|here('s| is| are)|below|the (fixed|corrected|updated)"
    r"|this (code|version|fix)|i('ve| have)|okay|ok[,.!]|note:|explanation:)",
    re.IGNORECASE,
)


def trim_unfinished(markdown: str) -> str:
    """A prose answer cut off mid-way, without its unfinished last sentence or item.

    Keeps whole lines that end a sentence (or a list item, heading or code), and of
    the last line the part up to its last full stop."""
    lines = markdown.rstrip().split("\n")
    last = lines[-1].rstrip()
    if not last or last.endswith((".", "!", "?", ":", "`", ")")):
        return markdown.rstrip()
    stop = max(last.rfind(". "), last.rfind("! "), last.rfind("? "))
    if stop > 0:
        lines[-1] = last[: stop + 1]
    else:
        lines = lines[:-1]
    return "\n".join(lines).rstrip()


def drop_echoed_code(markdown: str, code: str) -> str:
    """``markdown`` without fenced blocks that only repeat ``code`` (the code asked
    about): a small model often quotes it back, and the reader already sees it."""
    wanted = _normalized(code)
    kept = []
    for block in re.split(
        r"(?ms)(^[ \t]*(?:`{3,}|~{3,}).*?^[ \t]*(?:`{3,}|~{3,})[ \t]*$)", markdown
    ):
        inner = fenced_blocks(block)
        if inner and wanted and _normalized(inner[0]) == wanted:
            continue
        kept.append(block)
    return re.sub(r"\n{3,}", "\n\n", "".join(kept)).strip()


def _normalized(code: str) -> str:
    return "\n".join(line.rstrip() for line in textwrap.dedent(code).strip().split("\n"))


def fenced_blocks(text: str) -> list[str]:
    """Contents of the Markdown fenced blocks in ``text``; an unclosed last one runs to the end."""
    blocks: list[str] = []
    pos = 0
    while (opening := FENCE.search(text, pos)) is not None:
        fence = opening.group(1)
        start = opening.end() + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0]) * len(fence)}[ \t]*$", re.MULTILINE)
        end_match = closing.search(text, start)
        if end_match is None:
            blocks.append(text[start:])
            break
        blocks.append(text[start : end_match.start()])
        pos = end_match.end()
    return [b.rstrip("\n") for b in blocks]


def strip_fences(text: str) -> str:
    """The code of a reply: its first fenced block, else the text without chatter lines."""
    blocks = fenced_blocks(text)
    if blocks:  # fenced: only code inside a fence counts (an empty fence is no code)
        return next((b for b in blocks if b.strip()), "")
    lines = text.strip("\n").split("\n")
    while lines and (not lines[0].strip() or _CHATTER.match(lines[0])):
        lines.pop(0)
    # Trailing prose after a blank line ("This fixes the bug by ...").
    for index in range(len(lines) - 1, 0, -1):
        if not lines[index - 1].strip() and _CHATTER.match(lines[index]):
            lines = lines[: index - 1]
            break
    return "\n".join(lines).rstrip()


def reindent(code: str, indent: str) -> str:
    """``code`` dedented, then indented by ``indent`` on every line but the first.

    The first line is not indented because a replaced node starts after its indentation.
    """
    out = []
    for index, line in enumerate(textwrap.dedent(code).strip("\n").split("\n")):
        if index == 0:
            out.append(line.lstrip())
        else:
            out.append(indent + line if line.strip() else "")
    return "\n".join(out).rstrip()


def clean_markdown(text: str) -> str:
    """A Markdown answer without a preamble line, an outer ``markdown`` fence, excess
    blanks or replacement characters (bytes of a split character: they say nothing)."""
    text = text.replace("\ufffd", "").strip()
    whole = re.fullmatch(r"(?s)(`{3,})(?:markdown|md)?\s*\n(.*?)\n?\1", text)
    if whole:
        text = whole.group(2).strip()
    lines = text.split("\n")
    if len(lines) > 1 and _CHATTER.match(lines[0]) and lines[0].rstrip().endswith((":", "!")):
        lines = lines[1:]
    # A small model that loops repeats whole paragraphs of prose; the first copy says it
    # all. Code inside fences is left exactly as written.
    paragraphs: list[str] = []
    seen: set[str] = set()
    in_fence = False
    for paragraph in re.split(r"\n\s*\n", "\n".join(lines).strip()):
        key = paragraph.strip()
        if not key or (not in_fence and key in seen and "```" not in key):
            continue
        seen.add(key)
        paragraphs.append(paragraph)
        in_fence ^= sum(1 for line in paragraph.split("\n") if FENCE.match(line)) % 2 == 1
    if in_fence:  # a reply cut off inside a code block: close it, or it swallows the page
        paragraphs[-1] += "\n```"
    return "\n\n".join(paragraphs)


def _instruction_lines(messages: Messages) -> list[str]:
    """The prompt's own sentences (outside code blocks), long enough to be telling."""
    lines: list[str] = []
    for message in messages:
        if message.get("role") not in ("system", "user"):
            continue
        content = message.get("content", "")
        if isinstance(content, list):  # a vision chat's parts: its text parts
            content = "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
        in_fence = False
        for line in content.split("\n"):
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            if not in_fence and len(line.strip()) >= 24:
                lines.append(" ".join(line.split()).lower())
    return lines


def echoes_prompt(answer: str, messages: Messages) -> bool:
    """Whether ``answer`` repeats the instructions it was given instead of answering.

    A base model without a chat template often continues the prompt: it writes the
    question again (or the next turn's marker) rather than an answer. Such a reply
    is no result, and showing it would show the user our prompt.
    """
    flat = " ".join(answer.split()).lower()
    if any(marker.lower() in flat for marker in PLAIN_CHAT_MARKERS):
        return True
    # Half of a line is enough: a model that echoes tends to wander off mid-sentence.
    return any(line[: max(24, len(line) // 2)] in flat for line in _instruction_lines(messages))


def prose_problem(answer: str, messages: Messages) -> str | None:
    """Why a prose answer (an explanation) is unusable, in the user's words; else None."""
    prose = _FENCE_BLOCK.sub("", answer)
    if not re.search(r"[^\W\d_]{2,}", prose):  # not one word outside code blocks
        return "the model gave no explanation"
    if echoes_prompt(answer, messages):
        return "the model repeated the question instead of answering it"
    return None


_FENCE_BLOCK = re.compile(r"(?ms)^[ \t]*(`{3,}|~{3,}).*?(^[ \t]*\1[ \t]*$|\Z)")
