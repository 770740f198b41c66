"""What an OpenAI-compatible server is, asked once at load time (synchronously, on the
loader thread): whether it answers, which kind of server it is, which models it
serves and so which name to send, and, where it has a tokenize endpoint, which FIM
tokens are single special tokens and about how many characters a token holds.

Nothing found here stops the engine: problems become ``warnings`` shown once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from mmlsp.engine.remote_errors import connection_error, http_error, redact_url
from mmlsp.engine.templates import candidate_tokens

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]
# A tokenize endpoint: its path, and the request body for a text.
Tokenize = tuple[str, Callable[[str], dict[str, Any]]]

# Model names that mean "whatever the server serves" (its first listed model).
AUTO_MODELS = ("", "auto")
# A few lines of typical code, to calibrate the characters-per-token estimate.
_CALIBRATION = (
    "def load(path: str, *, encoding: str = 'utf-8') -> dict[str, int]:\n"
    "    counts = {}\n"
    "    with open(path, encoding=encoding) as handle:\n"
    "        for line in handle:\n"
    "            key = line.strip().split(',')[0]\n"
    "            counts[key] = counts.get(key, 0) + 1  # tally\n"
    "    return counts\n"
)


@dataclass
class ServerFacts:
    """What the probe learned."""

    model: str  # the model name to send
    server_kind: str = "unknown"
    served_models: list[str] = field(default_factory=list)
    reachable: bool = False
    warnings: list[str] = field(default_factory=list)
    tokenize: Tokenize | None = None
    # Known FIM tokens the server's tokenizer confirmed as single tokens.
    vocab: frozenset[str] = frozenset()
    chars_per_token: float = 3.0  # conservative until calibrated


def probe_server(
    client: httpx.Client, root: str, model: str, key_env: str, progress: Progress
) -> ServerFacts:
    """Probe the server at ``root`` (``baseUrl`` without ``/v1``) for ``model``."""
    probe = _Probe(client, root, key_env)
    progress(f"contacting {probe.where}", 10)
    facts = probe.models(model)
    if facts.reachable:
        progress("probing the server's tokenizer", 50)
        probe.tokenizer(facts)
    return facts


class _Probe:
    def __init__(self, client: httpx.Client, root: str, key_env: str) -> None:
        self.client = client
        self.root = root
        self.where = redact_url(root)
        self.key_env = key_env

    def models(self, model: str) -> ServerFacts:
        """Reachability, server kind and served models, and the model name to send."""
        facts = ServerFacts(model if model not in AUTO_MODELS else "default")
        url = f"{self.root}/v1/models"
        try:
            response = self.client.get(url)
        except httpx.TransportError as exc:
            facts.warnings.append(str(connection_error(exc, self.where)))
            return facts
        facts.reachable = True
        if response.status_code != 200:
            err = http_error(
                response.status_code, response.content, redact_url(url), model, self.key_env
            )
            facts.warnings.append(str(err))
            return facts
        try:
            data = response.json().get("data") or []
            served = [m["id"] for m in data if isinstance(m, dict) and "id" in m]
            owners = {str(m.get("owned_by", "")) for m in data if isinstance(m, dict)}
        except (ValueError, AttributeError, TypeError):
            served, owners = [], set()
        facts.served_models = served
        facts.server_kind = self.kind(owners)
        if model in AUTO_MODELS:
            if served:
                facts.model = served[0]
            else:
                facts.warnings.append(f"the inference server at {self.where} lists no models")
        elif served and model not in served:
            facts.warnings.append(
                f"the inference server at {self.where} does not list model {model!r}; "
                f"it serves {', '.join(repr(m) for m in served[:5])}"
            )
        return facts

    def kind(self, owners: set[str]) -> str:
        for owner, kind in (("vllm", "vllm"), ("sglang", "sglang"), ("llamacpp", "llama.cpp")):
            if owner in owners:
                return kind
        if "me" in owners:
            return "llama-cpp-python"
        if owners & {"library", "ollama"}:
            return "ollama"
        try:  # llama.cpp's native server answers /props even when owned_by differs
            props = self.client.get(f"{self.root}/props", timeout=3.0)
            if props.status_code == 200 and "default_generation_settings" in props.text:
                return "llama.cpp"
        except httpx.TransportError:
            pass
        return "openai-compatible"

    def tokenizer(self, facts: ServerFacts) -> None:
        """Find a tokenize endpoint; learn which FIM tokens are single special tokens."""
        model = facts.model
        attempts: list[Tokenize] = [
            ("/tokenize", lambda text: {"model": model, "prompt": text}),  # vLLM, SGLang
            ("/tokenize", lambda text: {"content": text, "add_special": False}),  # llama.cpp
            ("/extras/tokenize", lambda text: {"input": text, "model": model}),  # llama-cpp-py
        ]
        for attempt in attempts:
            if self.count(attempt, "x") is not None:
                facts.tokenize = attempt
                break
        if facts.tokenize is None:
            log.info("%s has no tokenize endpoint: estimating token counts", self.where)
            return
        base = self.count(facts.tokenize, "") or 0
        confirmed = set()
        for token in candidate_tokens():
            count = self.count(facts.tokenize, token)
            if count is not None and count - base == 1:
                confirmed.add(token)
        facts.vocab = frozenset(confirmed)
        if (tokens := self.count(facts.tokenize, _CALIBRATION)) and tokens > base:
            # A little under the measured ratio, so counts err on the high side.
            facts.chars_per_token = max(1.5, 0.85 * len(_CALIBRATION) / (tokens - base))

    def count(self, tokenize: Tokenize, text: str) -> int | None:
        path, body = tokenize
        try:
            response = self.client.post(f"{self.root}{path}", json=body(text), timeout=5.0)
            if response.status_code != 200:
                return None
            tokens = response.json().get("tokens")
        except (httpx.TransportError, ValueError, AttributeError):
            return None
        return len(tokens) if isinstance(tokens, list) else None
