"""Command line: ``mmlsp [serve]`` speaks LSP; ``mmlsp complete`` prints one suggestion."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

from mmlsp import __version__
from mmlsp.config import (
    BACKENDS,
    DECODE_MODES,
    DEVICES,
    DTYPES,
    LOG_LEVELS,
    SETTINGS,
    Settings,
    from_environment,
    merge,
)
from mmlsp.prompt.fim import TEMPLATE_NAMES

log = logging.getLogger("mmlsp")

# A flag whose dest is a setting's name sets that setting (--max-new-tokens: maxNewTokens).
_SETTING_FLAGS = {name: key for key, (name, _) in SETTINGS.items()}


def _about(key: str) -> str | None:
    """A setting's description, as its flag's help."""
    return SETTINGS[key][1].description


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS so a flag given before or after the subcommand both count.
    s = argparse.SUPPRESS
    parser.add_argument("--model", default=s, help="HF hub id, local model directory or .gguf file")
    parser.add_argument("--device", choices=DEVICES, default=s, help=_about("device"))
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
    parser.add_argument("--time-budget-ms", type=int, default=s, help=_about("timeBudgetMs"))
    parser.add_argument("--max-new-tokens", type=int, default=s, help=_about("maxNewTokens"))
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=s, help=_about("logLevel"))
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
    stats = sub.add_parser(
        "stats",
        help="what became of the suggestions shown here (recorded on this machine only)",
    )
    stats.add_argument("--days", type=float, default=None, help="only the last this many days")
    stats.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="bar charts")
    stats.add_argument("--json", action="store_true", help="the numbers as JSON")
    stats.add_argument("--delete", action="store_true", help="delete every recorded event")
    stats.add_argument("--cache-dir", default=argparse.SUPPRESS, help=_about("cacheDir"))
    return parser


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    settings, errors = from_environment()
    flags = {
        key: getattr(args, dest) for dest, key in _SETTING_FLAGS.items() if hasattr(args, dest)
    }
    settings, flag_errors = merge(settings, flags, user_level=True)
    return settings, errors + flag_errors


# Warnings other libraries raise about their own deprecations: nothing a user can act
# on, so they go to the debug log (editor and --log-file), never to stderr.
_DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` into the log (``file`` and ``line`` are not used)."""
    level = logging.DEBUG if issubclass(category, _DEPRECATIONS) else logging.WARNING
    name = Path(filename).stem
    logging.getLogger("mmlsp.warnings").log(
        level, "%s (%s:%s): %s", category.__name__, name, lineno, message
    )


