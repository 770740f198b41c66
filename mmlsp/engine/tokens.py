"""Prompt token ids, tokenizing again only the text that changed.

This module owns ``PromptEncoder``. A tokenizer splits its input on special tokens
before anything else and tokenizes the text between two of them on its own, so a
prompt's ids are the ids of its pieces, with the special tokens' ids between them.
Between two keystrokes a FIM prompt keeps its prefix and suffix pieces (only the
middle changes), so remembering pieces by text leaves a few lines to tokenize instead
of the whole window (about 1 us a token: 1.6 ms for a 1700-token prompt on this CPU).

A piece is tokenized with its two neighbouring special tokens, then they are dropped:
whatever a tokenizer does at a boundary (whitespace a special token strips, a prefix
space added only at the start of the text) happens exactly as in the whole prompt.
``PromptEncoder`` checks itself on a probe at construction and tokenizes whole prompts
when the pieces do not give the same ids.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

# Pieces remembered: a few documents' prefix, suffix and recent middles.
PIECE_CACHE = 64


class PromptEncoder:
    """``encode(prompt)``: ``tokenizer(prompt)["input_ids"]``, piece by piece, remembered."""

    def __init__(self, tokenizer: Any, max_pieces: int = PIECE_CACHE) -> None:
        self.tokenizer = tokenizer
        self._piece = functools.lru_cache(maxsize=max_pieces)(self._tokenize_piece)
        self._split: re.Pattern[str] | None = None
        self._special: dict[str, int] = {}
        self._head: list[int] = []
        self._tail: list[int] = []
        try:
            self._prepare()
        except Exception as exc:  # an unusual tokenizer: whole prompts still work
            log.info("prompt pieces off (%s); tokenizing whole prompts", exc)
            self._split = None

    def _prepare(self) -> None:
        decoder = getattr(self.tokenizer, "added_tokens_decoder", None) or {}
        # Tokens that may only match as a whole word are left inside the pieces.
        self._special = {
            token.content: int(index)
            for index, token in decoder.items()
            if token.special and not token.single_word and token.content
        }
        if not self._special:
            return
        # What the tokenizer adds around a text (a BOS), found around a plain one.
        bare = self._ids("a", special=False)
        full = self._ids("a", special=True)
        at = next((i for i in range(len(full)) if full[i : i + len(bare)] == bare), None)
        if not bare or at is None:
            raise ValueError("cannot tell the added special tokens from the text")
        self._head, self._tail = full[:at], full[at + len(bare) :]
        names = sorted(self._special, key=len, reverse=True)  # longest first, as a match
        self._split = re.compile("(" + "|".join(map(re.escape, names)) + ")")
        sample = probe(list(self._special))
        if self._by_pieces(sample) != self._ids(sample, special=True):
            raise ValueError("its pieces tokenize differently from a whole prompt")

    def clear(self) -> None:
        """Forget the pieces: the next prompt is tokenized whole, as the first one."""
        self._piece.cache_clear()

    def _ids(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def encode(self, text: str) -> list[int]:
        if self._split is not None:
            try:
                return self._by_pieces(text)
            except ValueError:  # a special token that did not tokenize as itself here
                pass
        return self._ids(text, special=True)

    def _by_pieces(self, text: str) -> list[int]:
        assert self._split is not None
        parts = self._split.split(text)  # text, special, text, special, ..., text
        ids = list(self._head)
        for at in range(0, len(parts), 2):
            left = parts[at - 1] if at else ""
            right = parts[at + 1] if at + 1 < len(parts) else ""
            if parts[at]:
                ids.extend(self._piece(left, parts[at], right))
            if right:
                ids.append(self._special[right])
        ids.extend(self._tail)
        return ids

    def _tokenize_piece(self, left: str, text: str, right: str) -> tuple[int, ...]:
        ids = self._ids(left + text + right, special=False)
        start = 1 if left else 0
        end = len(ids) - (1 if right else 0)
        if (left and ids[0] != self._special[left]) or (right and ids[-1] != self._special[right]):
            # The neighbours did not come out as themselves: not a boundary after all.
            raise ValueError(f"special tokens {left!r}, {right!r} merged into the text")
        return tuple(ids[start:end])


def probe(specials: list[str]) -> str:
    """A prompt with the boundaries tokenizers treat specially: text at the start,
    whitespace on both sides of special tokens, two of them in a row, one at the end."""
    a, b, c = specials[0], specials[len(specials) // 2], specials[-1]
    return f"  def f(x):\n{a}    return x  \n\n{b}{c} y = 1\t\n{a}\nclass C:\n    pass {b}\n  z{c}"
