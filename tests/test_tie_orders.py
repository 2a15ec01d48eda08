"""Tie-order averaging: user vectors averaged over orders of same-timestamp history items."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ur4rec_cli.data.dataset import build_dataset  # noqa: E402
from ur4rec_cli.data.sequences import pad_left, shuffle_ties  # noqa: E402
from ur4rec_cli.errors import EvaluationError  # noqa: E402
from ur4rec_cli.models.ur4rec import ModelArgs, UR4RecV2  # noqa: E402
from ur4rec_cli.ranking import TieOrderAverage, full_ranking_ranks, with_tie_orders  # noqa: E402

N_ITEMS = 12


def _dataset():
    # User 1: ties in its history; user 2: no two items share a second.
    rows = [("1", i, t) for i, t in zip([1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 1, 1, 2, 3])]
    rows += [("2", i, t) for i, t in zip([8, 9, 10, 11, 12], [0, 1, 2, 3, 4])]
    users, items, times = zip(*rows)
    meta = {str(i): {"title": f"Item {i}", "year": 1990, "genres": ["Drama"]} for i in range(1, N_ITEMS + 1)}
    return build_dataset("ties", "synthetic", np.array(users), np.array([str(i) for i in items]), np.ones(len(rows)), np.array(times), meta, {})


def _model() -> UR4RecV2:
    torch.manual_seed(0)
    model = UR4RecV2(ModelArgs(n_items=N_ITEMS, n_users=2, max_len=8, hidden=16, expert_dim=8, modalities=["item_text"]))
    model.set_features(item_text=torch.randn(N_ITEMS + 1, 384))
    return model.eval()


def test_shuffle_ties_moves_items_only_within_their_second() -> None:
    items, times = np.arange(1, 8), np.array([0, 0, 0, 1, 1, 2, 3])
    seen = {tuple(shuffle_ties(items, times, np.random.default_rng(s))) for s in range(60)}
    assert len(seen) == 12  # 3! x 2!
    for order in seen:
        assert sorted(order[:3]) == [1, 2, 3] and sorted(order[3:5]) == [4, 5] and order[5:] == (6, 7)


def test_average_is_the_mean_over_orders_and_does_not_depend_on_batching() -> None:
    ds, model = _dataset(), _model()
    avg = TieOrderAverage(model, ds, "test", orders=6)
    users = torch.tensor([1, 2])
    fed = [ds.history(1, "test"), ds.history(2, "test")]
    with torch.no_grad():
        both = avg.user_vectors(torch.from_numpy(pad_left(fed, 8)), users)
        alone = avg.user_vectors(torch.from_numpy(pad_left(fed[:1], 6)), users[:1])
        plain = model.user_vectors(torch.from_numpy(pad_left(fed, 8)), users)
        # By hand: pass 0 is the source order, passes 1.. are seeded per user and pass.
        orders = [fed[0]] + [shuffle_ties(fed[0], ds.seq_times[:6], np.random.default_rng([0, 1, k])) for k in range(1, 6)]
        by_hand = torch.stack([model.user_vectors(torch.from_numpy(pad_left([o], 8)), users[:1])[0] for o in orders]).mean(0)
    assert torch.allclose(both[0], alone[0], atol=1e-5)
    assert torch.allclose(both[0], by_hand, atol=1e-5)
    assert not torch.allclose(both[0], plain[0], atol=1e-4)  # the ties moved the state
    assert torch.allclose(both[1], plain[1], atol=1e-5)  # no ties: every pass is the same history
    g, w = avg.gate_weights(torch.from_numpy(pad_left(fed, 8)), users)
    assert torch.allclose(g.sum(1), torch.ones(2)) and torch.isfinite(w).all()
    # The orders run as one stacked batch: the same mean as one encoder call per order.
    with torch.no_grad():
        per_order = [model.gate_weights(torch.from_numpy(pad_left([o], 8)), users[:1]) for o in orders]
    assert torch.allclose(g[0], torch.stack([x[0][0] for x in per_order]).mean(0), atol=1e-5)
    assert torch.allclose(w[0], torch.stack([x[1][0] for x in per_order]).mean(0), atol=1e-5)


def test_one_order_is_the_scorer_itself_and_a_foreign_history_is_refused() -> None:
    ds, model = _dataset(), _model()
    assert with_tie_orders(model, ds, "test", 1) is model
    avg = with_tie_orders(model, ds, "test", 4)
    with pytest.raises(EvaluationError, match="not their test history"):
        avg.user_vectors(torch.from_numpy(pad_left([np.array([9, 10])], 8)), torch.tensor([1]))


def test_full_ranking_with_averaged_vectors_still_factorises() -> None:
    ds, model = _dataset(), _model()
    avg = TieOrderAverage(model, ds, "test", orders=4)
    users, targets, ranks = full_ranking_ranks(avg, ds, "test", max_len=8)
    with torch.no_grad():
        fed = [ds.history(int(u), "test") for u in users]
        vecs = avg.user_vectors(torch.from_numpy(pad_left(fed, 8)), torch.from_numpy(users))
        scores = vecs @ model.item_vectors().T
    for row, (u, t) in enumerate(zip(users, targets)):
        s = scores[row].clone()
        s[0] = -float("inf")
        s[torch.from_numpy(ds.history(int(u), "test"))] = -float("inf")
        assert ranks[row] == int((s >= s[t]).sum()) - 1


def test_tie_orders_may_change_on_resume_a_training_setting_may_not() -> None:
    from ur4rec_cli.errors import ConfigError
    from ur4rec_cli.training.state import check_resume_settings

    saved = {"model": {"tie_orders": 8, "hidden": 64}, "train": {"shuffle_ties": True}}
    check_resume_settings("pretrain_sasrec", saved, {"model": {"tie_orders": 1, "hidden": 64}, "train": {"shuffle_ties": True}}, "hint")
    with pytest.raises(ConfigError, match="train.shuffle_ties"):
        check_resume_settings("pretrain_sasrec", saved, {"model": {"tie_orders": 8, "hidden": 64}, "train": {"shuffle_ties": False}}, "hint")


def test_stacked_orders_are_cut_into_row_chunks_without_changing_the_mean(monkeypatch) -> None:
    import ur4rec_cli.ranking as R

    ds, model = _dataset(), _model()
    avg = TieOrderAverage(model, ds, "test", orders=6)
    users = torch.tensor([1, 2])
    seqs = torch.from_numpy(pad_left([ds.history(1, "test"), ds.history(2, "test")], 8))
    with torch.no_grad():
        whole = avg.user_vectors(seqs, users)
        g_whole, _ = avg.gate_weights(seqs, users)
        monkeypatch.setattr(R, "STACKED_ROWS", 6)  # one user (6 orders) per encoder call
        chunked = avg.user_vectors(seqs, users)
        g_chunked, _ = avg.gate_weights(seqs, users)
    assert chunked.shape == whole.shape and torch.allclose(chunked, whole, atol=1e-5)
    assert torch.allclose(g_chunked, g_whole, atol=1e-5)
