"""Evaluation protocols beside full ranking: the sampled-negatives protocol papers often report.

Sampled (DESIGN.md): per user, ``n`` negatives drawn uniformly without replacement, with a fixed
seed, from the items the user NEVER interacted with (the whole sequence, held-out items included,
not only the fed history); the target is ranked among the ``1 + n`` with the same pessimistic
``rank_of_targets`` as full ranking. A user with fewer than ``n`` unseen items gets all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from ur4rec_cli.data.sequences import pad_left
from ur4rec_cli.ranking import history_mask, rank_of_targets

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.ranking import Scorer


def interacted_mask(dataset: "Dataset", users: np.ndarray) -> np.ndarray:
    """[B, n_items + 1] bool: padding and every item in each user's whole sequence."""
    seqs = [dataset.sequence(int(u)) for u in users]
    return history_mask(pad_left(seqs, max(1, max(len(s) for s in seqs))), dataset.n_items)


def sample_negatives(
    dataset: "Dataset", users: np.ndarray, n: int, seed: int, *, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """``(negatives [U, n] int64, valid [U, n] bool)`` drawn uniformly from never-interacted items.

    Reproducible: the same seed and user list give the same draws. Each row ranks uniform random
    keys of its allowed items and keeps the ``n`` smallest (uniform sampling without replacement),
    all users of a chunk at once. ``valid`` is False where a user has fewer than ``n`` unseen items.
    """
    users = np.asarray(users, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n_cols = dataset.n_items + 1
    take = min(n, dataset.n_items)
    negatives = np.zeros((len(users), n), dtype=np.int64)
    valid = np.zeros((len(users), n), dtype=bool)
    for start in range(0, len(users), chunk):
        part = users[start : start + chunk]
        keys = rng.random((len(part), n_cols))
        keys[interacted_mask(dataset, part)] = np.inf
        pick = np.argpartition(keys, take - 1, axis=1)[:, :take]
        # Sorted by key so the draw order (and any truncation) does not depend on argpartition.
        pick = np.take_along_axis(pick, np.argsort(np.take_along_axis(keys, pick, axis=1), axis=1), axis=1)
        ok = np.isfinite(np.take_along_axis(keys, pick, axis=1))
        negatives[start : start + len(part), :take] = np.where(ok, pick, 0)
        valid[start : start + len(part), :take] = ok
    return negatives, valid


def sampled_ranks(
    scorer: "Scorer",
    dataset: "Dataset",
    split: Literal["valid", "test"],
    *,
    negatives: int,
    seed: int,
    max_len: int,
    users: np.ndarray | None = None,
    batch_size: int = 64,
    device: "torch.device | str" = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(users, targets, ranks, candidates)``: each target ranked among itself and its sampled negatives."""
    import torch

    users = dataset.eval_users() if users is None else np.asarray(users, dtype=np.int64)
    targets = dataset.targets(users, split)
    negs, valid = sample_negatives(dataset, users, negatives, seed)
    ranks = np.empty(len(users), dtype=np.int64)
    with torch.inference_mode():
        items = scorer.item_vectors().to(device).float()
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            stop = start + len(chunk)
            fed = [dataset.history(int(u), split) for u in chunk]
            seqs = torch.from_numpy(pad_left(fed, max_len)).to(device)
            vecs = scorer.user_vectors(seqs, torch.from_numpy(chunk).to(device)).float()
            # Column 0 is the target, columns 1.. its negatives.
            cand = torch.from_numpy(np.concatenate([targets[start:stop, None], negs[start:stop]], axis=1)).to(device)
            scores = torch.einsum("bd,bcd->bc", vecs, items[cand])
            exclude = torch.from_numpy(np.concatenate([np.zeros((len(chunk), 1), bool), ~valid[start:stop]], axis=1))
            zero = torch.zeros(len(chunk), dtype=torch.long, device=device)
            ranks[start:stop] = rank_of_targets(scores, zero, exclude.to(device)).cpu().numpy()
    return users, targets, ranks, 1 + valid.sum(axis=1).astype(np.int64)


def full_candidates(dataset: "Dataset", users: np.ndarray, split: Literal["valid", "test"]) -> np.ndarray:
    """Candidates per user under full ranking: every item not in the fed history nor absent
    (``dataset.absent_items``), plus the target."""
    users = np.asarray(users, dtype=np.int64)
    targets = dataset.targets(users, split)
    absent = dataset.absent_items(split)
    out = np.empty(len(users), dtype=np.int64)
    for start in range(0, len(users), 1024):
        chunk = users[start : start + 1024]
        fed = [dataset.history(int(u), split) for u in chunk]
        if absent is not None:
            fed = [np.concatenate([h, absent]) for h in fed]
        mask = history_mask(pad_left(fed, max(1, max(len(h) for h in fed))), dataset.n_items)
        rows = np.arange(len(chunk))
        # The target is always a candidate, even if the user interacted with it before.
        out[start : start + len(chunk)] = (~mask).sum(axis=1) + mask[rows, targets[start : start + len(chunk)]]
    return out
