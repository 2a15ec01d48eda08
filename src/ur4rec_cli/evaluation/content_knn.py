"""Content-KNN baseline as a real Scorer: the mean text vector of a user's recent items against each item's.

score(u, i) = <mean of item_text[j] over the newest ``RECENT`` items j of u's fed history, item_text[i]>,
with the item-description embeddings of `ur4rec llm` (L2-normalised; the user side is
``models/knn_block.py``, which UR4Rec V2's scoring-time block shares). It reads no interaction
beyond the user's own history and learns nothing: what content alone ranks, the yardstick for
cold and long-tail items (an item with no interaction still has its text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ur4rec_cli.models.knn_block import RECENT  # newest history items averaged (the ranking core feeds exactly these)

if TYPE_CHECKING:
    import torch


class ContentKNNScorer:
    """Scores from item-text embeddings [n_items + 1, d] (row 0 padding, zero)."""

    max_len = RECENT

    def __init__(self, item_text: np.ndarray) -> None:
        self.item_text = np.asarray(item_text, dtype=np.float32).copy()
        self.item_text[0] = 0.0

    def user_vectors(self, histories: "torch.Tensor", users: "torch.Tensor") -> "torch.Tensor":
        import torch

        from ur4rec_cli.models.knn_block import knn_users

        return knn_users(torch.from_numpy(self.item_text).to(histories.device), histories)

    def item_vectors(self) -> "torch.Tensor":
        import torch

        return torch.from_numpy(self.item_text)
