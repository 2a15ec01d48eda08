"""One training epoch over the stage's sequences: the only place a gradient step is taken.

Each step's loss and gradient norm are checked to be finite (``stops.check_step``) at the host sync
the step already had; a non-finite one stops the stage at that step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ur4rec_cli.training.context import TrainContext
    from ur4rec_cli.training.plan import StagePlan


@dataclass
class EpochParts:
    """What an epoch needs besides the data: the model, what steps it, and the loss settings."""

    model: Any  # the UR4RecV2 (train/eval modes are set on it)
    engine: Any  # SequenceLossInputs over the stage's scorer, DDP-wrapped under torchrun
    optimizer: "torch.optim.Optimizer"
    scheduler: Any
    neg_gen: "torch.Generator"
    per_step: float  # mean target positions per step: the loss divisor that weighs every position alike
    steps_per_epoch: int
    cache: Any = None  # state_cache.StatePool of a frozen-SASRec stage, or None (states computed per step)
    catalogue: Any = None  # the known items' ids (the softmax runs over them only), or None when every item is known


def train_epoch(ctx: "TrainContext", plan: "StagePlan", parts: EpochParts, pairs: Any, epoch: int, rng: "np.random.Generator", on_step=None) -> tuple[float, float]:
    """Run one epoch; returns its mean loss per target position and mean auxiliary (load-balancing) loss."""
    import torch

    from ur4rec_cli.training import distributed as dd
    from ur4rec_cli.training.chunked_loss import uses_bf16_logits
    from ur4rec_cli.training.stops import check_step, gradient_norm
    from ur4rec_cli.training.trainer import iterate_batches, shard_pairs, softmax_loss

    t, dist = ctx.settings.train, ctx.dist
    cuda = ctx.device.type == "cuda"
    amp, sampled = bool(t.amp) and cuda, t.loss == "sampled"
    bf16 = uses_bf16_logits(t.bf16_logits, ctx.device.type)  # train.bf16_logits, resolved for this device
    parts.model.train()
    if plan.index == 1:
        parts.model.sasrec.eval()  # frozen: no dropout noise in its states
        if parts.model.args.content_stage1 and parts.model.item_adaptor is not None and not t.id_dropout:
            parts.model.item_adaptor.eval()  # trained in stage 1, frozen with SASRec here (a zero adaptor is left as it was)
    if dist.enabled:
        # Same seed and epoch on every rank: the shards partition the epoch's users.
        pairs = shard_pairs(pairs, dd.shard_indices(len(pairs[0]), dist, seed=plan.seed, epoch=epoch))
    cached = parts.cache.for_epoch(epoch) if parts.cache is not None else None
    if cached is not None:
        pairs = cached.pairs  # this epoch's tie order from the stage's pool (state_cache.py)
    total = aux_total = 0.0
    done = 0
    for users, inputs, targets, rows in iterate_batches(pairs, t.batch_size, rng, with_rows=True):
        if t.max_steps is not None and done >= t.max_steps:
            break  # train.max_steps: the epoch is cut short (every rank runs the same count)
        if cuda:
            users, inputs, targets = users.pin_memory(), inputs.pin_memory(), targets.pin_memory()
        users, inputs, targets = (x.to(ctx.device, non_blocking=cuda) for x in (users, inputs, targets))
        # User vectors at every non-pad position (the MoE's load-balancing loss sees them all); the
        # state cache holds the supervised positions only, which are the same unless plan.recent.
        positions = inputs != 0 if cached is None else targets != 0
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            vecs, items, aux = parts.engine(inputs, users, positions, cached.rows(rows) if cached is not None else None)
            flat = targets[positions]
            if plan.recent and cached is None:  # only the newest transitions are supervised (target 0: context only)
                vecs, flat = vecs[flat != 0], flat[flat != 0]
            summed = softmax_loss(vecs, items, flat, sampled=sampled, negatives=t.negatives, generator=parts.neg_gen, reduction="sum",
                                  catalogue=parts.catalogue, bf16=bf16)  # fmt: skip
        # Every target position weighs the same whatever its batch: the summed loss over a constant
        # (mean positions per step). Under torchrun the constant counts the global step, times
        # world size: DDP's gradient averaging then gives the same update.
        loss = summed * (dist.world_size / parts.per_step)
        step_loss = summed.detach().float() / max(1, flat.numel())
        if dist.enabled:
            counts = torch.stack([torch.tensor(float(flat.numel()), device=ctx.device), summed.detach().float()])
            dd.all_reduce_sum(counts, dist)
            step_loss = counts[1] / counts[0]
        objective = loss + t.aux_loss_weight * aux
        parts.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        grad_norm, lrs = gradient_norm(parts.optimizer), [g["lr"] for g in parts.optimizer.param_groups]
        parts.optimizer.step()
        parts.scheduler.step()
        value = step_loss.item()
        check_step(value, grad_norm, plan.stage, epoch, done + 1, lrs)
        total += value
        aux_total += float(aux.detach())
        done += 1
        if on_step is not None:
            on_step(value)
    return total / max(1, done), aux_total / max(1, done)
