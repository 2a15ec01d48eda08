"""Stage 2's cached sequence states (training/state_cache.py) against states recomputed per batch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_training_stages import _context, _settings  # noqa: E402

from ur4rec_cli.training import stages as st  # noqa: E402
from ur4rec_cli.training.state_cache import build_pool, pool_size  # noqa: E402
from ur4rec_cli.training.trainer import iterate_batches  # noqa: E402


def _stage_two(content_stage1: bool = False, **train):
    ctx = _context(_settings(content_stage1, **train))
    st.run_stage(ctx, "pretrain_sasrec")
    plan = st.stage_plan(ctx.settings, "pretrain_retriever")
    return ctx, plan, st._build_stage(ctx, plan)


@pytest.mark.parametrize("recent", [0, 3])
def test_cached_states_equal_the_states_recomputed_for_every_batch(recent: int) -> None:
    ctx, plan, live = _stage_two(retriever_recent=recent, state_cache_orders=2)
    pool = live.parts.cache
    assert pool is not None and len(pool.orders) == 2
    model = live.model.eval()
    for epoch in (1, 2, 3):
        cached = pool.for_epoch(epoch)
        assert cached is pool.orders[(epoch - 1) % 2]
        batches = 0
        for users, x, y, rows in iterate_batches(cached.pairs, ctx.settings.train.batch_size, np.random.default_rng(epoch), with_rows=True):
            with torch.no_grad():
                fresh = model.sequence_states(x, y != 0)
            got = cached.rows(rows)
            assert got.shape == fresh.shape == (int((y != 0).sum()), model.args.hidden)
            assert torch.allclose(got, fresh, atol=1e-5)
            batches += 1
        assert batches == live.parts.steps_per_epoch
    if recent:
        per_user = {}
        for u, y in zip(cached.pairs[0], cached.pairs[2]):
            per_user[u] = per_user.get(u, 0) + int(np.count_nonzero(y))
        assert max(per_user.values()) == recent  # only the newest transitions are supervised


def test_the_pool_is_what_the_seeded_tie_orders_give_and_shrinks_to_its_budget() -> None:
    ctx, plan, live = _stage_two(state_cache_orders=3)
    pool = live.parts.cache
    again = st._stage_pairs(ctx, plan, tie_rng=np.random.default_rng([plan.seed, 1]))
    assert all(np.array_equal(a, b) for a, b in zip(pool.orders[1].pairs[1], again[1]))  # resumable: seeded per order
    positions = pool.orders[0].states.shape[0]
    hidden = live.model.args.hidden
    assert pool_size(3, positions, hidden, budget=positions * hidden * 4 * 2) == 2
    make = lambda rng: st._stage_pairs(ctx, plan, tie_rng=rng)  # noqa: E731
    assert build_pool(live.model, make, ctx.device, orders=3, shuffle=True, seed=plan.seed, budget=positions * hidden * 4 - 1) is None
    assert build_pool(live.model, make, ctx.device, orders=0, shuffle=True, seed=plan.seed) is None
    one = build_pool(live.model, make, ctx.device, orders=3, shuffle=False, seed=plan.seed)
    assert len(one.orders) == 1  # without tie shuffling there is one order, the file's


@pytest.mark.parametrize("content", [False, True])
def test_stage_two_trains_alike_with_and_without_the_cache_when_ties_keep_their_order(content: bool) -> None:
    """The two trained models score alike. Their parameters are not compared one by one: a key head's
    bias shifts every item's score for a query by the same amount, so softmax gives it a zero gradient
    in exact arithmetic, and Adam scales the float noise it gets instead up to learning-rate-sized steps
    that differ with the order of the sums (content_stage1 changes that order)."""
    scores = []
    for orders in (4, 0):
        ctx, plan, live = _stage_two(content, shuffle_ties=False, state_cache_orders=orders)
        summary = st.run_stage(ctx, "pretrain_retriever")
        assert (summary["state_cache"] is not None) == (orders > 0)
        model = live.model
        model.load_state_dict(torch.load(ctx.run_dir / "pretrain_retriever" / "last.pt", weights_only=False)["state_dict"])
        model.eval()
        assert model.args.content_stage1 == content
        users, x, _ = next(iterate_batches(st._stage_pairs(ctx, plan, tie_rng=None), 64, np.random.default_rng(0)))
        with torch.no_grad():
            scores.append(model.user_vectors(x, users) @ model.item_vectors().T)
    cached, fresh = scores
    assert torch.allclose(cached, fresh, atol=1e-4)
