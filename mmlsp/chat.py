"""Instruction prompts for the chat model, one per task, and the cleaning of its replies.

This module owns what the code actions, hover and review say to the chat model
(messages in the ``role``/``content`` form that ``Engine.render_chat`` turns into the
model's own chat template) and how each reply is turned back into something usable:
code without Markdown fences and chatter, Markdown without preambles, review
findings in a strict small format parsed leniently. Apart from ``ask``, which sends one
chat to the engine host, everything here is a pure function.
"""

from __future__ import annotations

import logging
import re
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mmlsp.engine import EngineError, EngineHost, GenerationRequest
from mmlsp.engine.base import PLAIN_CHAT_MARKERS

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]

SYSTEM = (
    "You are a careful senior {language} engineer. Answer exactly in the format asked "
    "for, with no greeting and no extra commentary."
)


def _system(language: str) -> dict[str, str]:
    return {"role": "system", "content": SYSTEM.format(language=language.title())}


def _block(code: str, language: str = "") -> str:
    fence = "````" if "```" in code else "```"
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


# -- prompts ----------------------------------------------------------------------------


def fix_messages(language: str, code: str, problem: str, before: str, after: str) -> Messages:
    """Ask for a corrected version of ``code`` only (its surroundings are context)."""
    parts = [f"Problem to fix: {problem.strip()}", ""]
    if before.strip():
        parts += ["Code just before (context, do not repeat it):", _block(before, language), ""]
    parts += ["Code to fix:", _block(code, language), ""]
    if after.strip():
        parts += ["Code just after (context, do not repeat it):", _block(after, language), ""]
    parts.append(
        "Reply with the corrected version of the code to fix, complete, in one code block, "
        "and nothing else. Keep everything that is not part of the problem unchanged."
    )
    return [_system(language), {"role": "user", "content": "\n".join(parts)}]


def docstring_messages(
    language: str, code: str, kind: str, style: str, skeleton: str, existing: str | None
) -> Messages:
    """Ask for the prose of a docstring, given the skeleton of the exact items."""
    style_name = {"google": "Google", "numpy": "NumPy", "rest": "reStructuredText"}[style]
    parts = [f"Write the docstring of this {kind}.", "", _block(code, language), ""]
    if existing:
        parts += ["Its current docstring, which may be out of date:", _block(existing), ""]
    parts += [
        f"Fill in this {style_name}-style docstring, replacing every ... with a short, "
        "precise description. Keep its layout and its items exactly:",
        _block(skeleton),
        "",
        "Reply with the filled-in docstring text only, without quotes.",
    ]
    return [_system(language), {"role": "user", "content": "\n".join(parts)}]


def explain_messages(language: str, code: str, name: str | None) -> Messages:
    what = f"`{name}`" if name else "this code"
    content = "\n".join(
        [
            f"Explain {what} to a colleague who is reading it for the first time.",
            "",
            _block(code, language),
            "",
            "Answer in Markdown: one short paragraph on what it does, then a bullet list "
            "of its inputs and outputs, then a bullet list of pitfalls or likely bugs "
            "(write 'None found.' if there are none). At most 200 words.",
        ]
    )
    return [_system(language), {"role": "user", "content": content}]


def hover_messages(language: str, code: str, name: str) -> Messages:
    content = "\n".join(
        [
            f"Summarise `{name}` for a tooltip.",
            "",
            _block(code, language),
            "",
            "Answer in Markdown with at most four short bullet points: what it does, "
            "its parameters, what it returns, and one pitfall if there is one.",
        ]
    )
    return [_system(language), {"role": "user", "content": content}]


REVIEW_FORMAT = "LINE|SEVERITY|MESSAGE"


def numbered(code: str) -> str:
    """``code`` with 1-based line numbers, as the review prompt shows it."""
    return "\n".join(f"{i}: {line}" for i, line in enumerate(code.split("\n"), start=1))


