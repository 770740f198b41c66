"""Settings over LSP: initializationOptions, didChangeConfiguration, reloads and failures."""

from __future__ import annotations

import asyncio

from lsprotocol import types

from tests.lsp_helpers import (
    inline,
    lsp_session,
    open_doc,
    status,
    wait_for_diagnostics,
    wait_for_state,
)


async def wait_for_message(client, needle: str, timeout: float = 10.0) -> types.ShowMessageParams:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for message in client.messages:
            if needle in message.message:
                return message
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no message containing {needle!r}: {client.messages}")
        await asyncio.sleep(0.02)


def configure(client, settings) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))


async def test_model_from_initialization_options_and_reload_at_runtime(
    tiny_model_dir, tiny_gguf, tmp_path
):
    async with lsp_session([], tmp_path, init_options={"model": str(tiny_model_dir)}) as client:
        first = await wait_for_state(client)
        assert first["state"] == "ready" and first["model"] == str(tiny_model_dir)
        uri = "file:///tmp/reload.py"
        open_doc(client, uri, "import os\nx = os.path.")
        before = await inline(client, uri, 1, 12)
        tokens_before = set(client.progress_reports)

        # Switching the model reloads it in place, with progress, no restart.
        configure(client, {"mmlsp": {"model": str(tiny_gguf)}})
        second = await wait_for_state(client, model=str(tiny_gguf))
        assert second["state"] == "ready"
        new_tokens = set(client.progress_reports) - tokens_before
        assert new_tokens, "the reload reported no progress"
        after = await inline(client, uri, 1, 12)
        # Same weights in both formats: the same suggestion.
        assert after.items[0].insert_text == before.items[0].insert_text


async def test_bad_setting_values_are_reported_and_defaults_kept(tiny_model_dir, tmp_path):
    options = {"model": str(tiny_model_dir), "maxNewTokens": "lots", "device": "tpu"}
    async with lsp_session([], tmp_path, init_options=options) as client:
        await wait_for_message(client, "maxNewTokens must be an integer")
        await wait_for_message(client, "device must be one of auto, cuda, cpu")
        current = await wait_for_state(client)
        assert current["state"] == "ready"
        assert current["settings"].maxNewTokens == 64
        assert current["settings"].device == "auto"

        configure(client, {"timeBudgetMs": -5, "noSuchSetting": 1})
        await wait_for_message(client, "timeBudgetMs must be between")
        await wait_for_message(client, "unknown setting 'noSuchSetting'")
        assert (await status(client))["settings"].timeBudgetMs == 4000


async def test_model_that_fails_to_load_keeps_syntax_features(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    async with lsp_session(["--model", str(broken)], tmp_path) as client:
        failed = await wait_for_state(client)
        assert failed["state"] == "failed"
        message = await wait_for_message(client, "failed to load")
        assert message.type == types.MessageType.Error
        uri = "file:///tmp/still-works.py"
        open_doc(client, uri, "def f(:\n")
        assert await wait_for_diagnostics(client, uri)
        assert not (await inline(client, uri, 0, 0)).items

        # Pointing at a missing path is reported as such.
        configure(client, {"model": str(tmp_path / "missing")})
        await wait_for_state(client, model=str(tmp_path / "missing"))
        await wait_for_message(client, "model path does not exist")
