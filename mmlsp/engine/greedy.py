"""What both in-process engines' greedy runs do with each token they take: the
bookkeeping between the model's picks and the caller's text.

A run (``decode.Run`` on torch, ``llamacpp._Run`` on llama.cpp) prefills and picks
tokens its own way; ``GreedyRun.take`` turns the picks into the caller's text: EOS
ends it, a healing ``Constraint`` (``healing.py``) hides the healed text, each
token's log-probability and the text's length through it are kept (the acceptance
gate's confidence), and the caller's stop, ``max_new_tokens`` (healed tokens not
counted), cancellation and the deadline are checked after every token.
"""

from __future__ import annotations

from collections.abc import Collection

from mmlsp.engine.base import FinishReason, GenerationRequest
from mmlsp.engine.healing import Constraint


class GreedyRun:
    """The shared state and loop of a greedy run; subclasses pick the tokens."""

    request: GenerationRequest
    constraint: Constraint | None

    def _start_taking(self) -> None:
        self.generated: list[int] = []
        self.produced = 0  # generated tokens, the EOS included
        # Per generated token: its log-probability, and the text's length through it;
        # and the log-probabilities of the tokens about to be taken.
        self.logprobs: list[float] = []
        self.ends: list[int] = []
        self.pending_logprobs: list[float] = []

    @property
    def healing(self) -> bool:
        """Whether the healed text is still being spelled (token by token, no drafts)."""
        return self.constraint is not None and not self.constraint.done

    def _counted(self) -> int:
        """Generated tokens that count against ``max_new_tokens``: not the healed ones."""
        return len(self.generated) - (self.constraint.steps if self.constraint else 0)

    def _eos_ids(self) -> Collection[int]:
        raise NotImplementedError

    def _detokenize(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _step(self) -> list[int]:
        """The next tokens (one, or a verified draft's), their log-probabilities in
        ``pending_logprobs``."""
        raise NotImplementedError

    def take(self, pending: list[int]) -> tuple[str, FinishReason]:
        """Take ``pending`` and every token ``_step`` picks after it, until one ends it."""
        request, constraint, eos = self.request, self.constraint, self._eos_ids()
        text = ""
        while True:
            for token, logprob in zip(pending, self.pending_logprobs, strict=False):
                self.produced += 1
                if token in eos:
                    return text, "eos"
                self.generated.append(token)
                text = self._detokenize(self.generated)
                if constraint is not None:
                    # The answer starts at the cursor: "" while the healed text is
                    # spelled, so its tokens' ends are 0 and their log-probabilities
                    # are no part of the suggestion's confidence.
                    constraint.advance(token)
                    text = constraint.visible(text)
                self.logprobs.append(logprob)
                self.ends.append(len(text))
                if not self.healing and (cut := request.stop_at(text)) is not None:
                    return text[:cut], "stop"
                if self._counted() >= request.max_new_tokens:
                    return text, "length"
                if (reason := request.interrupted()) is not None:
                    return text, reason
            pending = self._step()
