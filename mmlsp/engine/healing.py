"""Token healing: completing a word the cursor sits inside.

A prompt that ends inside a word (``retu``) ends with a token split the model rarely
saw in training: ``return`` is one token, ``ret`` + ``u`` are two. Greedy decoding
then tends to repeat the piece or start a new word. Healing backs the prompt up over
the tokens the partial word ends in and makes the first generated tokens spell that
text again (each must extend it, or be a piece of it), so the model picks the
token split it knows (``return``); the healed text is then stripped, and the answer
starts at the cursor as usual.

This module owns the pure parts, over a tokenizer's vocabulary, so that every engine
that tokenizes on this side can adopt them: ``partial_word`` (how much of a prompt's
end is a word the answer may extend), ``TokenTexts`` (each token id's bytes, sorted
for prefix queries, built once per tokenizer by ``token_texts``), ``plan`` (which
prompt tokens to back up over) and ``Constraint`` (which tokens may come next while
the backed-up text is spelled again; ``visible`` strips it). No torch: the engine
applies the allowed ids to its logits. An engine adopts it with ``token_texts`` once
(or ``TokenTexts`` over its own token bytes), ``heal`` on the prompt's ids, then, while
``constraint.done`` is False, one token a step (no drafts) picked by ``best_allowed``
(or the same over a tensor, as ``decode.Run``), ``advance``, and ``visible`` on the
decoded text before the caller's stops see it (``LocalEngine`` and ``decode.Run``;
``LlamaCppEngine``, over llama.cpp's token pieces).
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Prompt tokens backed up at most: the end of a word is where the odd split is, and
# every token backed up is one more constrained decoding step.
MAX_HEAL_TOKENS = 3
# A word this long at the cursor is not healed as a whole: only its end matters.
MAX_WORD_CHARS = 64

_WORD_END = re.compile(r"\w+\Z")


def partial_word(text: str) -> int:
    """Characters of the word (``\\w``: letters, digits, ``_``) that ``text`` ends inside;
    0 when it ends elsewhere (after a space, a dot, a bracket)."""
    match = _WORD_END.search(text[-MAX_WORD_CHARS:])
    return len(match.group()) if match else 0


@dataclass(frozen=True)
class Healing:
    """Back the prompt up to its first ``keep`` ids; generation must spell ``text``."""

    keep: int
    text: bytes


class TokenTexts:
    """Each token id's bytes (None: a special token, never healed over nor allowed),
    sorted so that the tokens extending a text are one slice."""

    def __init__(self, pieces: Sequence[bytes | None]) -> None:
        self.pieces = list(pieces)
        present = {index: piece for index, piece in enumerate(self.pieces) if piece}
        order = sorted(present, key=present.__getitem__)
        self._keys = [present[index] for index in order]
        self._ids = np.array(order, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pieces)

    def extending(self, text: bytes) -> np.ndarray:
        """Ids of the tokens whose bytes start with ``text`` (non-empty)."""
        low = bisect_left(self._keys, text)
        high = bisect_left(self._keys, _successor(text)) if _successor(text) else len(self._keys)
        return self._ids[low:high]

    def allowed(self, rest: bytes) -> np.ndarray:
        """Ids that may come next while ``rest`` is still to be spelled: tokens that
        extend it, and tokens that are a proper, non-empty start of it."""
        starts = [
            self._ids[bisect_left(self._keys, start) : bisect_right(self._keys, start)]
            for start in (rest[:cut] for cut in range(1, len(rest)))
        ]
        extending = self.extending(rest)
        return np.concatenate([*starts, extending]) if starts else extending


def _successor(text: bytes) -> bytes:
    """The least byte string greater than every string that starts with ``text``
    (b"" when there is none: ``text`` is all 0xff)."""
    stripped = text.rstrip(b"\xff")
    if not stripped:
        return b""
    return stripped[:-1] + bytes([stripped[-1] + 1])


def plan(
    ids: Sequence[int], texts: TokenTexts, word: bytes, max_tokens: int = MAX_HEAL_TOKENS
) -> Healing | None:
    """The healing for a prompt of ``ids`` that ends with the partial ``word``: back up
    over the tokens that hold the word's last bytes (at most ``max_tokens``; the first
    may start before the word, e.g. with its space). None when there is nothing to
    heal or the tokens do not spell the prompt's end (a tokenizer that normalizes)."""
    removed = b""
    keep = len(ids)
    while keep > 0 and len(ids) - keep < max_tokens and len(removed) < len(word):
        piece = texts.pieces[ids[keep - 1]] if 0 <= ids[keep - 1] < len(texts) else None
        if not piece:
            break  # a special token (a FIM marker): the prompt's structure, kept
        removed = piece + removed
        keep -= 1
    if not removed:
        return None
    consistent = removed.endswith(word) if len(removed) >= len(word) else word.endswith(removed)
    if not consistent:
        return None
    try:
        removed.decode("utf-8")
    except UnicodeDecodeError:
        return None  # a character split between kept and removed tokens
    return Healing(keep, removed)