# The prompt's example finding; a small model sometimes copies it as its answer.
REVIEW_EXAMPLE = "3|warning|Divides by zero when `items` is empty."


def review_messages(language: str, code: str) -> Messages:
    content = "\n".join(
        [
            "Review this function for likely bugs: wrong results, crashes, unhandled "
            "edge cases, resource leaks. Ignore style and naming.",
            "",
            _block(numbered(code), language),
            "",
            f"Reply with one line per bug, exactly `{REVIEW_FORMAT}`, where LINE is the line "
            "number shown above, SEVERITY is `warning` (a likely bug) or `info` (a risk), "
            "and MESSAGE is one short sentence. At most 3 lines. If there is no bug, reply "
            "`NONE`.",
            "Example:",
            REVIEW_EXAMPLE,
        ]
    )
    return [_system(language), {"role": "user", "content": content}]


def retry_messages(messages: Messages, reply: str, error: str) -> Messages:
    """The conversation so far plus the model's rejected reply and why it was rejected."""
    return [
        *messages,
        {"role": "assistant", "content": reply.strip() or "(empty)"},
        {
            "role": "user",
            "content": f"That reply is not usable: {error}. Reply with the corrected code "
            "only, in one code block.",
        },
    ]


# -- sending ------------------------------------------------------------------------------


def stop_at_turn(text: str) -> int | None:
    """Cut where a model without a chat template starts writing the next turn."""
    cuts = [i for marker in PLAIN_CHAT_MARKERS if (i := text.find(marker)) >= 0]
    return min(cuts) if cuts else None


def stop_at_repetition(text: str) -> int | None:
    """Cut a prose answer where a line comes back a third time: a small model that loops
    never stops by itself, and on a CPU each repeat costs seconds."""
    if (turn := stop_at_turn(text)) is not None:
        return turn
    if "\n" not in text:
        return None
    lines = text.rpartition("\n")[0].split("\n")  # complete lines only
    index = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)
    if index is None:
        return None
    last = lines[index].strip()
    if len(last) >= 8 and sum(line.strip() == last for line in lines) >= 3:
        return sum(len(line) + 1 for line in lines[:index])
    return None


def stop_after_code_block(text: str) -> int | None:
    """Cut after the first closed fenced block: the code asked for is complete there,
    and whatever follows is chatter (which costs seconds per line on a CPU)."""
    turn = stop_at_turn(text)
    opening = _FENCE.search(text)
    if opening is not None:
        fence = opening.group(1)
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0]) * len(fence)}[ \t]*$", re.MULTILINE)
        end = closing.search(text, opening.end() + 1)
        if end is not None and (turn is None or end.end() < turn):
            return end.end()
    return turn


async def ask(
    host: EngineHost,
    messages: Messages,
    max_new_tokens: int,
    timeout_s: float,
    cancel: threading.Event | None = None,
    code_reply: bool = False,
    on_text: Callable[[str], None] | None = None,
    background: bool = False,
) -> str:
    """One chat turn with the chat engine; raises EngineError when it is not ready.

    ``code_reply``: the answer is one code block, so generation ends when it closes.
    ``on_text`` sees the reply so far after every token (progress reports).
    ``background``: work the user is not waiting for (see ``EngineHost.generate``).
    """
    engine = host.chat_engine
    if engine is None:
        status = host.chat_status
        raise EngineError(f"the chat model is not ready ({status.state}: {status.message})")
    stop = stop_after_code_block if code_reply else stop_at_repetition
    if on_text is not None:
        plain_stop = stop

        def stop(text: str) -> int | None:
            on_text(text)
            return plain_stop(text)

    request = GenerationRequest(
        prompt=engine.render_chat(messages),
        max_new_tokens=max_new_tokens,
        stop_at=stop,
        deadline=time.monotonic() + timeout_s,
    )
    if cancel is not None:
        request.cancel = cancel
    result = await host.generate(request, chat=True, background=background)
    log.debug(
        "chat reply: %d tokens in %.1f s (%s): %r",
        result.generated_tokens,
        result.seconds,
        result.finish_reason,
        result.text,
    )
    if result.finish_reason == "cancelled":
        raise EngineError("the request was cancelled")
    return Reply(result.text, result.finish_reason)


