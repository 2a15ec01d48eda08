"""Most-popular baseline as a real Scorer: score(u, i) = how often i occurs in the fed histories."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.data.dataset import Dataset


class PopularityScorer:
    """Counts over the histories fed for ``split`` (test: train + valid items; valid: train items)."""

    def __init__(self, dataset: "Dataset", split: Literal["valid", "test"]) -> None:
        # Only fed histories count, so a held-out target never inflates its own score.
        self.counts = dataset.item_popularity(split).astype(np.float32)

    def user_vectors(self, histories: "torch.Tensor", users: "torch.Tensor") -> "torch.Tensor":
        import torch

        return torch.ones(histories.shape[0], 1, device=histories.device)

    def item_vectors(self) -> "torch.Tensor":
        import torch

        return torch.from_numpy(self.counts).unsqueeze(1)
