"""Settings: each declared once, with its default, meaning and check; merged from each source.

Sources, lowest precedence first: defaults, environment (``MMLSP_*``), command-line
flags, ``initializationOptions``, then ``workspace/didChangeConfiguration``. Keys are
camelCase as editors send them. A bad value never stops the server: it is reported
once and the previous (or default) value is kept.

Each setting is one field of ``Settings``. Its type says which values it takes (an
``Integer`` with bounds, ``OneOf`` some words, ``OnOff``, ``Text``), its ``description``
what it means; its camelCase key (``maxNewTokens``), its environment variable
(``MMLSP_MAX_NEW_TOKENS``) and the messages for bad values all follow from that.

Why pydantic (v2) rather than the attrs + cattrs that lsprotocol already brings: with
``pydantic.dataclasses``, ``Settings`` stays a standard-library dataclass, so the code,
tests and benchmarks that derive variants with ``dataclasses.replace`` keep working and
every instance, however it is built, is checked; bounds, choices, patterns, strictness
and camelCase aliases are pydantic's own, and a bad value comes back as a structured
error (its kind, its bounds) that ``merge`` words as mmlsp always has. attrs would have
needed hand-written validators and renames, and breaks ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import BeforeValidator, ConfigDict, Field, Strict, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, core_schema

BUILTIN_MODEL = "builtin:gemma-3-270m"
# A small instruction-tuned model for chat (actions, hover, review), as chatModel.
BUILTIN_CHAT_MODEL = "builtin:smollm2-135m-instruct"
# The FIM templates a user may name (fimTemplate, --fim-template). Declared here, the
# foundation, so that settings need no prompt code; mmlsp.prompt.fim, which defines the
# templates, re-exports it and checks at import that it names exactly those.
TEMPLATE_NAMES: tuple[str, ...] = (
    "qwen",
    "codegemma",
    "starcoder",
    "santacoder",
    "deepseek",
    "codellama",
    "none",
)
DEVICES = ("auto", "cuda", "cpu")
LOG_LEVELS = ("error", "warning", "info", "debug")
DOCSTRING_STYLES = ("google", "numpy", "rest")
# auto: review on save only where the chat model is fast (a GPU or a remote backend).
REVIEW_MODES = ("auto", "on", "off")
BACKENDS = ("local", "openai")
COMPLETION_ENDPOINTS = ("completions", "infill")
# How the in-process engine decodes (see engine/local.py); auto: compiled on CUDA.
DECODE_MODES = ("auto", "dynamic", "static", "compiled")
# Next-edit prompt formats (mmlsp.prompt.next_edit checks at import that they match).
NEXT_EDIT_FORMATS = ("zeta", "sweep", "generic")
# Weight and activation dtype of the in-process model; auto: bf16/fp16 on CUDA, fp32 on
# the CPU (exact, and fast everywhere). int8: int8 weights, bf16 arithmetic, CPU only.
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
# What apiKeyEnv may name: only MMLSP_* variables, so that workspace settings could
# never send other secrets (cloud credentials...) away.
API_KEY_ENV = re.compile(r"^MMLSP_[A-Za-z0-9_]+$")
# A gap between edits longer than this is a pause in typing, not typing speed: the
# adaptive debounce (features/debounce.py) learns the speed from shorter gaps and holds
# no request made after a pause. Not a setting; the latency benchmark waits it out.
TYPING_PAUSE_S = 1.5


def default_cache_dir() -> Path:
    if env := os.environ.get("MMLSP_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmlsp"


# -- the kinds of value ---------------------------------------------------------------


def _whole_number(value: Any) -> Any:
    # JSON has one kind of number: 64.0 is the integer 64 (a strict int refuses floats).
    return int(value) if isinstance(value, float) and value.is_integer() else value


_ON_OFF_WORDS = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}


def _on_off_word(value: Any) -> Any:
    # The environment spells on/off settings as words.
    return _ON_OFF_WORDS.get(value.strip().lower(), value) if isinstance(value, str) else value


def _review_switch(value: Any) -> Any:
    # reviewOnSave: true and false mean on and off.
    return ("on" if value else "off") if isinstance(value, bool) else value


# No strings ("12") or booleans (true) for a number, no numbers for a string: editors
# send JSON, and a value of the wrong kind is a mistake to report, not to guess at.
Integer = Annotated[int, BeforeValidator(_whole_number), Strict()]
OnOff = Annotated[bool, BeforeValidator(_on_off_word), Strict()]
Text = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1)]


def _fraction(value: Any) -> Any:
    # A number between 0 and 1: JSON's 0 and 1 are integers, the environment spells it.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Fraction = Annotated[float, BeforeValidator(_fraction), Strict()]


@dataclasses.dataclass(frozen=True)
class OneOf:
    """A setting that is one of these words, given in any case, trimmed."""

    choices: tuple[str, ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.chain_schema(
            [
                core_schema.str_schema(
                    strict=True, strip_whitespace=True, min_length=1, to_lower=True
                ),
                core_schema.literal_schema(list(self.choices)),
            ]
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclasses.dataclass(frozen=True)
class Hidden:
    """A bad value is never echoed (a URL may carry credentials; a key may be pasted in
    place of its variable's name): this message is reported instead."""

    message: str


@dataclasses.dataclass(frozen=True)
class UserLevelOnly:
    """Only the user's own launch of mmlsp may set this (``flag`` or the environment),
    never ``initializationOptions`` or ``didChangeConfiguration``: those can carry a
    cloned repository's workspace settings (.vscode/settings.json, exrc, a client that
    forwards them)."""

    flag: str


BaseUrl = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, pattern=r"^https?://[^/\s]+\S*$"),
    pydantic.AfterValidator(lambda url: url.rstrip("/")),
    Hidden("baseUrl must be an http:// or https:// URL (value not shown)"),
    UserLevelOnly("--base-url"),
]
ApiKeyEnv = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, pattern=f"^$|{API_KEY_ENV.pattern}"),
    Hidden(
        "apiKeyEnv must be the NAME of an environment variable starting with MMLSP_ "
        "(e.g. MMLSP_API_KEY), not the key itself (value not shown)"
    ),
    UserLevelOnly("--api-key-env"),
]