class Reply(str):
    """A reply's text, and why generation ended (``deadline`` or ``length``: cut short)."""

    finish_reason: str

    def __new__(cls, text: str, finish_reason: str = "eos") -> Reply:
        reply = super().__new__(cls, text)
        reply.finish_reason = finish_reason
        return reply

    @property
    def cut_short(self) -> bool:
        return self.finish_reason in ("deadline", "length")


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


# -- cleaning -------------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[ \t]*$", re.MULTILINE)
_CHATTER = re.compile(
    r"^\s*(sure|certainly|of course|here('s| is| are)|below|the (fixed|corrected|updated)"
    r"|this (code|version|fix)|i('ve| have)|okay|ok[,.!]|note:|explanation:)",
    re.IGNORECASE,
)


def fenced_blocks(text: str) -> list[str]:
    """Contents of the Markdown fenced blocks in ``text``; an unclosed last one runs to the end."""
    blocks: list[str] = []
    pos = 0
    while (opening := _FENCE.search(text, pos)) is not None:
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
    """A Markdown answer without a preamble line, an outer ``markdown`` fence or excess blanks."""
    text = text.strip()
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
        in_fence ^= sum(1 for line in paragraph.split("\n") if _FENCE.match(line)) % 2 == 1
    if in_fence:  # a reply cut off inside a code block: close it, or it swallows the page
        paragraphs[-1] += "\n```"
    return "\n\n".join(paragraphs)


def _instruction_lines(messages: Messages) -> list[str]:
    """The prompt's own sentences (outside code blocks), long enough to be telling."""
    lines: list[str] = []
    for message in messages:
        if message.get("role") not in ("system", "user"):
            continue
        in_fence = False
        for line in message.get("content", "").split("\n"):
            if _FENCE.match(line):
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


# -- review --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One review finding: a 1-based line within the function, a severity and a message."""

    line: int
    severity: Literal["warning", "info"]
    message: str


_SEVERITIES = {
    "warning": "warning",
    "warn": "warning",
    "error": "warning",
    "bug": "warning",
    "high": "warning",
    "info": "info",
    "information": "info",
    "note": "info",
    "hint": "info",
    "low": "info",
    "risk": "info",
}
_FINDING = re.compile(
    r"^\s*(?:[-*•]|\d+[.)])?\s*(?:line\s*|l)?(\d+)\s*[|:,;\-–]\s*"
    r"\[?([a-z]+)\]?\s*[|:,;\-–]\s*(.+?)\s*$",
    re.IGNORECASE,
)


def parse_review(text: str, line_count: int, limit: int = 5) -> list[Finding]:
    """Findings in ``LINE|SEVERITY|MESSAGE`` lines; anything else is ignored.

    Tolerates bullets, backticks, ``Line 3:``, other separators and severity synonyms;
    drops lines outside the function, empty messages and duplicates.
    """
    findings: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    for raw in text.split("\n"):
        raw = raw.strip()
        if raw.count("`") == 2 and raw.startswith("`") and raw.endswith("`"):
            raw = raw[1:-1]  # the whole line in backticks
        match = _FINDING.match(raw)
        if not match:
            continue
        line, severity, message = int(match.group(1)), match.group(2).lower(), match.group(3)
        if severity not in _SEVERITIES or not 1 <= line <= line_count:
            continue
        message = " ".join(message.strip(" |").split())
        if len(message) < 3 or message.upper() == "NONE" or REVIEW_EXAMPLE.endswith("|" + message):
            continue
        message = message[:200]
        if (line, message) in seen:
            continue
        seen.add((line, message))
        findings.append(Finding(line, _SEVERITIES[severity], message))  # type: ignore[arg-type]
        if len(findings) >= limit:
            break
    return findings
