"""Chat (instruction) prompts through a Hugging Face tokenizer's chat template, for
code actions, hover and review on the in-process model.
"""

from __future__ import annotations

import logging
from typing import Any

from mmlsp.engine.base import render_plain_chat

log = logging.getLogger(__name__)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The tokenizer's chat template when it has one, else the plain-text fallback."""
    if not has_chat_template(tokenizer):
        return render_plain_chat(messages)
    try:
        text = _apply_template(tokenizer, messages, generation_prompt=True)
    except Exception as exc:  # some templates reject a system turn; fold it in
        log.debug("chat template refused the messages (%s); folding the system turn", exc)
        text = _apply_template(tokenizer, _fold_system(messages), generation_prompt=True)
    # generate() tokenizes with special tokens, so a template that spells BOS itself
    # would give the model two.
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and _adds_bos(tokenizer):
        text = text[len(bos) :]
    return text


def chat_stop_tokens(tokenizer: Any) -> tuple[str, ...]:
    """Special tokens that end an assistant turn in the chat template (``<|im_end|>``...).

    Found by rendering a sample exchange and reading which special token follows the
    assistant's text, so no family is recognised by name.
    """
    if not has_chat_template(tokenizer):
        return ()
    sample = [{"role": "user", "content": "PING"}, {"role": "assistant", "content": "PONG"}]
    try:
        rendered = _apply_template(tokenizer, sample, generation_prompt=False)
    except Exception:  # a template that cannot render a plain exchange has no answer
        return ()
    _, found, after = str(rendered).partition("PONG")
    after = after.lstrip()
    if not found or not after:
        return ()
    special = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)
    return tuple(token for token in special if token and after.startswith(token))[:1]


def _apply_template(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return str(
        tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    )


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if system and rest:
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("x")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id
