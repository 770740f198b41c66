"""The grammar registry: which languages have syntax support, how an LSP document
maps onto one, and the per-thread parsers for each.

Also the Python grammar's statement node types, which the outline and the
post-processing filters read off trees.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable
from functools import cache
from urllib.parse import unquote, urlparse

import tree_sitter
import tree_sitter_python

from mmlsp.text.positions import encode_utf8

# Registry key -> factory of the grammar's language capsule.
_GRAMMARS: dict[str, Callable[[], object]] = {"python": tree_sitter_python.language}
# LSP languageId -> registry key.
_LANGUAGE_IDS: dict[str, str] = {"python": "python"}
# Lower-case file extension -> registry key, for clients that send odd languageIds.
_EXTENSIONS: dict[str, str] = {".py": "python", ".pyi": "python"}

# Python's statements that own an indented block, and the one-line ones; together,
# every node that is one statement of a block.
PYTHON_COMPOUND_STATEMENTS = frozenset(
    {
        "if_statement",
        "for_statement",
        "while_statement",
        "try_statement",
        "with_statement",
        "match_statement",
        "function_definition",
        "class_definition",
        "decorated_definition",
    }
)
PYTHON_SIMPLE_STATEMENTS = frozenset(
    {
        "expression_statement",
        "return_statement",
        "raise_statement",
        "assert_statement",
        "pass_statement",
        "break_statement",
        "continue_statement",
        "delete_statement",
        "global_statement",
        "nonlocal_statement",
        "import_statement",
        "import_from_statement",
        "future_import_statement",
        "print_statement",
        "exec_statement",
        "type_alias_statement",
    }
)


def register_language(
    name: str,
    factory: Callable[[], object],
    language_ids: tuple[str, ...] = (),
    extensions: tuple[str, ...] = (),
) -> None:
    """Add a grammar under ``name`` and map LSP languageIds and extensions onto it."""
    _GRAMMARS[name] = factory
    for language_id in language_ids:
        _LANGUAGE_IDS[language_id] = name
    for ext in extensions:
        _EXTENSIONS[ext.lower()] = name
    get_language.cache_clear()


def supported_languages() -> list[str]:
    """Registry keys that have a grammar."""
    return sorted(_GRAMMARS)


def language_for(language_id: str | None, uri: str) -> str | None:
    """Registry key for a document, from its languageId or else its file extension."""
    if language_id and language_id in _LANGUAGE_IDS:
        return _LANGUAGE_IDS[language_id]
    ext = posixpath.splitext(unquote(urlparse(uri).path))[1].lower()
    return _EXTENSIONS.get(ext) if ext else None


@cache
def get_language(name: str) -> tree_sitter.Language:
    """The tree-sitter ``Language`` for a registry key (``KeyError`` if unknown)."""
    return tree_sitter.Language(_GRAMMARS[name]())


# A Parser holds mutable state, so each thread (pygls may run handlers in a pool)
# gets its own.
_local = threading.local()


def get_parser(name: str) -> tree_sitter.Parser:
    """A parser for a registry key, cached per thread."""
    parsers: dict[str, tuple[tree_sitter.Language, tree_sitter.Parser]] | None = getattr(
        _local, "parsers", None
    )
    if parsers is None:
        parsers = _local.parsers = {}
    language = get_language(name)
    entry = parsers.get(name)
    # Compare by identity so a grammar re-registered later gets a fresh parser.
    if entry is None or entry[0] is not language:
        entry = parsers[name] = (language, tree_sitter.Parser(language))
    return entry[1]


def parse(text: str, language: str) -> tree_sitter.Tree:
    """Parse ``text`` from scratch."""
    return parse_source(language, encode_utf8(text))


# Sources up to this size are handed to tree-sitter whole: they parse in tens of ms.
SHARED_GIL_MIN_BYTES = 1 << 16
# Larger ones are fed to it in chunks of this size.
_CHUNK_BYTES = 4096


def parse_source(
    language: str, source: bytes, old_tree: tree_sitter.Tree | None = None
) -> tree_sitter.Tree:
    """Parse ``source`` (reusing ``old_tree``, edited to match, if given).

    py-tree-sitter holds the GIL for a whole parse of given bytes: a 4 MB file held it
    2 s, and the event loop, though the parse ran on a worker thread, answered nothing
    meanwhile. A large source is therefore read through a callback, and tree-sitter
    reports its progress to another (it does so only for a callback source): each
    call runs Python code, where the interpreter hands the GIL to a waiting thread
    once its switch interval (5 ms) is up. Reads alone left 0.1-0.2 s holds where an
    edit lets tree-sitter reuse the old tree without reading; with progress calls the
    longest hold was 14-18 ms, for 5-20% more parse time. What is left is the final
    pass over a new tree (0.1 s on a 3.8 MB file).
    """
    parser = get_parser(language)
    if len(source) <= SHARED_GIL_MIN_BYTES:
        return parser.parse(source) if old_tree is None else parser.parse(source, old_tree)

    def read(offset: int, _point: tuple[int, int]) -> bytes:
        return source[offset : offset + _CHUNK_BYTES]

    if old_tree is None:
        return parser.parse(read, progress_callback=_go_on)
    return parser.parse(read, old_tree, progress_callback=_go_on)


def _go_on(_offset: int, _has_error: bool) -> bool:
    return False  # True would cancel the parse
