"""A stage plan: what a stage trains, at which rates, for how many epochs, from which predecessor."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ur4rec_cli.settings import STAGES

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.settings import Settings


@dataclass(frozen=True)
class StagePlan:
    """One stage's schedule. A learning rate of None freezes that part of the model."""

    stage: str
    index: int
    epochs: int
    sasrec_lr: float | None
    moe_lr: float | None
    seed: int
    selects: bool = True  # False under train.learn_validation: a fixed schedule, no validation
    average_from: int | None = None  # first epoch averaged into the stage's model (train.average_last); None: off
    recent: int = 0  # supervise only each user's newest N transitions (retriever_recent: stage 2, finetune_recent: 3-4); 0: all

    @property
    def predecessor(self) -> str | None:
        """The stage whose best checkpoint this one starts from (None for stage 1)."""
        return STAGES[self.index - 1] if self.index > 0 else None


def stage_plan(settings: "Settings", stage: str) -> StagePlan:
    """Epoch cap, learning rates and seed of a stage (``train.epochs`` overrides every cap)."""
    t = settings.train
    caps = {
        "pretrain_sasrec": t.sasrec_epochs,
        "pretrain_retriever": t.retriever_epochs,
        "joint_finetune": t.joint_epochs,
        "end_to_end": t.end_to_end_epochs,
    }
    lrs = {
        "pretrain_sasrec": (t.lr, None),
        "pretrain_retriever": (None, t.lr * t.retriever_lr_scale),
        "joint_finetune": (t.lr * t.joint_sasrec_lr_scale, t.lr * t.joint_lr_scale),
        "end_to_end": (t.lr * t.end_to_end_lr_scale, t.lr * t.end_to_end_lr_scale),
    }
    from ur4rec_cli.training.averaging import averaging_start

    index = STAGES.index(stage)
    sasrec_lr, moe_lr = lrs[stage]
    epochs = t.epochs or caps[stage]
    return StagePlan(
        stage, index, epochs, sasrec_lr, moe_lr, seed=t.seed + 1000 * index, selects=not t.learn_validation,
        average_from=averaging_start(epochs, t.average_last),
        recent=t.finetune_recent if index >= 2 else (t.retriever_recent if index == 1 else 0),
    )


def configure_stage(model, plan: StagePlan, weight_decay: float = 0.0, id_dropout: float = 0.0) -> "torch.optim.Optimizer":
    """Freeze/unfreeze per the plan and build the optimizer's parameter groups."""
    import torch

    # The content adaptor makes the sequence model's item tokens: it trains (and freezes) with
    # SASRec. With ID dropout it is also the content path that must stand in for a missing ID, so it
    # trains with the retriever instead (from stage 2 on, at the retriever's learning rate).
    adaptor = getattr(model, "item_adaptor", None)
    with_sasrec = adaptor is not None and not id_dropout
    sasrec_params = list(model.sasrec.parameters()) + (list(adaptor.parameters()) if with_sasrec else [])
    anchor = getattr(model, "anchor", None)  # the frozen stage-1 SASRec: never trained
    frozen = {id(p) for p in anchor.parameters()} if anchor is not None else set()
    ids = {id(p) for p in sasrec_params} | frozen
    other = [p for p in model.parameters() if id(p) not in ids]
    groups = []
    for params, lr in ((sasrec_params, plan.sasrec_lr), (other, plan.moe_lr)):
        for p in params:
            p.requires_grad_(lr is not None)
        if lr is not None:
            groups.append({"params": params, "lr": lr})
    return torch.optim.AdamW(groups, betas=(0.9, 0.98), weight_decay=weight_decay)


def lr_schedule(warmup: int, total: int, kind: str):
    """LambdaLR factor per step: linear warmup, then cosine decay over the cap (or constant)."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
