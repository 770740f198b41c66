"""Next-edit prompt formats: the model's view of a next-edit request, and its answer.

Each format turns the same request (``Request``: the file excerpt with its editable
region and cursor, the user's recent edits, excerpts of related files) into the prompt
text the model was trained on, plus where its answer ends. Every format's answer is the
editable region written anew (``region_from``). Stable parts come first (related files,
then the file above the region, then history), so that consecutive requests share a
long prompt prefix and the KV cache is reused.

* ``zeta``: Zed's Zeta (v1) instruction prompt: ``### User Edits:`` with each edit as
  ``User edited "path":`` and a fenced diff, then ``### User Excerpt:`` with the
  ``<|editable_region_start|>``, ``<|user_cursor_is_here|>`` and
  ``<|editable_region_end|>`` markers. The response repeats the excerpt; it is
  prefilled up to the region's start, so the model writes only the region.
* ``sweep``: Sweep's next-edit models (0.5B, 1.5B; Qwen2.5-Coder based): Qwen's
  ``<|file_sep|>`` sections: the file, related files, each recent edit as
  ``original:``/``updated:`` blocks, then ``original/``, ``current/`` and
  ``updated/`` copies of the region; the model writes the ``updated/`` block.
* ``generic``: for any base coder or instruct model without next-edit training:
  Sweep's layout, which Qwen2.5-Coder base models know from pretraining (its
  ``<|file_sep|>`` repository format) and other base models continue as a pattern,
  but ended only by the next section marker.

``choose_format`` picks one from the model's name and special tokens (the
``nextEditFormat`` setting overrides it), as ``fim`` does for FIM templates.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from mmlsp.config import NEXT_EDIT_FORMATS

FORMATS = NEXT_EDIT_FORMATS

ZETA_START = "<|editable_region_start|>"
ZETA_END = "<|editable_region_end|>"
ZETA_CURSOR = "<|user_cursor_is_here|>"
ZETA_FILE_START = "<|start_of_file|>"
ZETA_INSTRUCTION = (
    "You are a code completion assistant and your task is to analyze user edits and then "
    "rewrite an excerpt that the user provides, suggesting the appropriate edits within "
    "the excerpt, taking into account the cursor location."
)
FILE_SEP = "<|file_sep|>"


@dataclass(frozen=True)
class HistoryEntry:
    """One recent edit: the file's path, the region before and after, its diff."""

    path: str
    before: str
    after: str
    diff: str


@dataclass(frozen=True)
class Request:
    """What a next-edit prompt is built from. ``above`` and ``below`` are the whole lines
    of the excerpt around ``region`` (whole lines too); ``cursor`` is a code point
    offset into ``region``; ``original`` is the region as it was before the user's last
    edit there (the region itself when that edit was elsewhere)."""

    path: str
    above: str
    region: str
    cursor: int
    below: str
    original: str
    file_start: bool = False
    # Oldest first.
    history: Sequence[HistoryEntry] = ()
    # (path, text) excerpts of other files, most relevant last.
    related: Sequence[tuple[str, str]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Prompt:
    """The prompt text and the strings that end the model's region."""

    format: str
    text: str
    stops: tuple[str, ...]
    # Whether the end of the model's text ends the region (else only a stop does).
    eos_ends: bool = False


def build(format: str, request: Request) -> Prompt:
    """The prompt of ``format`` for ``request``."""
    if format == "zeta":
        return _zeta(request)
    if format == "sweep":
        return _sweep(request)
    if format == "generic":
        return _generic(request)
    raise ValueError(f"unknown next-edit format {format!r} (known: {', '.join(FORMATS)})")


def region_from(output: str, request: Request) -> str:
    """The model's answer (cut at a stop) as the new region, with the old region's line
    ending at its end: whole lines stay whole lines. A cursor marker the model copied
    is not code."""
    return _with_ending(output.replace(ZETA_CURSOR, ""), request)


def _with_ending(output: str, request: Request) -> str:
    if request.region.endswith("\n") and not output.endswith("\n"):
        return output + "\n"
    if not request.region.endswith("\n") and output.endswith("\n"):
        return output[:-1]
    return output


def choose_format(setting: str, model_name: str, vocabulary: Collection[str]) -> tuple[str, str]:
    """(format, why) for the ``nextEditFormat`` setting and the model: its name names
    the next-edit model (Zeta's markers are plain text, and Sweep's tokens are Qwen's,
    so the name is the evidence), else its vocabulary holds Zeta's markers as tokens."""
    if setting != "auto":
        return setting, "setting"
    name = model_name.lower()
    if "zeta" in name or ZETA_START in vocabulary:
        return "zeta", "model name" if "zeta" in name else "tokenizer"
    if "sweep" in name and "next" in name:
        return "sweep", "model name"
    return "generic", "no next-edit model detected"


# -- the formats ------------------------------------------------------------------------


def _zeta(r: Request) -> Prompt:
    events = "\n\n".join(
        f'User edited "{e.path}":\n```diff\n{_ending(e.diff)}```' for e in r.history
    )
    head = f"```{r.path}\n" + (ZETA_FILE_START + "\n" if r.file_start else "") + r.above
    region = r.region[: r.cursor] + ZETA_CURSOR + r.region[r.cursor :]
    excerpt = f"{head}{ZETA_START}\n{region}{_nl(region)}{ZETA_END}\n{r.below}{_nl(r.below)}```"
    text = (
        f"### Instruction:\n{ZETA_INSTRUCTION}\n\n### User Edits:\n\n{events}\n\n"
        f"### User Excerpt:\n\n{excerpt}\n\n### Response:\n\n"
        # The response repeats the excerpt: prefill it up to the region.
        f"{head}{ZETA_START}\n"
    )
    return Prompt("zeta", text, (ZETA_END,))


def _sweep(r: Request) -> Prompt:
    parts = [f"{FILE_SEP}{path}\n{_ending(text)}" for path, text in r.related]
    parts.append(f"{FILE_SEP}{r.path}\n{_ending(r.above + r.region + r.below)}")
    parts += [
        f"{FILE_SEP}{e.path}.diff\noriginal:\n{_ending(e.before)}updated:\n{_ending(e.after)}"
        for e in r.history
    ]
    parts.append(f"{FILE_SEP}original/{r.path}\n{_ending(r.original)}")
    parts.append(f"{FILE_SEP}current/{r.path}\n{_ending(r.region)}")
    parts.append(f"{FILE_SEP}updated/{r.path}\n")
    return Prompt("sweep", "".join(parts), (FILE_SEP,), eos_ends=True)


def _generic(r: Request) -> Prompt:
    # Sweep's layout: its original/current/updated blocks are a pattern a base model
    # continues by copying the region and changing what the history suggests (on
    # Gemma-3-270M it copied the region faithfully where a plain-text format drifted
    # into blank lines). It ends only at the next section: a base model's end of text
    # mid-region is no sign that the region is done.
    return replace(_sweep(r), format="generic", eos_ends=False)


def _nl(text: str) -> str:
    """A newline unless ``text`` is empty or ends with one."""
    return "" if not text or text.endswith("\n") else "\n"


def _ending(text: str) -> str:
    return text + _nl(text)
