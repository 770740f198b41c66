"""Choosing the FIM template: the one place that turns the ``fimTemplate`` setting and
what an engine knows about its tokens into the template completions are built with.

Engines only report evidence (``Engine.template_evidence``): the special tokens they
know to be single tokens and where that knowledge came from, a template their backend
imposes (llama.cpp's ``/infill`` applies the model's own), and the model's name for a
last-resort guess when no tokenizer could be asked.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from mmlsp.prompt.fim import (
    TEMPLATE_NAMES,
    FimTemplate,
    detect_template,
    restrict_to_vocab,
    template_by_name,
)

Choice = tuple[FimTemplate | None, str]


@dataclass(frozen=True)
class TemplateEvidence:
    """What an engine knows for choosing its FIM template."""

    # Special tokens known to be single tokens of the model (its whole vocabulary for
    # an in-process model; the known FIM tokens a server's tokenizer confirmed).
    vocabulary: Collection[str]
    # What the vocabulary was read from, for the status ("tokenizer"); None: no
    # tokenizer could be asked, so the template is guessed from ``model_name``.
    tokenizer: str | None = "tokenizer"
    model_name: str = ""
    # A template the backend imposes whatever the setting, and why.
    fixed: Choice | None = None


def check_setting(setting: str) -> None:
    """Raise ValueError for an unknown template name (before a slow model load)."""
    if setting not in ("auto", "none"):
        template_by_name(setting)


def choose_template(setting: str, evidence: TemplateEvidence) -> Choice:
    """The FIM template for the ``fimTemplate`` setting, and where the choice came from."""
    if evidence.fixed is not None:
        return evidence.fixed
    vocab = evidence.vocabulary
    if setting == "none":
        return None, "fimTemplate setting (prefix only)"
    if setting != "auto":
        template = template_by_name(setting)
        if template is not None and vocab:
            template = restrict_to_vocab(template, vocab)
        return template, "fimTemplate setting"
    if evidence.tokenizer is not None:
        found = detect_template(vocab)
        if found is not None:
            return found, f"detected from the {evidence.tokenizer}"
        return None, f"{evidence.tokenizer} has no FIM tokens (prefix only)"
    if (guess := template_from_name(evidence.model_name)) is not None:
        return guess, f"guessed from the model name {evidence.model_name!r}"
    return None, "not detectable (prefix only)"


_NAME_HINTS: tuple[tuple[str, str], ...] = (
    (r"deepseek.*coder", "deepseek"),
    (r"qwen.*coder|codeqwen", "qwen"),
    (r"codegemma", "codegemma"),
    (r"starcoder|smollm|refact", "starcoder"),
    (r"santacoder", "santacoder"),
    (r"code-?llama", "codellama"),
)


def template_from_name(model: str) -> FimTemplate | None:
    """A guess from the model's name, used only when no tokenizer can tell us."""
    name = model.lower()
    for pattern, template in _NAME_HINTS:
        if re.search(pattern, name):
            return template_by_name(template)
    return None


def candidate_tokens() -> list[str]:
    """Every marker, stop and separator of the known FIM templates."""
    seen: dict[str, None] = {}
    for name in TEMPLATE_NAMES:
        template = template_by_name(name)
        if template is None:
            continue
        tokens: Iterable[str | None] = (
            template.prefix_marker,
            template.suffix_marker,
            template.middle_marker,
            template.file_sep,
            *template.stop,
        )
        for token in tokens:
            if token:
                seen.setdefault(token, None)
    return list(seen)
