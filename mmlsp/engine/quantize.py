"""Weight-only int8 for the CPU: the ``dtype`` setting's "int8".

Decoding a token reads every weight once, so on a CPU decoding is bound by memory
bandwidth, and int8 weights are a quarter of float32's bytes. Each linear layer keeps
its weight as int8 rows with one scale per output channel (symmetric, round to
nearest) and multiplies in bfloat16: the activations are not quantized, so a row's
result never depends on the other rows of its batch, and prefix reuse stays as exact
as bfloat16's. Embeddings and norms stay bfloat16.

Few rows (decoding, draft verification, the output head) go to PyTorch's packed
int8 kernel, which reads the int8 weight directly; many rows (prefill chunks) are
faster as one bfloat16 matrix product over the weight dequantized for that call.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

# Up to this many rows per call use the packed kernel (its time grows with the rows;
# dequantizing costs the same for any number of rows). Measured on Gemma-3-270M's shapes.
PACKED_ROWS = 32
# The packed kernel reads the input dimension in blocks of 16: other widths crash it.
PACKED_BLOCK = 16
QMAX = 127


# Rows quantized at a time: float32 temporaries of a whole output head would take
# gigabytes for a 7B model's.
QUANTIZE_ROWS = 8192


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight`` [out, in] as int8 rows and one float32 scale per row, weight ≈ q * scale."""
    weight = weight.detach()
    q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
    scale = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    for at in range(0, weight.shape[0], QUANTIZE_ROWS):
        # A copy even from float32: the weight may be a tied embedding that stays.
        w = weight[at : at + QUANTIZE_ROWS].to(torch.float32, copy=True)
        s = (w.abs().amax(dim=1) / QMAX).clamp(min=torch.finfo(torch.float32).tiny)
        q[at : at + QUANTIZE_ROWS] = w.div_(s[:, None]).round_().clamp_(-QMAX, QMAX)
        scale[at : at + QUANTIZE_ROWS] = s
    return q, scale


class Int8Linear(nn.Module):
    """A linear layer whose weight is stored as int8 rows with per-row scales."""

    # Declared for the type checker: register_buffer's attributes are untyped.
    qweight: torch.Tensor
    scale: torch.Tensor

    def __init__(self, linear: nn.Linear, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale = quantize_rows(linear.weight)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale.to(dtype))
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(dtype), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In the layer's own dtype (the kernel takes no mix), out in the caller's, as
        # nn.Linear would: some models run their head on float32 hidden states.
        rows = x.reshape(-1, self.in_features).to(self.scale.dtype)
        if rows.shape[0] <= PACKED_ROWS:
            out = torch._weight_int8pack_mm(rows.contiguous(), self.qweight, self.scale)
        else:
            out = rows @ (self.qweight.to(rows.dtype) * self.scale[:, None]).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_linears(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Replace ``model``'s linear layers by ``Int8Linear`` in place; how many were.

    Layers whose input width the packed kernel cannot take stay as they are. A tied
    output head gets its own int8 copy, and the embedding it was tied to stays.
    """
    replaced, kept = 0, 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            if child.in_features % PACKED_BLOCK:
                kept += 1
                continue
            setattr(parent, name, Int8Linear(child, dtype))
            replaced += 1
    if kept:
        log.info(
            "int8: %d linear layers kept in %s (input width not a multiple of %d)",
            kept,
            dtype,
            PACKED_BLOCK,
        )
    return replaced


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX)."""
    cpu: Any = getattr(torch, "cpu", None)
    check = getattr(cpu, "_is_avx512_bf16_supported", None)
    return bool(check()) if callable(check) else True
