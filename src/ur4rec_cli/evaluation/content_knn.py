"""Content-KNN baseline as a real Scorer: the mean text vector of a user's recent items against each item's.

score(u, i) = <mean of item_text[j] over the newest ``RECENT`` items j of u's fed history, item_text[i]>,
with the item-description embeddings of `ur4rec llm` (L2-normalised). It reads no interaction
beyond the user's own history and learns nothing: what content alone ranks, the yardstick for
cold and long-tail items (an item with no interaction still has its text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Newest history items averaged into the user's vector (the ranking core feeds exactly these).
RECENT = 10


class ContentKNNScorer:
    """Scores from item-text embeddings [n_items + 1, d] (row 0 padding, zero)."""

    max_len = RECENT

    def __init__(self, item_text: np.ndarray) -> None:
        self.item_text = np.asarray(item_text, dtype=np.float32).copy()
        self.item_text[0] = 0.0

    def user_vectors(self, histories: "torch.Tensor", users: "torch.Tensor") -> "torch.Tensor":
        import torch

        table = torch.from_numpy(self.item_text).to(histories.device)
        recent = histories[:, -RECENT:]
        counts = (recent != 0).sum(1, keepdim=True).clamp(min=1)
        return table[recent].sum(1) / counts  # padding rows are zero: a mean over real items

    def item_vectors(self) -> "torch.Tensor":
        import torch

        return torch.from_numpy(self.item_text)
