"""Content-KNN's user side, shared by the baseline and the model's scoring-time block.

A user's content-KNN vector is the mean item-text embedding of the newest ``RECENT`` items of the
history fed (left-padded rows; padding reads row 0, which is zero). Against an item's own text it
gives content-KNN's cosine: the baseline (``evaluation/content_knn.py``) scores with it alone, and
UR4Rec V2 adds it, times ``model.knn_weight``, as the last block of its vectors (``models/ur4rec.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tensor methods only: importing this module does not import torch
    import torch

# Newest history items averaged into the user's vector (the ranking core feeds at least these).
RECENT = 10


def knn_users(item_text: "torch.Tensor", histories: "torch.Tensor") -> "torch.Tensor":
    """Item-text table [n_items + 1, d] (row 0 zero) and histories [B, L] -> [B, d] mean of the newest ``RECENT`` real items."""
    recent = histories[:, -RECENT:]
    real = (recent != 0).to(item_text.dtype)
    return (item_text[recent] * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1)
