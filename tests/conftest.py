"""Shared fixtures: a tiny real model built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_asyncio

from tests.lsp_helpers import lsp_session, wait_for_state
from tests.tiny_model import build_tiny_model, write_tiny_gguf
from tests.tiny_vlm import build_tiny_vlm

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight LLaVA with its processor (tests/tiny_vlm.py)."""
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tiny_model_dir, tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real server over stdio with the tiny model loaded, shared by a test module."""
    cache = tmp_path_factory.mktemp("cache")
    async with lsp_session(["--model", str(tiny_model_dir)], cache) as client:
        ready = await wait_for_state(client)
        assert ready["state"] == "ready", ready
        yield client