# -- the settings ---------------------------------------------------------------------


@pydantic.dataclasses.dataclass(
    frozen=True,
    config=ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="forbid"
    ),
)
class Settings:
    """Every user-facing option. Field names are the camelCase keys, snake_cased."""

    model: Text = Field(
        default=BUILTIN_MODEL,
        description="The completion model: a Hugging Face hub id, a local model directory "
        "or a .gguf file.",
    )
    device: Annotated[str, OneOf(DEVICES)] = Field(
        default="auto",
        description="Where the in-process model runs: auto (CUDA if available), cuda or cpu.",
    )
    fim_template: Annotated[str, OneOf(("auto", *TEMPLATE_NAMES))] = Field(
        default="auto",
        description="The fill-in-the-middle prompt format; auto detects it from the "
        "tokenizer's special tokens.",
    )
    max_new_tokens: Integer = Field(
        default=64, ge=1, le=1024, description="Token limit for a single-line suggestion."
    )
    max_new_tokens_multiline: Integer = Field(
        default=128, ge=1, le=2048, description="Token limit for a block suggestion."
    )
    prefix_tokens: Integer = Field(
        default=1500, ge=16, le=32768, description="Prompt budget for the text before the cursor."
    )
    suffix_tokens: Integer = Field(
        default=500, ge=0, le=32768, description="Prompt budget for the text after the cursor."
    )
    time_budget_ms: Integer = Field(
        default=4000,
        ge=50,
        le=600_000,
        description="Hard limit for one completion request; what was generated by then is used.",
    )
    diagnostics_debounce_ms: Integer = Field(
        default=150,
        ge=0,
        le=10_000,
        description="Delay before syntax diagnostics are republished after an edit.",
    )
    max_file_bytes: Integer = Field(
        default=4_000_000,
        ge=1000,
        le=1_000_000_000,
        description="Larger documents get no syntax tree and no completion context.",
    )
    log_level: Annotated[str, OneOf(LOG_LEVELS)] = Field(
        default="info", description="How much mmlsp logs: error, warning, info or debug."
    )
    cache_dir: Text = Field(
        default_factory=lambda: str(default_cache_dir()),
        description="Where converted GGUF weights are cached (default: $MMLSP_CACHE_DIR, "
        "else ~/.cache/mmlsp).",
    )
    chat_model: Annotated[str, Strict(), StringConstraints(strip_whitespace=True)] = Field(
        default="",
        description="The model for code actions, hover and review; empty: the same as "
        "model (then loaded once).",
    )
    vision_model: Annotated[str, Strict(), StringConstraints(strip_whitespace=True)] = Field(
        default="",
        description="A vision-language model (a Hugging Face id or a local directory, or "
        "the served model with backend openai) that describes the images the code refers "
        "to; empty: off, and no image is read.",
    )
    docstring_style: Annotated[str, OneOf(DOCSTRING_STYLES)] = Field(
        default="google", description="The style of written docstrings: google, numpy or rest."
    )
    review_on_save: Annotated[str, OneOf(REVIEW_MODES), BeforeValidator(_review_switch)] = Field(
        default="auto",
        description="Review a file when it is saved: on, off, or auto (only where the chat "
        "model is fast: a GPU or a remote backend).",
    )
    # Latency (issue 4).
    kv_reuse: OnOff = Field(
        default=True,
        description="Keep each document's prompt KV cache and prefill only the tokens after "
        "the prefix shared with the last prompt.",
    )
    typeahead: OnOff = Field(
        default=True,
        description="Answer typed-ahead text from recent suggestions and the generation in "
        "flight, and compute the next suggestion after one is accepted.",
    )
    debounce_max_ms: Integer = Field(
        default=200,
        ge=0,
        le=5_000,
        description="Longest wait before a model call while the user types over unanswered "
        "requests (0: never wait).",
    )
    prompt_lookup_tokens: Integer = Field(
        default=0,
        ge=0,
        le=64,
        description="Prompt-lookup draft tokens verified per decoding step (0: off).",
    )
    reuse_draft_tokens: Integer = Field(
        default=8,
        ge=0,
        le=64,
        description="With kvReuse: draft tokens per step taken from the document's last "
        "generation (0: off).",
    )
    token_healing: OnOff = Field(
        default=True,
        description="When the cursor is inside a word, let the model spell the word again "
        "from its start (token healing) and show what follows the cursor; the torch engine "
        "only, for now.",
    )
    decode_mode: Annotated[str, OneOf(DECODE_MODES)] = Field(
        default="auto",
        description="How the in-process model decodes: compiled (a torch.compile'd step, "
        "over a static KV cache with CUDA graphs on a GPU), static (the static cache "
        "alone), dynamic (a growing cache), or auto (compiled on CUDA where the model "
        "allows it, else dynamic).",
    )
    dtype: Annotated[str, OneOf(DTYPES)] = Field(
        default="auto",
        description="The in-process model's dtype: auto (bfloat16 or float16 on CUDA, "
        "float32 on the CPU), float32, bfloat16, float16, or int8 (CPU only: int8 weights, "
        "bfloat16 arithmetic).",
    )
    cross_file_tokens: Integer = Field(
        default=500,
        ge=0,
        le=8192,
        description="Prompt budget for context from outside the window, at the prompt's "
        "start: out-of-view imports and enclosing headers, definitions from other files, "
        "recent edits elsewhere (0: off).",
    )
    trust_remote_code: Annotated[OnOff, UserLevelOnly("--trust-remote-code")] = Field(
        default=False,
        description="Let a model run the Python code shipped with its weights. A "
        "workspace must never be able to make mmlsp run its code.",
    )
    # Shared inference server (issue 7). No network is used unless backend is "openai".
    backend: Annotated[str, OneOf(BACKENDS), UserLevelOnly("--backend")] = Field(
        default="local",
        description="local: run the model in this process; openai: send every request to "
        "the OpenAI-compatible server at baseUrl (vLLM, SGLang, llama.cpp server, Ollama).",
    )
    base_url: BaseUrl = Field(
        default="http://127.0.0.1:8000",
        description="The OpenAI-compatible server, with or without /v1.",
    )
    api_key_env: ApiKeyEnv = Field(
        default="",
        description="The NAME of an environment variable (MMLSP_*) that holds the API key, "
        "never the key itself.",
    )
    completion_endpoint: Annotated[str, OneOf(COMPLETION_ENDPOINTS)] = Field(
        default="completions",
        description="completions: /v1/completions with mmlsp's FIM prompt; infill: "
        "llama.cpp's /infill.",
    )
    request_timeout_ms: Integer = Field(
        default=30_000,
        ge=100,
        le=600_000,
        description="Longest wait for the inference server's next bytes.",
    )
    max_concurrent_requests: Integer = Field(
        default=4, ge=1, le=64, description="Requests to the inference server in flight at once."
    )

    # Next-edit suggestions (issue 24).
    next_edit: OnOff = Field(
        default=True,
        description="Answer next-edit requests (mmlsp/nextEdit): the follow-up change after "
        "your last edits, anywhere in the lines around the cursor.",
    )
    next_edit_format: Annotated[str, OneOf(("auto", *NEXT_EDIT_FORMATS))] = Field(
        default="auto",
        description="The next-edit prompt format: zeta (Zed's Zeta), sweep (Sweep's "
        "next-edit models), generic (any other model), or auto (from the model).",
    )
    next_edit_time_budget_ms: Integer = Field(
        default=10_000,
        ge=50,
        le=600_000,
        description="Hard limit for one next-edit request; a rewrite not finished by then "
        "is not shown.",
    )

    # Acceptance statistics and gating (issue 26). Stored on this machine only.
    acceptance_stats: OnOff = Field(
        default=True,
        description="Record each suggestion and what became of it (shown, accepted, "
        "dismissed; its kind, language, length, latency and the model's confidence; no "
        "code) in acceptance.sqlite3 under cacheDir, on this machine only, for mmlsp "
        "stats and for learning which suggestions to show.",
    )
    stats_retention_days: Integer = Field(
        default=90,
        ge=1,
        le=3650,
        description="How long recorded suggestions are kept (at most 100,000 of them).",
    )
    suggestion_threshold: Fraction = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="Hide a suggestion whose predicted chance of being accepted is below "
        "this (0: show every one; higher: fewer, surer suggestions). The chance comes from "
        "the model's confidence, calibrated on benchmarks and then on your own accepts.",
    )

    def to_dict(self) -> dict[str, Any]:
        """The settings by camelCase key, as ``mmlsp/status`` reports them."""
        return {key: getattr(self, name) for key, (name, _) in SETTINGS.items()}


