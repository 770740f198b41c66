"""Hover on an image the code names: the vision model's description of it.

A path to a PNG, JPEG, WebP or GIF in a comment, docstring or string (any text in a
document without a syntax tree, such as Markdown), or a Markdown image link, is an
image reference (``context.images``). Hovering one answers with the image's name,
format and size and a description from the vision model, computed in the background
and cached by the hash of the file's bytes (plus the model's name): if ready within
the hover budget it is part of this answer, else of the next hover. Without a vision
model the hover says how to set one, and no file is opened; an image that is refused
(outside the workspace, not a regular file, too large, not an image) says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path

from lsprotocol import types

from mmlsp.chat.vision import describe_image
from mmlsp.context.images import (
    ImageLimits,
    ImageReference,
    ImageRefused,
    LoadedImage,
    read_image,
    reference_at,
    resolve,
)
from mmlsp.context.workspace import uri_to_path
from mmlsp.engine import EngineError, EngineHost
from mmlsp.session import DocumentSnapshot, Session
from mmlsp.text.positions import index_to_utf16, line_text, utf16_to_index

log = logging.getLogger(__name__)

MAX_PENDING = 2
PENDING_NOTE = "*mmlsp: the vision model is describing this image; hover again to see it.*"
NO_MODEL_NOTE = (
    "*mmlsp: set `visionModel` to have images described (e.g. "
    "`HuggingFaceTB/SmolVLM-256M-Instruct`); until then no image is read.*"
)
# Syntax nodes an image reference may sit in (comments, docstrings, strings).
TEXT_NODES = frozenset({"comment", "string", "string_content", "concatenated_string"})


class ImageHover:
    def __init__(
        self,
        session: Session,
        host: EngineHost,
        budget_s: float,
        limits: ImageLimits | None = None,
        cache_size: int = 128,
    ) -> None:
        self.session = session
        self.host = host
        self.budget_s = budget_s
        self.limits = limits or ImageLimits()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._pending: dict[str, asyncio.Task[str | None]] = {}

    def reference(
        self, snapshot: DocumentSnapshot, position: types.Position
    ) -> tuple[ImageReference, types.Range] | None:
        """The image reference under ``position`` and its range, if the position is in
        text that may name one (a comment or string where there is a syntax tree)."""
        line = line_text(snapshot.text, position.line)
        index = utf16_to_index(line, position.character)
        ref = reference_at(line, index)
        if ref is None:
            return None
        doc = snapshot.syntax
        if doc is not None and doc.language == "python":
            offset = doc.line_index.offset_at(position.line, position.character)
            byte = doc.line_index.offset_to_byte(offset)
            # At the reference's end the cursor may be just past the text node.
            node = doc.tree.root_node.named_descendant_for_byte_range(byte, byte)
            if byte > 0 and (node is None or node.type not in TEXT_NODES):
                node = doc.tree.root_node.named_descendant_for_byte_range(byte - 1, byte - 1)
            while node is not None and node.type not in TEXT_NODES:
                node = node.parent
            if node is None:
                return None
        start = types.Position(position.line, index_to_utf16(line, ref.start))
        end = types.Position(position.line, index_to_utf16(line, ref.end))
        return ref, types.Range(start, end)

    async def hover(self, params: types.HoverParams) -> types.Hover | None:
        snapshot = self.session.snapshot(params.text_document.uri)
        if snapshot is None:
            return None
        found = self.reference(snapshot, params.position)
        if found is None:
            return None
        ref, hovered = found
        markdown = await self.markdown(snapshot.uri, ref)
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=markdown),
            range=hovered,
        )

    async def markdown(self, uri: str, ref: ImageReference) -> str:
        header = f"**Image** `{ref.target}`"
        if not self.host.vision_configured:
            return f"{header}\n\n{NO_MODEL_NOTE}"
        local = uri_to_path(uri)
        document = Path(local) if local != uri else None
        roots = list(self.session.index.roots)
        path = resolve(ref.target, document, roots)
        if path is None:
            return f"{header}\n\n*mmlsp: no such image in the workspace.*"
        try:
            image = await asyncio.to_thread(read_image, path, roots, self.limits)
        except ImageRefused as exc:
            return f"{header}\n\n*mmlsp: image not read: {exc}.*"
        header += f" · {image.format} {image.width}×{image.height}"
        engine = self.host.vision_engine
        model = self.host.vision_status.model or ""
        key = f"{image.sha256}\0{model}"
        description = self.cached(key)
        if description is None:
            if engine is None:
                status = self.host.vision_status
                if status.state == "failed":
                    return f"{header}\n\n*mmlsp: the vision model failed to load: {status.message}*"
                return f"{header}\n\n*mmlsp: the vision model is loading; hover again soon.*"
            description = await self._wait(key, image, ref.target)
            if description is None:
                return f"{header}\n\n---\n\n{PENDING_NOTE}"
        return f"{header}\n\n---\n\n{description}"

    def cached(self, key: str) -> str | None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    async def _wait(self, key: str, image: LoadedImage, name: str) -> str | None:
        task = self._pending.get(key)
        if task is None:
            if len(self._pending) >= MAX_PENDING:
                return None
            task = asyncio.ensure_future(self._describe(key, image, name))
            self._pending[key] = task
        try:
            # shield: a hover that gives up leaves the description being written.
            return await asyncio.wait_for(asyncio.shield(task), self.budget_s)
        except TimeoutError:
            return None

    async def _describe(self, key: str, image: LoadedImage, name: str) -> str | None:
        try:
            description = await describe_image(self.host, image, name)
        except EngineError as exc:
            log.debug("no description of %s: %s", name, exc)
            return None
        finally:
            self._pending.pop(key, None)
        description = description or "*mmlsp: the vision model wrote no usable description.*"
        self._cache[key] = description
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return description
