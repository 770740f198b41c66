"""What to load, as views of the user's ``Settings``: the one place that maps settings
onto an engine's load.

``LoadSpec`` is the part of ``Settings`` a model load depends on, with what the chosen
backend does not read left at its default, so that changing an unrelated setting (or
one of the other backend's) never reloads the model: the host reloads exactly when
the spec changes. ``RemoteSpec`` is the part of a ``LoadSpec`` the OpenAI-compatible
backend reads, in its own units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mmlsp.config import Settings

CompletionEndpoint = Literal["completions", "infill"]
# Connection failures: retries per request (before any response; never HTTP errors).
RETRIES = 2


@dataclass(frozen=True)
class LoadSpec:
    model: str
    device: str
    fim_template: str
    cache_dir: str
    # "local": in-process torch; "openai": an OpenAI-compatible server at base_url.
    backend: str = "local"
    # The remote backend's (Settings of the same names; max_concurrent_requests).
    base_url: str = ""
    # The NAME of the environment variable holding the API key, never the key.
    api_key_env: str = ""
    completion_endpoint: str = "completions"
    request_timeout_ms: int = 30_000
    max_concurrency: int = 4
    # The in-process backend's. trust_remote_code is set only from the user's own
    # launch (config.USER_LEVEL_ONLY).
    trust_remote_code: bool = False
    decode_mode: str = "auto"
    dtype: str = "auto"

    @classmethod
    def from_settings(
        cls, s: Settings, model: str | None = None, fim_template: str | None = None
    ) -> LoadSpec:
        """The spec for ``s`` (``model``/``fim_template`` override, e.g. for chat)."""
        remote = s.backend != "local"
        return cls(
            model if model is not None else s.model,
            s.device,
            fim_template if fim_template is not None else s.fim_template,
            s.cache_dir,
            backend=s.backend,
            # Only what the chosen backend reads; the rest keeps its default.
            base_url=s.base_url if remote else "",
            api_key_env=s.api_key_env if remote else "",
            completion_endpoint=s.completion_endpoint if remote else "completions",
            request_timeout_ms=s.request_timeout_ms if remote else 30_000,
            max_concurrency=s.max_concurrent_requests if remote else 4,
            trust_remote_code=s.trust_remote_code and not remote,
            decode_mode=s.decode_mode if not remote else "auto",
            dtype=s.dtype if not remote else "auto",
        )


@dataclass(frozen=True)
class RemoteSpec:
    base_url: str
    model: str
    api_key_env: str = ""
    completion_endpoint: CompletionEndpoint = "completions"
    request_timeout_s: float = 30.0
    max_concurrency: int = 4
    retries: int = RETRIES

    @classmethod
    def from_load_spec(cls, spec: LoadSpec) -> RemoteSpec:
        from mmlsp.config import BUILTIN_MODEL

        return cls(
            base_url=spec.base_url,
            # The builtin default names no served model: take the server's own.
            model="auto" if spec.model == BUILTIN_MODEL else spec.model,
            api_key_env=spec.api_key_env,
            completion_endpoint="infill" if spec.completion_endpoint == "infill" else "completions",
            request_timeout_s=spec.request_timeout_ms / 1000,
            max_concurrency=spec.max_concurrency,
        )

    @classmethod
    def from_settings(cls, s: Settings) -> RemoteSpec:
        return cls.from_load_spec(LoadSpec.from_settings(s))
