"""The action service the server delegates to: it lists actions for a document's
snapshot, resolves a chosen one into an edit, runs the commands, and shows the
model-backed work as cancellable progress. It sees the session, the settings, the
engine host and the editor (the ``Client`` port), never the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types

from mmlsp import chat
from mmlsp.chat.vision import ask_with_images, with_images
from mmlsp.config import Settings
from mmlsp.context.images import LoadedImage, load_referenced
from mmlsp.context.workspace import uri_to_path
from mmlsp.engine import EngineError, EngineHost
from mmlsp.features.actions.arguments import parse_location, parse_range, range_json
from mmlsp.features.actions.check import Ask
from mmlsp.features.actions.document import Doc
from mmlsp.features.actions.edits import docstring_edit, fix_edit, workspace_edit
from mmlsp.features.actions.errors import ActionCancelled, ActionError
from mmlsp.features.actions.explain import ExplainFiles, explain_markdown
from mmlsp.features.actions.generate import (
    comment_run_at,
    generate_edit,
    implement_edit,
    instruction_edit,
    instruction_target_for,
)
from mmlsp.features.actions.listing import (
    COMMAND_ADD_DOCSTRING,
    COMMAND_APPLY,
    COMMAND_EDIT,
    COMMAND_EXPLAIN,
    COMMAND_FIX,
    COMMAND_GENERATE,
    COMMAND_IMPLEMENT,
    list_actions,
)
from mmlsp.features.actions.targets import code_of, explain_target_for, fix_target_for
from mmlsp.features.client import Client
from mmlsp.features.progress import ProgressService, Work
from mmlsp.session import Session

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTION_TIMEOUT_S = 180.0
# The progress title of each edit action (``data["action"]``).
_TITLES = {
    "fix": "fixing the code",
    "docstring": "writing the docstring",
    "generate": "writing the code",
    "implement": "implementing the function",
    "edit": "editing the code",
}
_COMMAND_ACTIONS = {COMMAND_GENERATE: "generate", COMMAND_IMPLEMENT: "implement"}


class ActionService:
    """Actions over the open documents: listing, resolving and the commands."""

    def __init__(
        self,
        session: Session,
        settings: Callable[[], Settings],
        host: EngineHost,
        client: Client,
        progress: ProgressService | None = None,
    ) -> None:
        self.session = session
        self.settings = settings  # the current settings (they change at runtime)
        self.host = host
        self.client = client
        self.progress = progress if progress is not None else ProgressService(client)
        self.files = ExplainFiles()

    def resolvable(self) -> bool:
        return self.client.capabilities.resolves_edits

    def _versioned(self) -> bool:
        return self.client.capabilities.versioned_edits

    # documents -----------------------------------------------------------------------
    def doc(self, uri: str) -> Doc:
        snapshot = self.session.snapshot(uri)
        if snapshot is None:
            raise ActionError(f"unknown document {uri} (it is not open)")
        return Doc(uri, snapshot.version, snapshot.text, snapshot.language, snapshot.syntax)

    def _ask(
        self,
        max_new_tokens: int,
        work: Work,
        code_reply: bool = False,
        images: Sequence[LoadedImage] = (),
    ) -> Ask:
        """How an action asks: the chat model, or with ``images`` the vision model."""

        async def ask(messages: chat.Messages) -> str:
            work.report("thinking…", force=True)
            try:
                if images:
                    return await ask_with_images(
                        self.host,
                        with_images(messages, images),
                        images,
                        max_new_tokens,
                        ACTION_TIMEOUT_S,
                        cancel=work.cancel,
                        code_reply=code_reply,
                        on_text=work.on_text,
                    )
                return await chat.ask(
                    self.host,
                    messages,
                    max_new_tokens,
                    ACTION_TIMEOUT_S,
                    cancel=work.cancel,
                    code_reply=code_reply,
                    on_text=work.on_text,
                )
            except EngineError as exc:
                if work.cancel.is_set():
                    raise ActionCancelled("cancelled") from exc
                raise

        return ask

    async def _images(self, doc: Doc, text: str, work: Work) -> tuple[list[LoadedImage], str]:
        """The images ``text`` names that go to the vision model with the action, and a
        note for the user on those that do not (refused, or no vision model ready).

        Nothing is read unless ``visionModel`` is set; while that model is not ready the
        action runs on the chat model without them, and says so.
        """
        if not self.host.vision_configured:
            return [], ""
        local = uri_to_path(doc.uri)
        document = Path(local) if local != doc.uri else None
        roots = list(self.session.index.roots)
        images, refused = await asyncio.to_thread(load_referenced, text, document, roots)
        notes = [f"not read: {reason}" for reason in refused]
        if images and self.host.vision_engine is None:
            status = self.host.vision_status
            names = ", ".join(f"`{image.path.name}`" for image in images)
            notes.append(f"{names} not used: the vision model is not ready ({status.state})")
            images = []
        if images:
            work.report(f"with {', '.join(image.path.name for image in images)}", force=True)
        return images, "; ".join(notes)

    async def _with_progress(self, title: str, run: Callable[[Work], Awaitable[T]]) -> T:
        """Run model-backed work under a cancellable work-done progress titled ``title``."""
        work = await self.progress.start(f"mmlsp: {title}")
        outcome = "cancelled"
        try:
            result = await run(work)
            outcome = "done"
            return result
        except ActionError as exc:
            outcome = str(exc)
            raise
        except asyncio.CancelledError:
            work.cancel.set()  # the request was cancelled: stop the model too
            raise
        finally:
            work.end(outcome)

    # LSP entry points ------------------------------------------------------------------
    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        try:
            doc = self.doc(params.text_document.uri)
        except ActionError:
            return []
        return list_actions(
            doc,
            params.range,
            params.context.diagnostics,
            params.context.only,
            docstring_style=self.settings().docstring_style,
            resolvable=self.resolvable(),
        )

    async def compute_edit(self, data: Any) -> tuple[Doc, types.TextEdit]:
        """The edit for a listed action's ``data``; ActionError says why there is none."""
        if not isinstance(data, dict) or data.get("action") not in _TITLES:
            raise ActionError(f"not an mmlsp action: {data!r}")
        doc = self.doc(str(data.get("uri")))
        if data.get("version") is not None and data["version"] != doc.version:
            raise ActionError("the document changed since the action was offered; try again")
        rng = parse_range(data.get("range"))
        if rng is None or not doc.valid(rng):
            raise ActionError("the action's range is outside the document")

        async def run(work: Work) -> types.TextEdit:
            try:
                return await self._edit(doc, rng, data, work)
            except EngineError as exc:
                raise ActionError(str(exc)) from exc

        title = _TITLES[data["action"]]
        return doc, await self._with_progress(title, run)

    async def _edit(
        self, doc: Doc, rng: types.Range, data: dict[str, Any], work: Work
    ) -> types.TextEdit:
        action = data["action"]
        if action == "fix":
            # Room for the target rewritten with some additions, fences included
            # (code runs about 3 to 4 characters a token).
            target = fix_target_for(doc, rng)
            tokens = min(1536, (target.end - target.start) // 2 + 96)
            ask = self._ask(tokens, work, code_reply=True)
            return await fix_edit(doc, rng, str(data.get("message") or ""), ask)
        if action == "generate":
            run = comment_run_at(doc, rng)
            images, note = await self._images(doc, run.description if run else "", work)
            self._note(note)
            ask = self._ask(512, work, code_reply=True, images=images)
            return await generate_edit(doc, rng, ask)
        if action == "implement":
            target = explain_target_for(doc, rng)
            images, note = await self._images(doc, code_of(doc, target), work)
            self._note(note)
            ask = self._ask(768, work, code_reply=True, images=images)
            return await implement_edit(doc, rng, ask, self.session.index)
        if action == "edit":
            target = instruction_target_for(doc, rng)
            tokens = min(1536, (target.end - target.start) // 2 + 160)
            ask = self._ask(tokens, work, code_reply=True)
            return await instruction_edit(doc, rng, str(data.get("instruction") or ""), ask)
        ask = self._ask(320, work, code_reply=True)
        return await docstring_edit(doc, rng, self.settings().docstring_style, ask)

    async def resolve(self, action: types.CodeAction) -> types.CodeAction:
        if not isinstance(action.data, dict) or "action" not in action.data:
            return action  # not one of ours to resolve (e.g. Explain, which is a command)
        try:
            doc, edit = await self.compute_edit(action.data)
        except ActionCancelled:
            raise
        except ActionError as exc:
            self.client.notify_user(f"{action.title}: {exc}", logging.WARNING)
            raise
        action.edit = workspace_edit(doc, edit, self._versioned())
        return action

    async def apply(self, data: Any) -> bool:
        """Compute an edit and apply it through the client (``workspace/applyEdit``)."""
        doc, edit = await self.compute_edit(data)
        result = await self.client.apply_edit(
            types.ApplyWorkspaceEditParams(
                edit=workspace_edit(doc, edit, self._versioned()), label="mmlsp"
            )
        )
        if not getattr(result, "applied", False):  # a client may even answer null
            reason = getattr(result, "failure_reason", None) or "no reason given"
            raise ActionError(f"the editor did not apply the edit: {reason}")
        return True

    async def execute(self, command: str, args: Sequence[Any]) -> Any:
        """Run one of ``COMMANDS``; errors are shown to the user and re-raised."""
        try:
            if command == COMMAND_APPLY:
                if not args:
                    raise ActionError("mmlsp.applyAction expects the action's data")
                return await self.apply(args[0])
            uri, rng = parse_location(args)
            if command == COMMAND_EXPLAIN:
                options = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
                return await self.explain(uri, rng, show=options.get("show", True) is not False)
            doc = self.doc(uri)
            third = args[2] if len(args) > 2 else None
            if command == COMMAND_FIX:
                problem = third if isinstance(third, str) else ""
                data = {"action": "fix", "range": range_json(rng), "message": problem}
            elif command == COMMAND_EDIT:
                if isinstance(third, dict):
                    third = third.get("instruction")
                if not isinstance(third, str) or not third.strip():
                    raise ActionError(
                        "expected arguments [uri, range, instruction]: no instruction given"
                    )
                data = {"action": "edit", "range": range_json(rng), "instruction": third}
            elif command in _COMMAND_ACTIONS:
                data = {"action": _COMMAND_ACTIONS[command], "range": range_json(rng)}
            elif command == COMMAND_ADD_DOCSTRING:
                data = {"action": "docstring", "range": range_json(rng)}
            else:
                raise ActionError(f"unknown command {command!r}")
            return await self.apply({**data, "uri": doc.uri, "version": doc.version})
        except ActionCancelled:
            raise
        except ActionError as exc:
            self.client.notify_user(f"{command}: {exc}", logging.WARNING)
            raise

    async def explain(self, uri: str, rng: types.Range, show: bool = True) -> str:
        doc = self.doc(uri)
        if not doc.valid(rng):
            raise ActionError("the range is outside the document")

        async def run(work: Work) -> tuple[str, str]:
            code = code_of(doc, explain_target_for(doc, rng))
            images, note = await self._images(doc, code, work)
            try:
                title, markdown = await explain_markdown(
                    doc, rng, self._ask(320, work, images=images)
                )
            except EngineError as exc:
                raise ActionError(str(exc)) from exc
            if images:
                seen = ", ".join(f"`{image.path.name}`" for image in images)
                markdown += f"\n*Explained with {seen}, seen by the vision model.*\n"
            if note:
                markdown += f"\n*mmlsp: {note}.*\n"
            return title, markdown

        title, markdown = await self._with_progress("explaining the code", run)
        if show:
            await self._show(title, markdown)
        return markdown

    def _note(self, note: str) -> None:
        """Tell the user about images an action could not use (it runs without them)."""
        if note:
            self.client.notify_user(f"mmlsp: {note}", logging.INFO)

    async def _show(self, title: str, markdown: str) -> None:
        if self.client.capabilities.show_document:
            path = self.files.write(title.strip("`"), markdown)
            try:
                result = await self.client.show_document(
                    types.ShowDocumentParams(uri=path.as_uri(), external=False, take_focus=True)
                )
                if getattr(result, "success", False):  # a client may even answer null
                    return
            except Exception as exc:  # a client may refuse; fall back to a message
                log.debug("window/showDocument failed: %s", exc)
        self.client.show_message(markdown, types.MessageType.Info)