# camelCase key -> (field name, declaration), in declaration order.
SETTINGS: dict[str, tuple[str, FieldInfo]] = {
    info.alias or name: (name, info) for name, info in vars(Settings)["__pydantic_fields__"].items()
}


def _marks(info: FieldInfo, kind: type[Any]) -> list[Any]:
    return [mark for mark in info.metadata if isinstance(mark, kind)]


def _bounds(info: FieldInfo) -> tuple[int, int] | None:
    low = [mark.ge for mark in info.metadata if hasattr(mark, "ge")]
    high = [mark.le for mark in info.metadata if hasattr(mark, "le")]
    return (low[0], high[0]) if low and high else None


# Settings only the user's own launch of mmlsp may set (a flag or the environment). One
# runs code from the model; the others decide where the user's code is sent and with
# which key. Each maps to its flag, for the message that says where to set it.
USER_LEVEL_ONLY = {
    key: mark.flag for key, (_, info) in SETTINGS.items() for mark in _marks(info, UserLevelOnly)
}
# Derived views of the declarations (clients/vscode/e2e/check_settings.py reads them).
_CHOICES = {
    key: mark.choices for key, (_, info) in SETTINGS.items() for mark in _marks(info, OneOf)
}
_RANGES = {key: bounds for key, (_, info) in SETTINGS.items() if (bounds := _bounds(info))}


