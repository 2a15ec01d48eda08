"""`Ranked`: the per-case outcome of one evaluation (users or cold cases, targets, ranks, candidates),
from which every metric is recomputed; `run.py` and `cold_cases.py` both make one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ur4rec_cli.ranking import metrics_from_ranks


@dataclass
class Ranked:
    """Per-user outcome of one evaluation: everything needed to recompute every metric."""

    users: np.ndarray
    targets: np.ndarray
    ranks: np.ndarray
    candidates: np.ndarray
    seconds: float
    cold: "Ranked | None" = None  # the cold test cases of a cold-item variant (users: case numbers)
    shelf: "Ranked | None" = None  # the same cases, candidates = the cold items only (the new-items shelf)

    def metrics(self, ks: list[int]) -> dict[str, float]:
        return metrics_from_ranks(self.ranks, ks)
