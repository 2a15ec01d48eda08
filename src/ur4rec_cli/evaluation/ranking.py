"""Full-ranking evaluation of any scorer: user batches times item chunks, history masked.

The single evaluator behind training's validation and `ur4rec evaluate --protocol full`.
Memory stays bounded by ``batch_size x item_chunk`` scores whatever the catalog size, so a
catalog of 100k+ items is ranked exactly, chunk by chunk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from ur4rec_cli.data.sequences import pad_left
from ur4rec_cli.errors import EvaluationError

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


def ranks_from_vectors(
    user_vecs: "torch.Tensor",
    item_vecs: "torch.Tensor",
    targets: "torch.Tensor",
    histories: list[np.ndarray],
    *,
    item_chunk: int = 65536,
) -> "torch.Tensor":
    """Pessimistic 0-based rank of each target among items outside the row's history.

    rank = #{j != target, j not in history, j != 0 : score_j >= score_target}; NaN raises.
    """
    import torch

    device = user_vecs.device
    n_rows = user_vecs.shape[0]
    n_cols = item_vecs.shape[0]
    target_scores = (user_vecs * item_vecs[targets]).sum(dim=1, keepdim=True)
    if torch.isnan(target_scores).any():
        raise EvaluationError("NaN score for a target item: the model produced NaN, refusing to rank it")
    # History items (and padding) scored >= the target must not count: subtract them afterwards,
    # which keeps the per-chunk work a dense comparison.
    lengths = [len(h) for h in histories]
    width = max(1, max(lengths) if lengths else 1)
    # Sorted so that repeated history items can be counted once (order is irrelevant to a count).
    hist, _ = torch.from_numpy(pad_left(histories, width)).to(device).sort(dim=1)
    hist_scores = torch.einsum("bd,bld->bl", user_vecs, item_vecs[hist])
    if torch.isnan(hist_scores).any():
        raise EvaluationError("NaN score for a history item: the model produced NaN, refusing to rank it")
    first = torch.ones_like(hist, dtype=torch.bool)
    first[:, 1:] = hist[:, 1:] != hist[:, :-1]
    valid = first & (hist != 0) & (hist != targets.unsqueeze(1))
    beaten_by_history = ((hist_scores >= target_scores) & valid).sum(dim=1)

    counts = torch.zeros(n_rows, dtype=torch.long, device=device)
    for start in range(1, n_cols, item_chunk):  # column 0 is padding, never a candidate
        block = user_vecs @ item_vecs[start : start + item_chunk].T
        if torch.isnan(block).any():
            raise EvaluationError("NaN score in the item scores: the model produced NaN, refusing to rank it")
        counts += (block >= target_scores).sum(dim=1)
    # The target itself was counted once (score >= its own score).
    return counts - 1 - beaten_by_history


def full_ranking_ranks(
    scorer: Scorer,
    dataset: "Dataset",
    split: Literal["valid", "test"],
    *,
    max_len: int,
    users: np.ndarray | None = None,
    batch_size: int = 1024,
    item_chunk: int = 65536,
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
            tgt = torch.from_numpy(targets[start : start + len(chunk)]).to(device)
            ranks[start : start + len(chunk)] = (
                ranks_from_vectors(vecs, items, tgt, fed, item_chunk=item_chunk).cpu().numpy()
            )
    return users, targets, ranks
