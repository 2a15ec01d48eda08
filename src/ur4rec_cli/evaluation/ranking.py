"""Full-ranking evaluation of any scorer: one [B, n_items + 1] score matrix per user batch.

The single evaluator behind training's validation and `ur4rec evaluate --protocol full`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from ur4rec_cli.data.sequences import pad_left
from ur4rec_cli.evaluation.metrics import rank_of_targets

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.data.dataset import Dataset


class Scorer(Protocol):
    """Anything whose score factors as <user_vec, item_vec> (models, popularity)."""

    def user_vectors(self, histories: "torch.Tensor", users: "torch.Tensor") -> "torch.Tensor": ...

    def item_vectors(self) -> "torch.Tensor": ...


def history_mask(histories: np.ndarray, n_items: int) -> np.ndarray:
    """[B, n_items + 1] bool: True for padding column 0 and every item in the row's history."""
    mask = np.zeros((histories.shape[0], n_items + 1), dtype=bool)
    rows = np.repeat(np.arange(histories.shape[0]), histories.shape[1])
    mask[rows, histories.reshape(-1)] = True
    mask[:, 0] = True
    return mask


def full_ranking_ranks(
    scorer: Scorer,
    dataset: "Dataset",
    split: Literal["valid", "test"],
    *,
    max_len: int,
    users: np.ndarray | None = None,
    batch_size: int = 1024,
    device: "torch.device | str" = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of the held-out items among all items not in the user's fed history.

    Returns ``(users, targets, ranks)`` as int64 arrays. The mask uses the whole fed history, not
    only the ``max_len`` items the model reads.
    """
    import torch

    users = dataset.eval_users() if users is None else np.asarray(users, dtype=np.int64)
    targets = dataset.targets(users, split)
    ranks = np.empty(len(users), dtype=np.int64)
    with torch.inference_mode():
        items = scorer.item_vectors().to(device).float()
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            fed = [dataset.history(int(u), split) for u in chunk]
            seqs = torch.from_numpy(pad_left(fed, max_len)).to(device)
            vecs = scorer.user_vectors(seqs, torch.from_numpy(chunk).to(device)).float()
            scores = vecs @ items.T
            full = pad_left(fed, max(1, max(len(h) for h in fed)))
            exclude = torch.from_numpy(history_mask(full, dataset.n_items)).to(device)
            tgt = torch.from_numpy(targets[start : start + batch_size]).to(device)
            ranks[start : start + len(chunk)] = rank_of_targets(scores, tgt, exclude).cpu().numpy()
    return users, targets, ranks
