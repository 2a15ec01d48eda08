"""Ranks and ranking metrics (DESIGN.md protocol).

rank = number of candidate items whose score is >= the target's, other than the target itself
(pessimistic ties: a constant or tied score can never look like a hit). NaN scores raise.
HR@k = 1[rank < k]; NDCG@k = 1[rank < k] / log2(rank + 2); MRR = mean 1 / (rank + 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from ur4rec_cli.errors import EvaluationError

if TYPE_CHECKING:
    import torch


def rank_of_targets(
    scores: "torch.Tensor", targets: "torch.Tensor", exclude: "torch.Tensor | None" = None
) -> "torch.Tensor":
    """0-based pessimistic rank of each row's target among the non-excluded columns.

    scores [B, C] float, targets [B] long (column index), exclude [B, C] bool (True = not a
    candidate, e.g. history items and padding). The target column is never excluded.
    """
    import torch

    if torch.isnan(scores).any():
        bad = int(torch.isnan(scores).any(dim=1).nonzero()[0, 0])
        raise EvaluationError(f"NaN score in row {bad} of a batch: the model produced NaN, refusing to rank it")
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_scores = scores[rows, targets].unsqueeze(1)
    beats = scores >= target_scores
    if exclude is not None:
        beats &= ~exclude
    beats[rows, targets] = False
    return beats.sum(dim=1)


def metrics_from_ranks(ranks: Iterable[int] | np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """HR@k, NDCG@k for each k, and MRR, averaged over users (keys like ``"HR@10"``)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        raise EvaluationError("no users to evaluate")
    out: dict[str, float] = {}
    for k in sorted(set(int(k) for k in ks)):
        hit = r < k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float((hit / np.log2(r + 2.0)).mean())
    out["MRR"] = float((1.0 / (r + 1.0)).mean())
    return out


def per_user_ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of each user (for paired bootstrap comparisons)."""
    r = np.asarray(ranks, dtype=np.float64)
    return (r < k) / np.log2(r + 2.0)
