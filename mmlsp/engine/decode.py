"""One greedy generation on the in-process model: prefill what the kept cache lacks,
then decode token by token, or draft by draft where a draft was verified.

The caller's streaming stops, cancellation and deadline are checked after every
token (and between prefill chunks), so superseded work ends at the next token. With a
healing ``Constraint`` (``healing.py``) the first tokens are the greedy choice among
those that spell the backed-up text, one at a time (no drafts), and the text the
caller sees starts after it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from mmlsp.engine.base import FinishReason, GenerationRequest
from mmlsp.engine.greedy import GreedyRun
from mmlsp.engine.healing import Constraint
from mmlsp.engine.kvcache import Reuse, crop
from mmlsp.engine.lookup import accepted, continuation_draft, ngram_draft

if TYPE_CHECKING:
    from mmlsp.engine.local import LocalEngine

# Reuse drafts look for the newest n-gram in the last this many tokens the cache held
# after the shared prefix (more: the user went elsewhere, and the end holds what the
# model generated there).
PREVIOUS_TOKENS = 512

# Prompt tokens per forward pass while prefilling: cancellation and the deadline are
# checked between chunks, so a superseded request stops within one chunk.
PREFILL_CHUNK = 256


class Run(GreedyRun):
    """One greedy generation: prefill, then decode token by token (or draft by draft).

    ``fed`` is exactly the tokens the cache holds, position by position, so the cache
    can be kept for the next request whatever way the run ends.
    """

    def __init__(
        self,
        engine: LocalEngine,
        request: GenerationRequest,
        ids: list[int],
        reuse: Reuse,
        static: bool = False,
        constraint: Constraint | None = None,
    ) -> None:
        import torch

        self._argmax = torch.argmax
        self.constraint = constraint
        self.engine = engine
        self.request = request
        self.ids = ids
        self.cache: Any = (
            reuse.cache if reuse.cache is not None else engine.fresh_cache(static=static)
        )
        self.fed: list[int] = ids[: reuse.reused]
        # What the cache held after the shared prefix (mostly the last generation here):
        # the source of reuse drafts, read from ``previous_at`` on: at first its last
        # PREVIOUS_TOKENS, then from where the last draft began.
        self.previous = reuse.previous
        self.previous_at = max(0, len(self.previous) - PREVIOUS_TOKENS)
        self._start_taking()
        self.prefilled = 0
        self.drafted = 0
        self.accepted = 0

    def _feed(self, tokens: list[int], keep: int) -> Any:
        # One token after some: a fresh cache's first step would only compile again.
        one = len(tokens) == 1 and bool(self.fed)
        logits, self.cache = self.engine.forward(tokens, self.cache, keep, decode=one)
        self.fed.extend(tokens)
        return logits

    def _prefill(self) -> Any | None:
        """Logits after the last prompt token, or None when interrupted first."""
        rest = self.ids[len(self.fed) :]
        logits = None
        for at in range(0, len(rest), PREFILL_CHUNK):
            if at and self.request.interrupted() is not None:
                return None
            chunk = rest[at : at + PREFILL_CHUNK]
            logits = self._feed(chunk, 1)
            self.prefilled += len(chunk)
        assert logits is not None  # never empty: a reused cache leaves one token to feed
        return logits[-1]

    def _draft(self, last: int) -> list[int]:
        """Draft tokens to verify after ``last``.

        The document's last generation first: after a keystroke the model mostly
        writes much of it again (the rest of a name, the same call's tail), and would
        otherwise decode it token by token. Prompt lookup when that has nothing.
        """
        request = self.request
        budget = request.max_new_tokens - len(self.generated) - 1
        if request.reuse_draft and self.previous:
            draft, self.previous_at = continuation_draft(
                self.previous,
                [*self.fed[-2:], last],
                min(request.reuse_draft, budget),
                self.previous_at,
            )
            if draft:
                return draft
        if request.prompt_lookup:
            return ngram_draft([*self.fed, last], min(request.prompt_lookup, budget))
        return []

    def _greedy(self, logits: Any) -> list[int]:
        """The greedy token of each row of ``logits``; their log-probabilities queue
        in ``pending_logprobs``."""
        import torch

        rows = logits.reshape(-1, logits.shape[-1]).float()
        if self.healing:  # one row: the best of the tokens that spell the healed text
            assert self.constraint is not None
            allowed = torch.from_numpy(self.constraint.allowed()).to(rows.device)
            best = rows[:, allowed].max(dim=-1)
            self.pending_logprobs = (best.values - torch.logsumexp(rows, dim=-1)).tolist()
            return allowed[best.indices].tolist()
        best = rows.max(dim=-1).values
        self.pending_logprobs = (best - torch.logsumexp(rows, dim=-1)).tolist()
        return self._argmax(rows, dim=-1).tolist()

    def _step(self) -> list[int]:
        """Feed the newest token (plus a draft); the greedy tokens that follow."""
        last = self.generated[-1]
        draft = [] if self.healing else self._draft(last)
        logits = self._feed([last, *draft], len(draft) + 1)
        greedy = self._greedy(logits)
        if not draft:
            return greedy
        ok = accepted(draft, greedy)
        self.drafted += len(draft)
        self.accepted += ok
        if rejected := len(draft) - ok:
            del self.fed[-rejected:]
            crop(self.cache, len(self.fed))
        return greedy[: ok + 1]

    def _eos_ids(self) -> Collection[int]:
        return self.engine.eos_ids

    def _detokenize(self, ids: list[int]) -> str:
        return self.engine.tokenizer.decode(ids, skip_special_tokens=True)

    def decode(self) -> tuple[str, FinishReason]:
        logits = self._prefill()
        if logits is None:
            return "", self.request.interrupted() or "cancelled"
        return self.take(self._greedy(logits))
