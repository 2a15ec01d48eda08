"""Sampled protocol, popularity baseline, and a real (tiny, trained) torch model through both protocols."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from test_metrics import FixedScorer, tiny_dataset
from ur4rec_cli.data.dataset import build_dataset
from ur4rec_cli.evaluation.popularity import PopularityScorer
from ur4rec_cli.evaluation.protocols import full_candidates, sample_negatives, sampled_ranks
from ur4rec_cli.evaluation.run import rank_scorer


def clustered_dataset(n_users: int = 80, n_items: int = 40, length: int = 12, seed: int = 0):
    """Odd users interact only with items 1..20, even users only with 21..40 (random order)."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    half = n_items // 2
    for u in range(1, n_users + 1):
        pool = np.arange(1, half + 1) if u % 2 else np.arange(half + 1, n_items + 1)
        for t, i in enumerate(rng.permutation(pool)[:length]):
            users.append(str(u)), items.append(str(i)), times.append(t)
    meta = {str(i): {"title": f"Item {i}", "year": 1990 + i % 10, "genres": ["Drama"]} for i in range(1, n_items + 1)}
    return build_dataset("clustered", "test", np.array(users), np.array(items), np.ones(len(items)), np.array(times), meta, {})


class BagOfItems(torch.nn.Module):
    """A real Scorer: the user vector is the mean embedding of the fed history."""

    def __init__(self, n_items: int, dim: int = 16) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.args = SimpleNamespace(max_len=50)

    def user_vectors(self, histories: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        mask = (histories > 0).float().unsqueeze(-1)
        return (self.emb(histories) * mask).sum(1) / mask.sum(1).clamp(min=1)

    def item_vectors(self) -> torch.Tensor:
        return self.emb.weight


def train_bag(ds, steps: int = 150) -> BagOfItems:
    """Next-item cross-entropy on train prefixes only (valid and test items are never seen)."""
    from ur4rec_cli.data.sequences import pad_left

    torch.manual_seed(0)
    model = BagOfItems(ds.n_items)
    hist = [ds.history(u, "train") for u in range(1, ds.n_users + 1)]
    x = torch.from_numpy(pad_left([h[:-1] for h in hist], 50))
    y = torch.tensor([int(h[-1]) for h in hist])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model.user_vectors(x, y) @ model.item_vectors().T, y)
        opt.zero_grad(), loss.backward(), opt.step()
    return model.eval()


def test_negatives_never_interacted_distinct_and_reproducible() -> None:
    ds = clustered_dataset()
    users = ds.eval_users()
    negs, valid = sample_negatives(ds, users, 15, seed=7)
    assert valid.all() and negs.shape == (len(users), 15)
    for row, u in enumerate(users):
        seq = set(ds.sequence(int(u)).tolist())  # whole sequence, held-out items included
        assert not seq & set(negs[row].tolist())
        assert len(set(negs[row].tolist())) == 15 and negs[row].min() >= 1 and negs[row].max() <= ds.n_items
    again, _ = sample_negatives(ds, users, 15, seed=7)
    other, _ = sample_negatives(ds, users, 15, seed=8)
    assert np.array_equal(negs, again) and not np.array_equal(negs, other)
    # Chunking does not change the draw.
    chunked, _ = sample_negatives(ds, users, 15, seed=7, chunk=7)
    assert np.array_equal(negs, chunked)


def test_negatives_uniform_over_unseen_items() -> None:
    ds = clustered_dataset(n_users=2, n_items=40, length=12)
    user = np.array([1] * 4000)  # the same user many times: 28 unseen items, 5 drawn per row
    negs, _ = sample_negatives(ds, user, 5, seed=0)
    counts = np.bincount(negs.ravel(), minlength=41)
    unseen = np.setdiff1d(np.arange(1, 41), ds.sequence(1))
    assert set(np.nonzero(counts)[0]) == set(unseen.tolist())
    expected = 4000 * 5 / len(unseen)
    assert np.abs(counts[unseen] - expected).max() < 0.15 * expected


def test_fewer_unseen_items_than_negatives() -> None:
    ds = tiny_dataset({"a": ["1", "2", "3", "4"]}, n_items=6)  # items 5 and 6 are unseen
    negs, valid = sample_negatives(ds, np.array([1]), 100, seed=0)
    assert valid.sum() == 2 and sorted(negs[valid].tolist()) == [5, 6]
    table = np.zeros((2, 7), dtype=np.float32)
    table[1] = [0, 0, 0, 0, 3, 3, 1]  # target 4 (3.0) ties item 5, beats item 6 -> rank 1 of 3
    users, targets, ranks, cand = sampled_ranks(FixedScorer(table), ds, "test", negatives=100, seed=0, max_len=5)
    assert targets.tolist() == [4] and ranks.tolist() == [1] and cand.tolist() == [3]


def test_sampled_rank_counts_only_sampled_negatives() -> None:
    ds = clustered_dataset()
    rng = np.random.default_rng(0)
    table = rng.random((ds.n_users + 1, ds.n_items + 1)).astype(np.float32)
    users, targets, ranks, cand = sampled_ranks(FixedScorer(table), ds, "valid", negatives=10, seed=3, max_len=20)
    negs, _ = sample_negatives(ds, users, 10, seed=3)
    expected = [(table[u, negs[r]] >= table[u, targets[r]]).sum() for r, u in enumerate(users)]
    assert ranks.tolist() == expected and (cand == 11).all()


def test_full_candidates_exclude_fed_history() -> None:
    ds = clustered_dataset()
    users = ds.eval_users()
    assert (full_candidates(ds, users, "test") == ds.n_items - 11).all()  # 12 items, 11 fed
    assert (full_candidates(ds, users, "valid") == ds.n_items - 10).all()


def test_popularity_counts_fed_histories_only() -> None:
    ds = clustered_dataset()
    test_counts = PopularityScorer(ds, "test").counts
    valid_counts = PopularityScorer(ds, "valid").counts
    # Test feeds train + valid: exactly the validation targets are added.
    assert np.array_equal(test_counts - valid_counts, np.bincount(ds.targets(ds.eval_users(), "valid"), minlength=41))
    assert valid_counts[0] == 0 and PopularityScorer(ds, "test").item_vectors().shape == (41, 1)


def test_trained_model_beats_popularity_under_both_protocols() -> None:
    ds = clustered_dataset()
    model = train_bag(ds)
    pop = PopularityScorer(ds, "test")
    for protocol in ("full", "sampled"):
        learned = rank_scorer(model, ds, split="test", protocol=protocol, max_len=50, negatives=20, seed=0)
        base = rank_scorer(pop, ds, split="test", protocol=protocol, max_len=1, negatives=20, seed=0)
        m, b = learned.metrics([10]), base.metrics([10])
        print(protocol, "bag-of-items", m, "popularity", b)
        assert m["NDCG@10"] > b["NDCG@10"] + 0.2
        assert len(learned.users) == ds.n_users and learned.seconds < 5


@pytest.mark.slow
def test_popularity_on_real_ml100k_close_to_recbole(ml100k) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.settings import load_settings

    result = api.evaluate(load_settings(), stage="popularity", k=[10])
    hr = result["metrics"]["HR@10"]
    print(f"popularity, full ranking, ML-100K test: HR@10 = {hr:.4f} (RecBole Pop: 0.0838), {result['seconds']:.3f} s")
    assert 0.06 <= hr <= 0.11
    assert result["users"] == 943 and result["stage"] == "popularity" and result["checkpoint"] is None
    assert 900 < result["candidates"]["median"] < 1682
    assert result["seconds"] < 2.0  # all 943 users, one matrix product per batch