class _FromTransformers(logging.Handler):
    """Hands transformers' log records to mmlsp's handlers (its deprecations at debug)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and "deprecat" in record.getMessage().lower():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        target = logging.getLogger("mmlsp.transformers")
        if target.isEnabledFor(record.levelno):
            target.handle(record)


def setup_logging(level: str, log_file: str | None, console_level: str = "warning") -> None:
    """mmlsp's logs at ``level`` to ``log_file`` (and, in the server, to the editor through
    ``window/logMessage``); stderr only gets ``console_level`` and above.

    Editors show a server's stderr as errors (Neovim's lsp.log, VS Code's output
    channel), so informational lines must not go there. Python warnings and
    transformers' log records go through the same handlers.
    """
    logger = logging.getLogger("mmlsp")
    logger.setLevel(level.upper())
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    # stdout belongs to the LSP stream, so console logs go to stderr.
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level.upper())
    handlers: list[logging.Handler] = [console]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    warnings.showwarning = _log_warning


def route_transformers_logs() -> None:
    """transformers' log records through mmlsp's handlers, not its own stderr handler,
    and no progress bars (noise in an editor's log, and beside our own progress)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.disable_default_handler()
    transformers_log = logging.getLogger("transformers")
    if not any(isinstance(h, _FromTransformers) for h in transformers_log.handlers):
        transformers_log.addHandler(_FromTransformers())


def _read_source(path: Path, line: int, character: int) -> tuple[str | None, str | None]:
    """The file's text, or None and a one-line reason it cannot be completed at all."""
    if line < 0 or character < 0:
        return None, f"--line and --character count from 0; got {line}:{character}"
    try:
        text = path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        return None, f"{path} is a directory, not a file"
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except UnicodeDecodeError as exc:
        return None, f"cannot read {path}: not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    from mmlsp.text.positions import line_count, line_text, utf16_len

    lines = line_count(text)
    if line >= lines:
        return None, f"line {line} is outside {path} (its lines are 0 to {lines - 1})"
    width = utf16_len(line_text(text, line))
    if character > width:
        return None, (
            f"character {character} is outside line {line} of {path} "
            f"(its characters are 0 to {width})"
        )
    return text, None


def _why_empty(result: Any) -> str:
    """One line saying why a completion request ended with nothing to show."""
    if result is None:
        return "no suggestion: the file is larger than maxFileBytes"
    if result.finish_reason == "deadline" and not result.text:
        return "no suggestion: the time budget ran out before the first token"
    if not result.text.strip():
        return "no suggestion: the model ended its answer at once"
    shown = result.text if len(result.text) <= 60 else result.text[:59] + "…"
    return (
        "no suggestion: nothing was left of the model's answer after cleanup "
        f"({result.generated_tokens} tokens: {shown!r})"
    )


def run_complete(args: argparse.Namespace, settings: Settings) -> int:
    """Print the suggestion at the position.

    Exit status: 0 when the command ran (stdout holds the suggestion, and is empty when
    there is none, with the reason on stderr), 1 when the model failed to load, 2 when
    the file or position cannot be used.
    """
    text, problem = _read_source(args.file, args.line, args.character)
    if text is None:
        print(f"mmlsp: {problem}", file=sys.stderr)
        return 2
    if not text.strip():
        # Nothing to continue: say so at once rather than load a model for it.
        what = "holds only whitespace" if text else "is empty"
        print(f"mmlsp: no suggestion: the file {what}", file=sys.stderr)
        return 0
    if len(text.encode("utf-8")) > settings.max_file_bytes:
        print(
            f"mmlsp: no suggestion: the file is larger than maxFileBytes "
            f"({settings.max_file_bytes} bytes)",
            file=sys.stderr,
        )
        return 0

    from lsprotocol import types

    from mmlsp.complete import generate_completion
    from mmlsp.engine import EngineHost, LoadSpec
    from mmlsp.syntax import language_for
    from mmlsp.text.positions import offset_at

    position = types.Position(line=args.line, character=args.character)
    if not hasattr(args, "time_budget_ms"):
        # No editor is waiting: let a slow CPU finish the suggestion.
        settings = dataclasses.replace(
            settings, time_budget_ms=max(settings.time_budget_ms, 120_000)
        )
    host = EngineHost()

    def progress(message: str, _pct: int | None) -> None:
        print(f"mmlsp: {message}", file=sys.stderr)

    route_transformers_logs()
    print(f"mmlsp: loading {settings.model}", file=sys.stderr)
    host.load(
        LoadSpec.from_settings(settings),
        progress,
    )
    status = host.wait_ready()
    if status.state != "ready":
        print(f"mmlsp: model failed to load: {status.message}", file=sys.stderr)
        host.shutdown()
        return 1
    print(
        f"mmlsp: {status.model} on {status.device} ({status.dtype}, {status.decode} decode), "
        f"template {status.template}, "
        f"loaded in {status.load_seconds}s",
        file=sys.stderr,
    )
    try:
        language = language_for(None, args.file.resolve().as_uri())
        offset = offset_at(text, position.line, position.character)
        completion, result = asyncio.run(
            generate_completion(text, offset, settings, host, language=language)
        )
    finally:
        host.shutdown()
    if result is not None:
        print(
            f"mmlsp: {result.generated_tokens} tokens in {result.seconds:.2f}s "
            f"({result.finish_reason})",
            file=sys.stderr,
        )
    if completion is None:
        print(f"mmlsp: {_why_empty(result)}", file=sys.stderr)
        return 0
    print(completion.text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings, errors = settings_from_args(args)
    # The server's editor gets every level through window/logMessage, and stderr only
    # warnings and errors; `complete` prints its own progress, and a --log-level given
    # on its command line.
    console = "warning"
    if args.command == "complete" and hasattr(args, "log_level"):
        console = settings.log_level
    setup_logging(settings.log_level, getattr(args, "log_file", None), console)
    for error in errors:
        log.warning("setting %s", error)
    if args.command == "complete":
        return run_complete(args, settings)
    if args.command == "stats":
        return run_stats(args, settings)
    return serve(args, settings)


def run_stats(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """``mmlsp stats``: the local acceptance statistics, printed, plotted or deleted."""
    import sqlite3
    import time

    from mmlsp.acceptance.report import plot, render, summarize, to_json
    from mmlsp.acceptance.store import EventStore

    out = out or sys.stdout
    store = EventStore.in_dir(settings.cache_dir, settings.stats_retention_days)
    if args.delete:
        existed = store.delete()
        print(
            f"deleted {store.path}" if existed else f"nothing to delete at {store.path}", file=out
        )
        return 0
    if not store.path.exists():
        print(f"No suggestions recorded yet ({store.path}).", file=out)
        return 0
    since = time.time() - args.days * 86400 if args.days is not None else None
    try:
        summary = summarize(store.events(since=since))
    except sqlite3.Error as exc:
        print(f"mmlsp stats: cannot read {store.path}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(to_json(summary) if args.json else render(summary, str(store.path)), file=out)
    if args.plot is not None:
        try:
            drawn_with = plot(summary, args.plot)
        except (OSError, ValueError) as exc:
            print(f"mmlsp stats: cannot write the plot {args.plot}: {exc}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot} ({drawn_with})", file=out)
    return 0


def serve(args: Any, settings: Settings) -> int:
    from mmlsp.lsp.server import create_server
    from mmlsp.memory import limit_malloc_arenas

    route_transformers_logs()
    limit_malloc_arenas()
    server = create_server(settings)
    if getattr(args, "tcp", False):
        server.start_tcp(getattr(args, "host", "127.0.0.1"), getattr(args, "port", 2087))
        return 0
    server.start_io()
    # The server has shut down, but pygls' stdin reader thread is still blocked in a
    # read: finalizing the interpreter under it aborts ("Fatal Python error:
    # _enter_buffered_busy" on stderr, which editors show as an error at every exit).
    # Leave without finalizing, once the logs are written.
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # pygls closed stdout already
            stream.flush()
    os._exit(0)
