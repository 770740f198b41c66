"""Instruction prompts for the chat model, one per task, and the cleaning of its replies.

One job per module:

* ``prompts``: what the code actions, hover and review say to the chat model;
* ``sending``: ``ask`` sends one chat to the engine host, with the stop rules that
  end a reply early, and returns a ``Reply``;
* ``replies``: turning a reply into code or Markdown, and telling a non-answer;
* ``findings``: reading a review reply into ``Finding``s.

Apart from ``ask``, everything here is a pure function. This module is the public
surface: importers use ``from mmlsp import chat; chat.X``. The names are re-exported,
so to patch one (a test) patch it in its own module.
"""

from mmlsp.chat.findings import Finding, parse_review
from mmlsp.chat.prompts import (
    REVIEW_EXAMPLE,
    REVIEW_FORMAT,
    SYSTEM,
    Messages,
    docstring_messages,
    explain_messages,
    fix_messages,
    generate_messages,
    hover_messages,
    implement_messages,
    instruction_messages,
    numbered,
    retry_messages,
    review_messages,
)
from mmlsp.chat.replies import (
    clean_markdown,
    drop_echoed_code,
    echoes_prompt,
    fenced_blocks,
    prose_problem,
    reindent,
    strip_fences,
    trim_unfinished,
)
from mmlsp.chat.sending import (
    Reply,
    ask,
    stop_after_code_block,
    stop_at_repetition,
    stop_at_turn,
)

__all__ = [
    "REVIEW_EXAMPLE",
    "REVIEW_FORMAT",
    "SYSTEM",
    "Finding",
    "Messages",
    "Reply",
    "ask",
    "clean_markdown",
    "docstring_messages",
    "drop_echoed_code",
    "echoes_prompt",
    "explain_messages",
    "fenced_blocks",
    "fix_messages",
    "generate_messages",
    "hover_messages",
    "implement_messages",
    "instruction_messages",
    "numbered",
    "parse_review",
    "prose_problem",
    "reindent",
    "retry_messages",
    "review_messages",
    "stop_after_code_block",
    "stop_at_repetition",
    "stop_at_turn",
    "strip_fences",
    "trim_unfinished",
]
