"""Ranking metrics against hand-computed values: ties, constant scores, NaN, k > candidates, masking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ur4rec_cli.data.dataset import build_dataset
from ur4rec_cli.errors import EvaluationError
from ur4rec_cli.evaluation.bootstrap import paired_bootstrap
from ur4rec_cli.ranking import full_ranking_ranks, metrics_from_ranks, per_user_ndcg, rank_of_targets


class FixedScorer:
    """score(u, i) = table[u, i]: user vector = one-hot row, item vectors = the table's transpose."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = torch.tensor(table, dtype=torch.float32)  # [n_users + 1, n_items + 1]

    def user_vectors(self, histories: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(users, self.table.shape[0]).float()

    def item_vectors(self) -> torch.Tensor:
        return self.table.T.contiguous()


def tiny_dataset(seqs: dict[str, list[str]], n_items: int = 6):
    users = [u for u, items in seqs.items() for _ in items]
    items = [i for s in seqs.values() for i in s]
    times = [t for s in seqs.values() for t in range(len(s))]
    meta = {str(i): {"title": f"Item {i}", "year": 2000, "genres": []} for i in range(1, n_items + 1)}
    return build_dataset("tiny", "test", np.array(users), np.array(items), np.ones(len(items)), np.array(times), meta, {})


def test_rank_of_targets_hand_values() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.5, 0.2], [3.0, 1.0, 2.0, 0.0, -1.0]])
    # Row 0: target col 2 (0.5); col 1 beats it, col 3 ties -> pessimistic rank 2.
    # Row 1: target col 0 (3.0) is the best -> rank 0.
    ranks = rank_of_targets(scores, torch.tensor([2, 0]))
    assert ranks.tolist() == [2, 0]
    # Excluding col 1 (e.g. a history item) removes it from the count; the tie still counts.
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[0, 1] = True
    assert rank_of_targets(scores, torch.tensor([2, 0]), exclude).tolist() == [1, 0]


def test_constant_scores_rank_last_among_candidates() -> None:
    scores = torch.full((3, 7), 0.25)
    ranks = rank_of_targets(scores, torch.tensor([0, 3, 6]))
    assert ranks.tolist() == [6, 6, 6]  # candidates - 1: a constant model never looks like a hit
    assert metrics_from_ranks(ranks.numpy(), [5])["HR@5"] == 0.0


def test_nan_raises() -> None:
    scores = torch.tensor([[0.1, 0.2], [float("nan"), 0.3]])
    with pytest.raises(EvaluationError, match="NaN"):
        rank_of_targets(scores, torch.tensor([0, 1]))


def test_metrics_hand_computed() -> None:
    m = metrics_from_ranks([0, 1, 4, 9], [1, 5])
    assert m["HR@1"] == pytest.approx(0.25)
    assert m["NDCG@1"] == pytest.approx(0.25)
    assert m["HR@5"] == pytest.approx(0.75)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 4)
    assert list(m) == ["HR@1", "NDCG@1", "HR@5", "NDCG@5", "MRR"]
    assert per_user_ndcg(np.array([0, 1, 4, 9]), 5).tolist() == pytest.approx([1, 1 / math.log2(3), 1 / math.log2(6), 0])
    with pytest.raises(EvaluationError):
        metrics_from_ranks([], [10])


def test_k_larger_than_candidates() -> None:
    # 4 candidates: every rank is < 100, so HR@100 = 1 and NDCG@100 = mean 1/log2(rank + 2).
    ranks = rank_of_targets(torch.tensor([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]]), torch.tensor([0, 0]))
    assert ranks.tolist() == [0, 3]
    m = metrics_from_ranks(ranks.numpy(), [100])
    assert m["HR@100"] == 1.0
    assert m["NDCG@100"] == pytest.approx((1 + 1 / math.log2(5)) / 2)


def test_history_items_scored_highest_do_not_count() -> None:
    # User 1: sequence 1 2 3 4 5 -> test target 5, fed history 1..4. Items 1..4 score highest.
    ds = tiny_dataset({"a": ["1", "2", "3", "4", "5"]}, n_items=6)
    table = np.zeros((2, 7), dtype=np.float32)
    table[1] = [0, 9, 9, 9, 9, 5, 1]  # target 5 beats only unseen item 6
    users, targets, ranks = full_ranking_ranks(FixedScorer(table), ds, "test", max_len=10)
    assert targets.tolist() == [5] and ranks.tolist() == [0]
    # Validation target 4 is fed 1..3; item 5 (the test item, not in the fed history) is a candidate.
    table[1] = [0, 9, 9, 9, 2, 5, 1]
    _, targets, ranks = full_ranking_ranks(FixedScorer(table), ds, "valid", max_len=10)
    assert targets.tolist() == [4] and ranks.tolist() == [1]


def test_full_ranking_nan_raises() -> None:
    ds = tiny_dataset({"a": ["1", "2", "3", "4"]})
    table = np.zeros((2, 7), dtype=np.float32)
    table[1, 6] = np.nan
    with pytest.raises(EvaluationError, match="NaN"):
        full_ranking_ranks(FixedScorer(table), ds, "test", max_len=10)


def test_paired_bootstrap_ci() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(500)
    better = paired_bootstrap(b + 0.1, b, n_boot=500, seed=3)
    assert better["mean_diff"] == pytest.approx(0.1)
    assert better["low"] == pytest.approx(0.1) and better["high"] == pytest.approx(0.1) and better["p_value"] == 0.0
    noise = paired_bootstrap(rng.random(500), rng.random(500), n_boot=500, seed=3)
    assert noise["low"] < 0 < noise["high"] and noise["p_value"] > 0.05
    assert paired_bootstrap(b + 0.1, b, n_boot=500, seed=3) == better  # reproducible with the seed
    with pytest.raises(EvaluationError):
        paired_bootstrap(b, b[:-1])


@pytest.mark.parametrize("chunk", [65536, 100])
def test_float_scores_never_miscount_the_target(chunk: int) -> None:
    # Regression: a target score computed apart from the score matrix (another summation order)
    # can differ in the last bit, so the target failed to count itself and ranks of -1 appeared.
    from ur4rec_cli.ranking import ranks_from_vectors

    gen = torch.Generator().manual_seed(0)
    users, items = torch.randn(300, 64, generator=gen), torch.randn(1683, 64, generator=gen)
    targets = torch.randint(1, 1683, (300,), generator=gen)
    histories = [np.random.default_rng(b).choice(np.arange(1, 1683), size=30, replace=False) for b in range(300)]
    got = ranks_from_vectors(users, items, targets, histories, item_chunk=chunk)
    exclude = np.zeros((300, 1683), dtype=bool)
    for b, h in enumerate(histories):
        exclude[b, h] = True
    exclude[:, 0] = True
    want = rank_of_targets(users @ items.T, targets, torch.from_numpy(exclude))
    assert got.min() >= 0 and got.tolist() == want.tolist()