def _complaint(key: str, info: FieldInfo, value: Any, error: ErrorDetails) -> str:
    """What is wrong with ``value`` for ``key``, worded from pydantic's error."""
    if hidden := _marks(info, Hidden):
        return str(hidden[0].message)
    kind = error["type"]
    if kind in ("greater_than_equal", "less_than_equal") and key in _RANGES:
        low, high = _RANGES[key]
        return f"{key} must be between {low} and {high}, got {value!r}"
    if kind.startswith("int_"):
        return f"{key} must be an integer, got {value!r}"
    if kind.startswith("bool_"):
        return f"{key} must be true or false, got {value!r}"
    if kind == "literal_error" and key in _CHOICES:
        # The value as it was compared: trimmed and lower-cased.
        return f"{key} must be one of {', '.join(_CHOICES[key])}, got {error['input']!r}"
    if kind in ("string_type", "string_too_short"):
        return f"{key} must be a non-empty string, got {value!r}"
    return f"{key}: {error['msg']}, got {value!r}"


def _checked(base: Settings, key: str, value: Any) -> tuple[Any, str | None]:
    """``value`` for ``key`` as the declaration normalises it, or what is wrong with it."""
    name, info = SETTINGS[key]
    try:
        return getattr(dataclasses.replace(base, **{name: value}), name), None
    except pydantic.ValidationError as exc:
        return None, _complaint(key, info, value, exc.errors()[0])


