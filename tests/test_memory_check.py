"""A model too big for this machine is refused from its config, before any allocation
(issue 22, class 8): the server used to grow past 4 GB on the way to failing."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
import torch

from mmlsp.engine import EngineError
from mmlsp.engine.loading import ModelSource, check_memory, weight_bytes


def test_weights_are_counted_without_allocating_them(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.intermediate_size = 4_000_000  # a few GB of MLPs, on paper
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counted = weight_bytes(config, torch.float16)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    per_layer = 3 * config.hidden_size * config.intermediate_size * 2
    assert counted > config.num_hidden_layers * per_layer
    assert grown_mb < 100


def test_a_model_bigger_than_memory_is_refused_before_loading(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tests.tiny_model import write_oversized_model

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    huge = write_oversized_model(tiny_model_dir, tmp_path / "huge", 2 * ram)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(EngineError, match="not enough memory to load model .* GiB"):
        check_memory(ModelSource(str(huge)), torch.float16)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100
    # The tiny model itself fits.
    check_memory(ModelSource(str(tiny_model_dir)), torch.float32)
