"""Sequence states of a frozen-SASRec stage, computed once and read back every epoch.

In ``pretrain_retriever`` the sequence model (SASRec and the content adaptor) is frozen and in eval
mode, so the state it gives a supervised position depends on that row's input window alone:
recomputing it every step (as stage 1 must) is wasted work. The stage computes, under
``torch.inference_mode``, the states at every supervised position of its training rows once, keeps
them as one [positions, H] tensor with per-row offsets, and each step gathers its batch's rows.

Off by default (``train.state_cache_orders = 0``): on ML-100K the states are ~9% of a stage-2
epoch (the 352-wide softmax over every position and the MoE are the rest), and cycling a pool of
orders instead of a fresh one per epoch did not raise validation (docs/model.md, issue 24 notebook).

Tie orders (``train.shuffle_ties``): a trained stage otherwise draws a fresh order of each user's
same-second items every epoch. With the cache the stage draws ``train.state_cache_orders`` orders up
front (order k from the generator seeded by [stage seed, k], so the pool is the same on resume),
computes each one's states once, and epoch e trains on order (e - 1) mod P. Without shuffle_ties
there is one order, the file's, and training is the same as without the cache up to float rounding.

Memory: P x supervised positions x H x 4 bytes. Over ``STATE_CACHE_BYTES`` the pool shrinks to
what fits, and when not even one order fits, or under torchrun (each rank takes a different shard
of every epoch), the stage recomputes states per step as before; ``describe`` says which ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.training.context import TrainContext
    from ur4rec_cli.training.plan import StagePlan

STATE_CACHE_BYTES = 1 << 30  # 1 GiB of cached states at most
BUILD_ROWS = 256  # rows per inference batch while building


@dataclass
class CachedOrder:
    """One tie order's training rows and the frozen model's states at their supervised positions."""

    pairs: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]
    states: "torch.Tensor"  # [supervised positions, H], rows in pairs order, positions left to right
    offsets: np.ndarray  # [rows + 1]: row i's states are states[offsets[i]:offsets[i + 1]]

    def rows(self, idx: np.ndarray) -> "torch.Tensor":
        """States of rows ``idx`` in that order: what ``h[targets != 0]`` of their padded batch would be."""
        import torch

        take = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
        return self.states[torch.from_numpy(take).to(self.states.device)]


@dataclass
class StatePool:
    orders: list[CachedOrder]

    def for_epoch(self, epoch: int) -> CachedOrder:
        return self.orders[(epoch - 1) % len(self.orders)]

    def describe(self) -> str:
        n = self.orders[0].states.shape[0]
        return f"sequence states cached: {len(self.orders)} tie order(s) x {n:,} supervised positions (frozen SASRec)"


def supervised_count(pairs: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]) -> int:
    return sum(int(np.count_nonzero(y)) for y in pairs[2])


def pool_size(wanted: int, positions: int, hidden: int, budget: int = STATE_CACHE_BYTES) -> int:
    """How many orders fit the budget (0: none, recompute per step)."""
    per_order = max(1, positions * hidden * 4)
    return max(0, min(wanted, budget // per_order))


def build_order(model: Any, pairs: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], device: "torch.device") -> CachedOrder:
    """Run the frozen sequence model once over every row (length-sorted inference batches)."""
    import torch

    from ur4rec_cli.data.sequences import pad_left

    _, inputs, targets = pairs
    counts = np.fromiter((np.count_nonzero(y) for y in targets), dtype=np.int64, count=len(targets))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    hidden = model.args.hidden
    states = torch.empty(int(offsets[-1]), hidden, device=device)
    order = np.argsort([len(x) for x in inputs], kind="stable")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for a in range(0, len(order), BUILD_ROWS):
                idx = order[a : a + BUILD_ROWS]
                width = max(len(inputs[i]) for i in idx)
                x = torch.from_numpy(pad_left([inputs[i] for i in idx], width)).to(device)
                y = torch.from_numpy(pad_left([targets[i] for i in idx], width)).to(device)
                h = model.sequence_states(x, y != 0)
                start = 0
                for i in idx:  # rows of one batch come out row-major: split them back
                    n = int(counts[i])
                    states[offsets[i] : offsets[i] + n] = h[start : start + n]
                    start += n
    finally:
        model.train(was_training)
    return CachedOrder(pairs, states, offsets)


def build_pool(
    model: Any,
    make_pairs: Callable[[np.random.Generator | None], tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]],
    device: "torch.device",
    *,
    orders: int,
    shuffle: bool,
    seed: int,
    budget: int = STATE_CACHE_BYTES,
) -> StatePool | None:
    """The stage's pool of cached orders, or None when caching is off or nothing fits ``budget``."""
    if orders < 1:
        return None
    first = make_pairs(np.random.default_rng([seed, 0]) if shuffle else None)
    fit = pool_size(orders if shuffle else 1, supervised_count(first), model.args.hidden, budget)
    if fit < 1:
        return None
    pool = [build_order(model, first, device)]
    for k in range(1, fit):
        pool.append(build_order(model, make_pairs(np.random.default_rng([seed, k])), device))
    return StatePool(pool)


def stage_pool(ctx: "TrainContext", plan: "StagePlan", model: Any, make_pairs: Callable) -> StatePool | None:
    """A frozen-SASRec stage's pool as the settings ask (None for a stage that trains SASRec, under torchrun,
    with ID dropout (the adaptor then trains and the states move), or off)."""
    from ur4rec_cli.console import info

    t = ctx.settings.train
    if plan.index == 0 or plan.sasrec_lr is not None or ctx.dist.enabled:
        return None
    if t.id_dropout and getattr(model, "item_adaptor", None) is not None:
        if t.state_cache_orders:
            info(f"{plan.stage}: no state cache (train.id_dropout trains the item adaptor, so the sequence states move)")
        return None
    pool = build_pool(model, make_pairs, ctx.device, orders=t.state_cache_orders, shuffle=t.shuffle_ties, seed=plan.seed)
    if pool is not None:
        info(f"{plan.stage}: {pool.describe()}")
    return pool