def merge(
    base: Settings, raw: Mapping[str, Any] | None, *, user_level: bool = False
) -> tuple[Settings, list[str]]:
    """Apply editor-style settings over ``base``; return the result and error messages.

    ``raw`` may be flat (``{"model": ...}``) or nested under ``"mmlsp"``, as
    ``workspace/didChangeConfiguration`` often sends it. ``None`` values mean "unset".
    ``user_level`` is true only for the user's own flags and environment; other
    sources cannot change ``USER_LEVEL_ONLY`` keys.
    """
    if raw is None:
        return base, []
    if not isinstance(raw, Mapping):
        return base, [f"settings must be an object, got {type(raw).__name__}"]
    if isinstance(raw.get("mmlsp"), Mapping):
        raw = raw["mmlsp"]
    changes: dict[str, Any] = {}
    errors: list[str] = []
    for key, value in raw.items():
        if value is None:
            continue
        if key not in SETTINGS:
            errors.append(f"unknown setting {key!r} ignored")
            continue
        name = SETTINGS[key][0]
        if key in USER_LEVEL_ONLY and not user_level:
            if _checked(base, key, value)[0] != getattr(base, name):  # silent when unchanged
                errors.append(
                    f"{key} can only be set where you start mmlsp (the {USER_LEVEL_ONLY[key]}"
                    f" flag or MMLSP_{name.upper()}), not in editor or workspace "
                    f"settings; keeping {getattr(base, name)!r}"
                )
            continue
        checked, error = _checked(base, key, value)
        if error:
            errors.append(f"{error}; keeping {getattr(base, name)!r}")
        else:
            changes[name] = checked
    return dataclasses.replace(base, **changes), errors


def from_environment(environ: Mapping[str, str] | None = None) -> tuple[Settings, list[str]]:
    """Defaults overridden by ``MMLSP_MODEL``, ``MMLSP_DEVICE`` and friends."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for key, (name, _) in SETTINGS.items():
        env_name = "MMLSP_" + name.upper()
        if env_name in environ:
            value: Any = environ[env_name]
            if key in _RANGES and value.strip().lstrip("-").isdigit():
                value = int(value)  # anything else is left for merge() to report
            raw[key] = value
    return merge(Settings(), raw, user_level=True)
