"""Dropout whose random mask is cheap on the CPU.

PyTorch's CPU dropout draws one Bernoulli sample per element (``bernoulli_``), about 8 ns each
on this project's 2-core reference machine: a quarter of a SASRec training epoch on ML-100K went
there, most of it on the [B, 1, L, L] attention-dropout mask. Here one 64-bit draw of torch's
default generator (``random_``) gives four 15-bit uniforms (int16 lanes, the sign bit masked
off), and an element is kept when its lane is at least ``round(p * 32768)``: the drop
probability is ``p`` rounded to a multiple of 1/32768 (0.2 -> 0.200012), seven times cheaper.
The kept elements are scaled by ``1 / (1 - p)`` as in ``F.dropout``.

The draws come from torch's default CPU generator, so ``torch.manual_seed`` and the
checkpointed ``torch.get_rng_state()`` make them reproducible exactly as before. On other
devices (CUDA) ``F.dropout`` runs unchanged: its kernels are already fast there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LANES = 32768  # 15 random bits per int16 lane


def keep_scale(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor of ``shape``: ``1 / (1 - p)`` where kept, 0 where dropped (drop rate ~ p)."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()
    lanes = words.view(torch.int16)[:n].reshape(shape) & (LANES - 1)
    threshold = int(round(p * LANES))
    return (lanes >= threshold).to(dtype).mul_(1.0 / (1.0 - p))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` with the cheap CPU mask (identity outside training or at p = 0)."""
    if not training or p <= 0:
        return x
    if x.device.type != "cpu" or p >= 1:
        return F.dropout(x, p, training=True)
    return x * keep_scale(x.shape, p, x.dtype)


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` (no parameters, the same state dict) using :func:`dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
