"""Hover: a short AI explanation of a function or class, computed in the background.

Hovering a definition's name, or a call to a function or class defined in an open
document (or, through ``mmlsp.context.workspace``, in a workspace file), answers at once
with the signature and docstring. The explanation is asked of the chat model in the
background and cached by a hash of the definition's text:
if it is ready within a short budget it is part of this answer, otherwise of the next
hover. Editing the definition changes its hash, so a stale explanation is never shown.
Hovering an image the code names is ``image_hover``'s: the vision model describes it.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections import OrderedDict
from pathlib import Path

import tree_sitter
from lsprotocol import types

from mmlsp import chat
from mmlsp.context.workspace import read_source
from mmlsp.engine import EngineError, EngineHost
from mmlsp.features.image_hover import ImageHover
from mmlsp.session import Session
from mmlsp.syntax import SyntaxDocument
from mmlsp.syntax.outline import (
    called_name_at,
    definition_named_at,
    docstring_text,
    find_definitions,
    line_indent,
    node_hash,
    node_text,
    signature,
)

log = logging.getLogger(__name__)

# How long a hover waits for an explanation before answering without it.
HOVER_BUDGET_S = 0.4
HOVER_MAX_TOKENS = 160
HOVER_TIMEOUT_S = 90.0
# Explanations asked for at once; past this, a hover shows no pending note and asks
# again later (hovering along a file must not queue one generation per name).
MAX_PENDING = 4
PENDING_NOTE = "*mmlsp: an AI explanation is being written; hover again to see it.*"


def base_markdown(doc: SyntaxDocument, node: tree_sitter.Node, where: str | None) -> str:
    """Signature and docstring: what a hover shows before the explanation is ready."""
    parts = [f"```{doc.language}\n{signature(doc.source, node)}\n```"]
    if docstring := docstring_text(doc.source, node):
        parts.append(docstring)
    if where:
        parts.append(f"*Defined in {where}*")
    return "\n\n".join(parts)


def definition_code(doc: SyntaxDocument, node: tree_sitter.Node, max_lines: int = 120) -> str:
    code = textwrap.dedent(line_indent(doc.source, node.start_byte) + node_text(doc.source, node))
    lines = code.split("\n")
    return code if len(lines) <= max_lines else "\n".join([*lines[:max_lines], "..."])


class HoverService:
    """Finds the hovered definition and serves its cached or pending explanation."""

    def __init__(
        self,
        session: Session,
        host: EngineHost,
        budget_s: float = HOVER_BUDGET_S,
        cache_size: int = 256,
    ) -> None:
        self.session = session  # open documents, their trees, the workspace index
        self.host = host
        self.budget_s = budget_s
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._pending: dict[str, asyncio.Task[str | None]] = {}
        self.images = ImageHover(session, host, budget_s)

    def _lookup(self, uri: str, name: str) -> tuple[str, SyntaxDocument, tree_sitter.Node] | None:
        """The definition called ``name``: in this document first, then other open ones."""
        others = self.session.uris()
        uris = [uri, *(u for u in others if u != uri)]
        for candidate in uris:
            doc = self.session.syntax.get(candidate)
            if doc is None:
                continue
            found = find_definitions(doc.tree, doc.source, name)
            if found:
                return candidate, doc, found[0]
        return self._lookup_workspace(name, set(uris))

    def _lookup_workspace(
        self, name: str, skip: set[str]
    ) -> tuple[str, SyntaxDocument, tree_sitter.Node] | None:
        """The definition called ``name`` in a workspace file that is not open."""
        index = self.session.index
        for definition in index.definitions(name):
            if definition.uri in skip:
                continue
            text = read_source(Path(definition.path), index.max_file_bytes, index.roots)
            if text is None:
                continue  # gone or changed into something unreadable since indexing
            doc = SyntaxDocument(text, "python")
            found = find_definitions(doc.tree, doc.source, name)
            if found:
                return definition.uri, doc, found[0]
        return None

    def target(
        self, uri: str, position: types.Position
    ) -> tuple[str, SyntaxDocument, tree_sitter.Node, types.Range] | None:
        """``(uri, document, definition, hovered range)`` at ``position``, or None."""
        snapshot = self.session.snapshot(uri)
        doc = None if snapshot is None else snapshot.syntax
        if doc is None or not 0 <= position.line < doc.line_index.line_count:
            return None
        offset = doc.line_index.offset_at(position.line, position.character)
        byte = doc.line_index.offset_to_byte(offset)
        tree = doc.tree
        ident = tree.root_node.named_descendant_for_byte_range(byte, byte)
        if ident is None or ident.type != "identifier":
            return None
        hovered = doc.node_range(ident)
        definition = definition_named_at(tree, byte)
        if definition is not None:
            return uri, doc, definition, hovered
        name = called_name_at(tree, doc.source, byte)
        if name is None:
            return None
        found = self._lookup(uri, name)
        if found is None:
            return None
        def_uri, def_doc, node = found
        return def_uri, def_doc, node, hovered

    def cached(self, key: str) -> str | None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    async def hover(self, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        if (image := await self.images.hover(params)) is not None:
            return image
        found = self.target(uri, params.position)
        if found is None:
            return None
        def_uri, doc, node, hovered = found
        where = None if def_uri == uri else def_uri.rsplit("/", 1)[-1]
        markdown = base_markdown(doc, node, where)
        key = node_hash(doc.source, node, salt=doc.language)
        explanation = self.cached(key)
        if explanation is None and self.host.chat_engine is not None:
            explanation = await self._wait(key, doc, node)
            if explanation is None and key in self._pending:
                markdown += f"\n\n---\n\n{PENDING_NOTE}"
        if explanation:
            markdown += f"\n\n---\n\n{explanation}"
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=markdown),
            range=hovered,
        )

    async def _wait(self, key: str, doc: SyntaxDocument, node: tree_sitter.Node) -> str | None:
        task = self._pending.get(key)
        if task is None:
            if len(self._pending) >= MAX_PENDING:
                return None
            name_node = node.child_by_field_name("name")
            name = node_text(doc.source, name_node) if name_node is not None else "this code"
            code = definition_code(doc, node)
            task = asyncio.ensure_future(self._explain(key, doc.language, code, name))
            self._pending[key] = task
        try:
            # shield: a hover that gives up (or is cancelled) leaves the work running.
            return await asyncio.wait_for(asyncio.shield(task), self.budget_s)
        except TimeoutError:
            return None

    async def _explain(self, key: str, language: str, code: str, name: str) -> str | None:
        messages = chat.hover_messages(language, code, name)
        try:
            reply = await chat.ask(
                self.host, messages, HOVER_MAX_TOKENS, HOVER_TIMEOUT_S, background=True
            )
        except EngineError as exc:
            log.debug("no hover explanation for %s: %s", name, exc)
            return None
        finally:
            self._pending.pop(key, None)
        explanation = chat.drop_echoed_code(chat.clean_markdown(reply), code)
        if isinstance(reply, chat.Reply) and reply.cut_short:
            explanation = chat.clean_markdown(chat.trim_unfinished(explanation))
            explanation = f"{explanation} …" if explanation else explanation
        if (problem := chat.prose_problem(explanation, messages)) is not None:
            # Say so plainly (and remember it: asking again gives the same answer)
            # rather than show the user an echo of our own prompt.
            log.info("no hover explanation for %s: %s: %r", name, problem, reply[:200])
            explanation = f"*mmlsp: no AI explanation: {problem}.*"
        if explanation:
            self._cache[key] = explanation
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return explanation or None
