"""Fill-in-the-middle prompt templates, one per code-model family.

This module owns the exact marker strings each family was trained with, the
special tokens that end a FIM answer, how a context file is labelled in the
family's repository format, and the detection of the family from the
tokenizer's vocabulary. Detection never looks at the model name: fine-tunes
and GGUF re-uploads are named arbitrarily, but they keep their tokenizer.

Everything here is pure: no tokenizer or model is imported.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

# Re-exported: the names live in config, which every layer may import.
from mmlsp.config import TEMPLATE_NAMES as TEMPLATE_NAMES


@dataclass(frozen=True)
class FimTemplate:
    """How one model family spells a prefix-suffix-middle (PSM) prompt."""

    name: str
    prefix_marker: str
    suffix_marker: str
    middle_marker: str
    # Special tokens (as spelled in the vocabulary) that end a FIM answer.
    stop: tuple[str, ...]
    # Repo-level file separator token, None where the family has none.
    file_sep: str | None = None
    # Repo-level repository-name token (starts a repo-format prompt), if any.
    repo_name: str | None = None
    # Literal text between markers and code; only CodeLlama needs any.
    after_prefix_marker: str = ""
    before_suffix_marker: str = ""
    before_middle_marker: str = ""
    # Whether ``build_prompt`` opens the middle with the prefix's last lines (see there).
    middle_opens: bool = True

    def render(self, prefix: str, suffix: str, middle: str = "") -> str:
        """The exact PSM prompt for `prefix` and `suffix`, model primed to write the middle
        (which starts with `middle`, text the model is to continue)."""
        return (
            f"{self.prefix_marker}{self.after_prefix_marker}{prefix}"
            f"{self.before_suffix_marker}{self.suffix_marker}{suffix}"
            f"{self.before_middle_marker}{self.middle_marker}{middle}"
        )

    def render_file_header(self, path: str) -> str | None:
        """Label for a context file in the repo format, or None (caller falls back to a comment)."""
        if self.file_sep is None:
            return None
        # Qwen2.5-Coder and StarCoder2 both put the path right after the
        # separator and start the file's text on the next line.
        return f"{self.file_sep}{path}\n"


QWEN = FimTemplate(
    name="qwen",
    prefix_marker="<|fim_prefix|>",
    suffix_marker="<|fim_suffix|>",
    middle_marker="<|fim_middle|>",
    stop=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
    file_sep="<|file_sep|>",
    repo_name="<|repo_name|>",
)

# Same three markers as Qwen; only `<|file_separator|>` tells them apart.
# Google documents the separator "for multi-file contexts" but not where the
# path goes; the Qwen/StarCoder2 layout (separator, path, newline) is assumed.
CODEGEMMA = FimTemplate(
    name="codegemma",
    prefix_marker="<|fim_prefix|>",
    suffix_marker="<|fim_suffix|>",
    middle_marker="<|fim_middle|>",
    stop=("<|file_separator|>", "<eos>", "<end_of_turn>"),
    file_sep="<|file_separator|>",
)

# StarCoder, StarCoder2, SmolLM and similar BigCode tokenizers. StarCoder 1
# lacks `<file_sep>`; `restrict_to_vocab` drops it there.
STARCODER = FimTemplate(
    name="starcoder",
    prefix_marker="<fim_prefix>",
    suffix_marker="<fim_suffix>",
    middle_marker="<fim_middle>",
    stop=("<|endoftext|>", "<file_sep>"),
    file_sep="<file_sep>",
    repo_name="<repo_name>",
)

# StarCoder 1 has no `<file_sep>`; its repo format is `<reponame>` and `<filename>`.
_STARCODER1_FILE = "<filename>"
_STARCODER1_REPO = "<reponame>"

# SantaCoder predates StarCoder and spells its markers with hyphens.
SANTACODER = FimTemplate(
    name="santacoder",
    prefix_marker="<fim-prefix>",
    suffix_marker="<fim-suffix>",
    middle_marker="<fim-middle>",
    stop=("<|endoftext|>",),
)

# Full-width bars (U+FF5C) and U+2581 "lower one eighth block", not ASCII.
# `<|EOT|>` (ASCII bars) is the instruct models' end-of-turn; base models end
# with `<｜end▁of▁sentence｜>`. DeepSeek labels repo files with comments.
DEEPSEEK = FimTemplate(
    name="deepseek",
    prefix_marker="<｜fim▁begin｜>",
    suffix_marker="<｜fim▁hole｜>",
    middle_marker="<｜fim▁end｜>",
    stop=("<|EOT|>", "<｜end▁of▁sentence｜>"),
)

# Meta's reference encodes `[PRE] enc(" " + prefix) [SUF] enc(suffix) [MID]`,
# where the SUF/MID tokens are `▁<SUF>`/`▁<MID>` (the ▁ is a space); the
# textual form used by llama.cpp, Ollama and HF is "<PRE> {p} <SUF>{s} <MID>".
# Uncertain: a sentencepiece tokenizer may not re-merge " <SUF>" into the
# single `▁<SUF>` token; callers needing exact ids should insert them directly.
CODELLAMA = FimTemplate(
    name="codellama",
    prefix_marker="<PRE>",
    suffix_marker="<SUF>",
    middle_marker="<MID>",
    stop=("<EOT>", "▁<EOT>"),
    after_prefix_marker=" ",
    before_suffix_marker=" ",
    before_middle_marker=" ",
    # Its sentencepiece tokenizer spaces text after " <MID>" its own way: keep PSM plain.
    middle_opens=False,
)

_BY_NAME: dict[str, FimTemplate] = {
    t.name: t for t in (QWEN, CODEGEMMA, STARCODER, SANTACODER, DEEPSEEK, CODELLAMA)
}

NO_TEMPLATE = "none"
_NAMES = (*_BY_NAME, NO_TEMPLATE)
if _NAMES != TEMPLATE_NAMES:  # config declares the names users may set: keep them in step
    raise ImportError(f"mmlsp.config.TEMPLATE_NAMES must be {_NAMES}")


def _has_all(vocab: Collection[str], *tokens: str) -> bool:
    return all(token in vocab for token in tokens)


def _has_markers(vocab: Collection[str], template: FimTemplate) -> bool:
    return _has_all(vocab, template.prefix_marker, template.suffix_marker, template.middle_marker)


def _has_codellama_markers(vocab: Collection[str]) -> bool:
    # Llama sentencepiece vocabularies store these with the ▁ space marker.
    return all(
        marker in vocab or f"▁{marker}" in vocab
        for marker in (CODELLAMA.prefix_marker, CODELLAMA.suffix_marker, CODELLAMA.middle_marker)
    )


def restrict_to_vocab(template: FimTemplate, vocab: Collection[str]) -> FimTemplate:
    """`template` without the stops and file separator this vocabulary lacks.

    A stop that is not a token can never be generated as one, and a file
    separator that is not a token would be split into plain text.
    """
    file_sep = template.file_sep if template.file_sep in vocab else None
    repo_name = template.repo_name if template.repo_name in vocab else None
    if template.name == "starcoder" and file_sep is None and _STARCODER1_FILE in vocab:
        file_sep = _STARCODER1_FILE
        repo_name = _STARCODER1_REPO if _STARCODER1_REPO in vocab else None
    stop = tuple(token for token in template.stop if token in vocab)
    return replace(template, stop=stop, file_sep=file_sep, repo_name=repo_name)


def detect_template(vocab: Collection[str]) -> FimTemplate | None:
    """The FIM template whose special tokens this vocabulary has, or None.

    `vocab` is the tokenizer's vocabulary including added tokens, e.g.
    `set(tokenizer.get_vocab())`; pass a set, membership is tested often.
    """
    if _has_markers(vocab, DEEPSEEK):
        return restrict_to_vocab(DEEPSEEK, vocab)
    if _has_markers(vocab, QWEN):
        # CodeGemma reuses Qwen's markers; its separator is the only tell,
        # so it must be checked before falling through to Qwen.
        if "<|file_separator|>" in vocab:
            return restrict_to_vocab(CODEGEMMA, vocab)
        return restrict_to_vocab(QWEN, vocab)
    if _has_markers(vocab, STARCODER):
        return restrict_to_vocab(STARCODER, vocab)
    if _has_markers(vocab, SANTACODER):
        return restrict_to_vocab(SANTACODER, vocab)
    if _has_codellama_markers(vocab):
        return restrict_to_vocab(CODELLAMA, vocab)
    return None


def template_by_name(name: str) -> FimTemplate | None:
    """The template for an explicit override; "none" means prefix-only (None).

    Stops are the family's full list: pass the result through
    `restrict_to_vocab` to drop those the loaded tokenizer lacks.
    """
    key = name.strip().lower()
    if key == NO_TEMPLATE:
        return None
    try:
        return _BY_NAME[key]
    except KeyError:
        valid = ", ".join(TEMPLATE_NAMES)
        raise ValueError(f"unknown FIM template {name!r}; valid names: {valid}") from None


@dataclass(frozen=True)
class ContextPiece:
    """A snippet of another file (or out-of-view code) for the start of the prompt."""

    path: str  # as the model should read it: workspace-relative where possible
    text: str


class FimPrompt(str):
    """A rendered FIM prompt that keeps its parts.

    It is the prompt text wherever a string is expected. A backend that applies the
    model's template itself (llama.cpp's ``/infill``) sends the parts instead, so no
    marker has to be searched for again in code that may contain it.
    """

    prefix: str  # this file's text before the middle: out-of-view lines, then the window
    suffix: str
    middle: str  # the middle's start: lines since a snapped line, then the cursor line's text
    pieces: tuple[ContextPiece, ...]  # other files' context, in the prompt's order

    def __new__(
        cls, text: str, prefix: str, suffix: str, middle: str, pieces: Sequence[ContextPiece] = ()
    ) -> FimPrompt:
        prompt = super().__new__(cls, text)
        prompt.prefix, prompt.suffix, prompt.middle = prefix, suffix, middle
        prompt.pieces = tuple(pieces)
        return prompt


def comment_header(path: str, comment: str = "#") -> str:
    """A file label for models without a repo format: a comment line."""
    return f"{comment} path: {path}\n"


def render_context(
    template: FimTemplate | None,
    pieces: Sequence[ContextPiece],
    path: str | None,
    *,
    repo: str | None = None,
    comment: str = "#",
) -> str:
    """The labelled context pieces, then the current file's label, or "" without pieces.

    In the family's repo format (``<|repo_name|>``, ``<|file_sep|>path``) where the
    vocabulary has one; otherwise each piece is preceded by a ``# path: ...`` comment.
    The caller keeps ``pieces`` in a stable order, so this text is a stable prompt
    start that a KV prefix cache reuses from one keystroke to the next.
    """
    if not pieces:
        return ""
    parts: list[str] = []
    repo_format = template is not None and template.file_sep is not None
    if repo_format and template is not None:
        if template.repo_name is not None and repo:
            parts.append(f"{template.repo_name}{repo}\n")
        for piece in pieces:
            parts.append(f"{template.render_file_header(piece.path)}{_ended(piece.text)}")
        if path:
            parts.append(template.render_file_header(path) or "")
        return "".join(parts)
    for piece in pieces:
        parts.append(f"{comment_header(piece.path, comment)}{_ended(piece.text)}\n")
    if path:
        parts.append(comment_header(path, comment))
    return "".join(parts)


def _ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# The FIM middle starts on a document line whose number is a multiple of this: the
# lines typed since then open the middle, with the cursor line's text, so Enter only
# extends the prompt and the suffix is prefilled again once every this many lines.
MIDDLE_SNAP_LINES = 4


def build_prompt(
    template: FimTemplate | None,
    prefix: str,
    suffix: str,
    *,
    context: str = "",
    preamble: str = "",
    pieces: Sequence[ContextPiece] = (),
    first_line: int = 0,
) -> str:
    """The FIM prompt (a ``FimPrompt``), or just `prefix` (plain left-to-right
    completion) without a template.

    ``context`` (from ``render_context``) goes first, before the FIM markers, as
    llama.cpp's infill does for repo-format models; ``preamble`` (out-of-view lines of
    the current file) goes right before ``prefix``, inside the prefix part. ``pieces``
    are what ``context`` was rendered from, kept on the result for backends that take
    the prompt apart. ``first_line`` is the document line ``prefix`` starts on.

    The end of ``prefix`` opens the middle, after the middle marker, rather than ending
    the prefix part: the cursor line's text before the cursor (as llama.vim sends it in
    /infill's ``prompt``) and the lines above it back to a line snapped to
    ``MIDDLE_SNAP_LINES`` (``split_middle``). The model reads the same text, and FIM
    training cuts middles at random characters, so a middle that starts a few lines up
    is as ordinary as one that starts at the cursor. But a keystroke, or a new line,
    now changes only the prompt's tail. With the text at the prefix's end, every
    keystroke changed what precedes the whole suffix, and a kept KV cache had to
    prefill the suffix again (up to ``suffixTokens``) on each one.
    """
    if template is None:
        return context + preamble + prefix
    head, middle = split_middle(prefix, first_line) if template.middle_opens else (prefix, "")
    text = context + template.render(preamble + head, suffix, middle)
    return FimPrompt(text, preamble + head, suffix, middle, pieces)


def split_middle(
    prefix: str, first_line: int = 0, snap: int = MIDDLE_SNAP_LINES
) -> tuple[str, str]:
    """``prefix`` (from document line ``first_line``) cut where the FIM middle starts.

    The cut is at the start of the last line at or above the cursor's whose number is
    a multiple of ``snap``; with ``snap`` 1, at the cursor line's start. It leaves
    ``prefix``'s first line before it when there is a line above the cursor's: near the
    top of a file the prefix part is not emptied (FIM training rarely has an empty
    prefix), and the cut still stays put from one new line to the next. Lines end at
    "\n", as the document's rows do.
    """
    above = prefix.count("\n")  # lines of ``prefix`` above the cursor's
    cut = len(prefix)
    for _ in range(min((first_line + above) % snap, max(0, above - 1)) + 1):
        cut = prefix.rfind("\n", 0, cut)
        if cut < 0:
            return "", prefix
    return prefix[: cut + 1], prefix[cut + 1 :]
