"""The full-ranking evaluator against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ur4rec_cli.errors import EvaluationError
from ur4rec_cli.ranking import history_mask, rank_of_targets, ranks_from_vectors


def brute_force(scores: np.ndarray, target: int, history: np.ndarray) -> int:
    excluded = set(history.tolist()) | {0}
    return sum(1 for j in range(len(scores)) if j != target and j not in excluded and scores[j] >= scores[target])


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_chunked_ranks_equal_brute_force(chunk: int) -> None:
    rng = np.random.default_rng(0)
    n_items, dim = 23, 4
    # Integer-valued vectors make many exact ties, the case where pessimism matters.
    users = torch.from_numpy(rng.integers(-2, 3, size=(9, dim)).astype(np.float32))
    items = torch.from_numpy(rng.integers(-2, 3, size=(n_items + 1, dim)).astype(np.float32))
    items[0] = 0
    histories = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(0, 8), replace=True) for _ in range(9)]
    targets = torch.tensor([int(rng.integers(1, n_items + 1)) for _ in range(9)])
    got = ranks_from_vectors(users, items, targets, histories, item_chunk=chunk)
    scores = (users @ items.T).numpy()
    want = [brute_force(scores[b], int(targets[b]), histories[b]) for b in range(9)]
    assert got.tolist() == want
    # The dense reference evaluator agrees too.
    width = max(1, max(len(h) for h in histories))
    padded = np.zeros((9, width), dtype=np.int64)
    for b, h in enumerate(histories):
        if len(h):
            padded[b, width - len(h):] = h
    dense = rank_of_targets(users @ items.T, targets, torch.from_numpy(history_mask(padded, n_items)))
    assert dense.tolist() == want


def test_constant_scores_rank_last() -> None:
    users = torch.zeros(2, 3)
    items = torch.zeros(11, 3)
    ranks = ranks_from_vectors(users, items, torch.tensor([4, 5]), [np.array([1, 2]), np.array([], dtype=np.int64)])
    assert ranks.tolist() == [10 - 2 - 1, 10 - 1]


def test_nan_raises() -> None:
    users = torch.ones(1, 2)
    items = torch.ones(5, 2)
    items[3, 0] = float("nan")
    with pytest.raises(EvaluationError):
        ranks_from_vectors(users, items, torch.tensor([1]), [np.array([2])], item_chunk=2)


def test_length_sorted_batches_equal_one_full_width_batch() -> None:
    """Batching users by history length (narrow padding) ranks exactly as one max_len-wide batch."""
    from ur4rec_cli.data.sequences import pad_left
    from ur4rec_cli.ranking import full_ranking_ranks
    from ur4rec_cli.models.sasrec import SASRec

    class Toy:
        n_items, lengths = 40, None

        def __init__(self) -> None:
            rng = np.random.default_rng(3)
            self.seqs = [rng.integers(1, 41, size=int(n)) for n in rng.integers(3, 30, size=25)]

        def eval_users(self):
            return np.arange(1, 26)

        def history(self, u, split):
            seq = self.seqs[u - 1]
            return seq[:-1] if split == "test" else seq[:-2]

        def targets(self, users, split):
            return np.array([self.seqs[u - 1][-1 if split == "test" else -2] for u in users])

        def absent_items(self, split):
            return None

    torch.manual_seed(0)
    model = SASRec(40, 16, 16, 2, 1, 0.0, 0.02).eval()
    ds = Toy()
    users, targets, ranks = full_ranking_ranks(model, ds, "test", max_len=16, batch_size=4)
    with torch.no_grad():
        fed = [ds.history(int(u), "test") for u in users]
        vecs = model.encoder(torch.from_numpy(pad_left(fed, 16)))[:, -1]
    want = ranks_from_vectors(vecs, model.item_vectors(), torch.from_numpy(targets), fed)
    assert ranks.tolist() == want.tolist()