def heal(
    ids: list[int], texts: TokenTexts | None, prompt: str, chars: int
) -> tuple[list[int], Constraint | None]:
    """An engine's one call: the prompt ``ids`` backed up over the partial word that
    ends ``prompt`` (its last ``chars`` characters, ``GenerationRequest.heal``), and
    the constraint that spells it again; ``ids`` and None when there is nothing to heal."""
    if chars <= 0 or texts is None:
        return ids, None
    try:
        healing = plan(ids, texts, prompt[-chars:].encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: left as it is
        return ids, None
    if healing is None or healing.keep == 0:
        return ids, None
    return ids[: healing.keep], Constraint(texts, healing.text)


def best_allowed(row: Any, constraint: Constraint) -> int:
    """The greedy token of one row of logits (a numpy array, or anything indexed like
    one) among those ``constraint`` allows."""
    allowed = constraint.allowed()
    return int(allowed[int(row[allowed].argmax())])


class Constraint:
    """The healed text still to be spelled, token by token."""

    def __init__(self, texts: TokenTexts, text: bytes) -> None:
        self.texts = texts
        self.text = text
        self.rest = text
        self.steps = 0  # tokens generated under the constraint

    @property
    def done(self) -> bool:
        return not self.rest

    def allowed(self) -> np.ndarray:
        return self.texts.allowed(self.rest)

    def advance(self, token: int) -> None:
        """Account for ``token`` (one of ``allowed()``) having been generated."""
        if self.done:
            return
        piece = self.texts.pieces[token] or b""
        self.steps += 1
        if piece.startswith(self.rest):
            self.rest = b""
        elif self.rest.startswith(piece) and piece:
            self.rest = self.rest[len(piece) :]
        else:
            raise ValueError(f"token {token} does not continue the healed text")

    def visible(self, generated: str) -> str:
        """``generated`` (the text of the tokens generated, healed text first) after the
        healed text: what goes after the cursor. "" while it is still being spelled."""
        if not self.done:
            return ""
        healed = self.text.decode("utf-8")
        if not generated.startswith(healed) and generated.startswith(healed.lstrip()):
            healed = healed.lstrip()  # a decoder that drops a text's leading space
        return generated[len(healed) :]


# -- vocabularies of tokenizers --------------------------------------------------------
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>\Z")


def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the character that stands for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def token_texts(tokenizer: Any) -> TokenTexts:
    """Every token id's bytes for a Hugging Face tokenizer, computed once.

    Read off the token strings for the two common decoders (GPT-2 byte-level, and
    SentencePiece-style ``▁`` with byte fallback), checked against the tokenizer's own
    decoding on a sample; otherwise each id is decoded on its own (slower: about a
    second for a 262k vocabulary). Special tokens get None.
    """
    size = len(tokenizer)
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special = {int(i) for i, token in added.items() if getattr(token, "special", False)}
    special.update(int(i) for i in getattr(tokenizer, "all_special_ids", ()) or ())
    content = {int(i): str(token.content) for i, token in added.items() if int(i) not in special}
    decoder = ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.decoder is not None:
        decoder = str(backend.decoder)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    pieces: list[bytes | None] | None = None
    if "ByteLevel" in decoder:
        table = _byte_level_table()
        pieces = []
        for index, token in enumerate(tokens):
            if index in special or token is None:
                pieces.append(None)
            elif index in content:
                pieces.append(content[index].encode("utf-8"))
            else:
                try:
                    pieces.append(bytes(table[c] for c in token))
                except KeyError:
                    pieces = None
                    break
    elif 'String("▁"), content=" "' in decoder and "ByteFallback" in decoder:
        pieces = []
        for index, token in enumerate(tokens):
            if index in special or token is None:
                pieces.append(None)
            elif index in content:
                pieces.append(content[index].encode("utf-8"))
            elif match := _BYTE_TOKEN.match(token):
                pieces.append(bytes([int(match.group(1), 16)]))
            else:
                pieces.append(token.replace("▁", " ").encode("utf-8"))
    if pieces is not None and not _agrees(tokenizer, pieces):
        log.info("token texts read off the vocabulary disagree with decoding; decoding each")
        pieces = None
    if pieces is None:
        pieces = [None if index in special else _decoded(tokenizer, index) for index in range(size)]
    return TokenTexts(pieces)


def _decoded(tokenizer: Any, index: int) -> bytes | None:
    text = tokenizer.decode([index])
    return None if "\ufffd" in text else text.encode("utf-8")


def _agrees(tokenizer: Any, pieces: Sequence[bytes | None], samples: int = 512) -> bool:
    """Whether ``pieces`` decode as the tokenizer decodes, on ids spread over the vocabulary."""
    step = max(1, len(pieces) // samples)
    for index in range(0, len(pieces), step):
        piece = pieces[index]
        if piece is None:
            continue
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a byte of a character: decoding alone shows U+FFFD
        if tokenizer.decode([index]) != text:
            return False
    return True
