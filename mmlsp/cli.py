"""Command line: ``mmlsp [serve]`` speaks LSP; ``mmlsp complete`` prints one suggestion."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from mmlsp import __version__
from mmlsp.config import (
    BACKENDS,
    DECODE_MODES,
    DEVICES,
    DTYPES,
    LOG_LEVELS,
    Settings,
    from_environment,
    merge,
)
from mmlsp.prompts import TEMPLATE_NAMES

log = logging.getLogger("mmlsp")

# Flags that map onto settings keys (flag dest -> settings key).
_SETTING_FLAGS = {
    "model": "model",
    "device": "device",
    "fim_template": "fimTemplate",
    "log_level": "logLevel",
    "time_budget_ms": "timeBudgetMs",
    "max_new_tokens": "maxNewTokens",
    "trust_remote_code": "trustRemoteCode",
    "backend": "backend",
    "base_url": "baseUrl",
    "api_key_env": "apiKeyEnv",
    "decode_mode": "decodeMode",
    "dtype": "dtype",
}


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS so a flag given before or after the subcommand both count.
    s = argparse.SUPPRESS
    parser.add_argument("--model", default=s, help="HF hub id, local model directory or .gguf file")
    parser.add_argument("--device", choices=DEVICES, default=s)
    parser.add_argument(
        "--decode-mode",
        choices=DECODE_MODES,
        default=s,
        help="compiled: torch.compile'd decode step (static KV cache + CUDA graphs on a GPU, "
        "dynamic shapes on the CPU); static; dynamic; "
        "auto (default): compiled on CUDA, dynamic on the CPU",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=s,
        help="model dtype; auto (default): bfloat16/float16 on CUDA, float32 on the CPU; "
        "int8: int8 weights with bfloat16 arithmetic (CPU)",
    )
    parser.add_argument(
        "--fim-template",
        default=s,
        help="FIM template: auto (detect from the tokenizer), " + ", ".join(TEMPLATE_NAMES),
    )
    parser.add_argument("--time-budget-ms", type=int, default=s)
    parser.add_argument("--max-new-tokens", type=int, default=s)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=s)
    parser.add_argument("--log-file", default=s, help="also write logs to this file")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=s,
        help="local: run the model in this process; openai: an OpenAI-compatible server",
    )
    parser.add_argument(
        "--base-url", default=s, help="the inference server, e.g. http://gpu-box:8000/v1"
    )
    parser.add_argument(
        "--api-key-env", default=s, help="NAME of the environment variable with the API key"
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=s,
        help="let the model run Python code shipped with its weights (off by default; "
        "editor and workspace settings cannot turn it on)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmlsp",
        description="A language server for AI code completion from a locally hosted model.",
    )
    parser.add_argument("--version", action="version", version=f"mmlsp {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="speak LSP over stdio (the default) or TCP")
    for p in (parser, serve):
        p.add_argument("--tcp", action="store_true", default=argparse.SUPPRESS)
        p.add_argument("--host", default=argparse.SUPPRESS)
        p.add_argument("--port", type=int, default=argparse.SUPPRESS)
    _common(serve)
    complete = sub.add_parser(
        "complete", help="print the suggestion the server would give at a position"
    )
    complete.add_argument("file", type=Path)
    complete.add_argument("--line", type=int, required=True, help="0-based line, as in LSP")
    complete.add_argument(
        "--character", type=int, required=True, help="0-based UTF-16 column, as in LSP"
    )
    _common(complete)
    return parser


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    settings, errors = from_environment()
    flags = {
        key: getattr(args, dest) for dest, key in _SETTING_FLAGS.items() if hasattr(args, dest)
    }
    settings, flag_errors = merge(settings, flags, user_level=True)
    return settings, errors + flag_errors


def setup_logging(level: str, log_file: str | None) -> None:
    logger = logging.getLogger("mmlsp")
    logger.setLevel(level.upper())
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    # stdout belongs to the LSP stream, so console logs go to stderr.
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)


def run_complete(args: argparse.Namespace, settings: Settings) -> int:
    from lsprotocol import types

    from mmlsp.engine import EngineHost, LoadSpec
    from mmlsp.features.completion import suggest, valid_position
    from mmlsp.syntax import language_for

    try:
        text = args.file.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"mmlsp: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    position = types.Position(line=args.line, character=args.character)
    if not valid_position(text, position):
        print(f"mmlsp: line {args.line} is outside {args.file}", file=sys.stderr)
        return 2
    if not hasattr(args, "time_budget_ms"):
        # No editor is waiting: let a slow CPU finish the suggestion.
        settings = dataclasses.replace(
            settings, time_budget_ms=max(settings.time_budget_ms, 120_000)
        )
    host = EngineHost()

    def progress(message: str, _pct: int | None) -> None:
        print(f"mmlsp: {message}", file=sys.stderr)

    print(f"mmlsp: loading {settings.model}", file=sys.stderr)
    host.load(
        LoadSpec.from_settings(settings),
        progress,
    )
    status = host.wait_ready()
    if status.state != "ready":
        print(f"mmlsp: model failed to load: {status.message}", file=sys.stderr)
        return 1
    print(
        f"mmlsp: {status.model} on {status.device} ({status.dtype}, {status.decode} decode), "
        f"template {status.template}, "
        f"loaded in {status.load_seconds}s",
        file=sys.stderr,
    )
    try:
        language = language_for(None, args.file.resolve().as_uri())
        suggestion = asyncio.run(suggest(text, position, settings, host, language=language))
    finally:
        host.shutdown()
    if suggestion is None:
        print("mmlsp: no suggestion at this position", file=sys.stderr)
        return 0
    r = suggestion.result
    print(
        f"mmlsp: {r.generated_tokens} tokens in {r.seconds:.2f}s ({r.finish_reason})",
        file=sys.stderr,
    )
    print(suggestion.text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings, errors = settings_from_args(args)
    setup_logging(settings.log_level, getattr(args, "log_file", None))
    for error in errors:
        log.warning("setting %s", error)
    if args.command == "complete":
        return run_complete(args, settings)
    return serve(args, settings)


def serve(args: Any, settings: Settings) -> int:
    from transformers.utils import logging as hf_logging

    from mmlsp.memory import limit_malloc_arenas
    from mmlsp.server import create_server

    # Progress bars are noise in an editor's server log.
    hf_logging.disable_progress_bar()
    limit_malloc_arenas()
    server = create_server(settings)
    if getattr(args, "tcp", False):
        server.start_tcp(getattr(args, "host", "127.0.0.1"), getattr(args, "port", 2087))
    else:
        server.start_io()
    return 0
