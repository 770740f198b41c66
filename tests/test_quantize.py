"""Weight-only int8 linear layers (engine/quantize.py), against plain float layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmlsp.engine.quantize import (
    PACKED_ROWS,
    QUANTIZE_ROWS,
    Int8Linear,
    quantize_linears,
    quantize_rows,
)


def test_rows_round_to_the_nearest_step_of_their_own_scale():
    torch.manual_seed(0)
    weight = torch.randn(48, 64) * torch.logspace(-3, 1, 48)[:, None]  # rows of any size
    q, scale = quantize_rows(weight)
    assert q.dtype is torch.int8 and scale.shape == (48,)
    assert q.abs().amax(dim=1).tolist() == [127] * 48  # each row uses its whole range
    error = (q.float() * scale[:, None] - weight).abs()
    assert (error <= scale[:, None] / 2 + 1e-7).all()
    big = torch.randn(3 * QUANTIZE_ROWS // 2, 16)  # more rows than one block
    before = big.clone()
    big_q, big_scale = quantize_rows(big)
    assert torch.equal(big, before)  # a float32 weight is left alone (it may be tied)
    step = (big_q.float() * big_scale[:, None] - big).abs().amax(dim=1)
    assert (step <= big_scale / 2 + 1e-7).all() and big_q.abs().amax(dim=1).eq(127).all()
    zero_q, zero_scale = quantize_rows(torch.zeros(2, 16))  # no division by zero
    assert not zero_q.any() and torch.isfinite(zero_scale).all()


@pytest.mark.parametrize("rows", [1, 5, PACKED_ROWS, PACKED_ROWS + 1, 200])
def test_int8_layer_matches_the_float_layer_on_both_paths(rows):
    """Few rows take the packed int8 kernel, many the dequantized weight: both agree
    with the float layer to within int8 and bfloat16 rounding."""
    torch.manual_seed(rows)
    linear = nn.Linear(96, 80, bias=True)
    layer = Int8Linear(linear)
    x = torch.randn(2, rows, 96)
    with torch.inference_mode():
        want = linear(x)
        got = layer(x.to(torch.bfloat16))
    assert got.shape == want.shape and got.dtype is torch.bfloat16
    relative = (got.float() - want).abs().max() / want.abs().max()
    assert relative < 0.02, relative


def test_any_input_dtype_comes_back_in_that_dtype():
    """Some models run their output head on float32 hidden states; the packed kernel
    takes no mix of dtypes, so the layer converts."""
    torch.manual_seed(2)
    linear = nn.Linear(64, 24)
    layer = Int8Linear(linear)
    for dtype in (torch.float32, torch.float16):
        x = torch.randn(3, 64)
        with torch.inference_mode():
            got = layer(x.to(dtype))
            want = linear(x)
        assert got.dtype is dtype
        assert (got.float() - want).abs().max() / want.abs().max() < 0.02


def test_rows_do_not_depend_on_their_batch():
    """A row's result is the same alone or among others: no activation quantization,
    so prefix reuse does not see different numbers for the same tokens."""
    torch.manual_seed(1)
    layer = Int8Linear(nn.Linear(64, 32, bias=False))
    x = torch.randn(8, 64).to(torch.bfloat16)
    with torch.inference_mode():
        together = layer(x)
        alone = torch.cat([layer(row[None]) for row in x])
    assert torch.equal(together, alone)


def test_quantize_linears_replaces_what_the_kernel_takes():
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 40), nn.Linear(40, 8))
    model.to(torch.bfloat16)
    assert quantize_linears(model) == 2
    assert [type(m).__name__ for m in model] == ["Int8Linear", "GELU", "Int8Linear", "Linear"]
    with torch.inference_mode():  # the kept layer (input width 40) still runs
        assert model(torch.randn(3, 32).to(torch.bfloat16)).shape == (3, 8)
