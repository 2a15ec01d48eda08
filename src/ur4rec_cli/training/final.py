"""The end of a `train` call: which finished stage is final (final.json), and its export as the serving index.

Under ``train.learn_validation`` (the default) the final model is the last finished stage of the
fixed schedule; with ``--select-on-validation`` it is the finished stage with the best validation
NDCG@10 (ties: the earlier stage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ur4rec_cli.runs import FINAL, learned_validation, read_checkpoint, stage_finished
from ur4rec_cli.settings import STAGES
from ur4rec_cli.store import atomic_write_json

if TYPE_CHECKING:
    from ur4rec_cli.training.context import TrainContext


def choose_final(ctx: "TrainContext") -> dict[str, Any] | None:
    """final.json = the finished stage with the best validation NDCG@10 (ties: the earlier stage).

    Under train.learn_validation nothing was validated: the final model is the last finished
    stage of the fixed schedule.
    """
    best = None
    for stage in STAGES:
        folder = ctx.run_dir / stage
        if not stage_finished(folder):
            continue
        ckpt = read_checkpoint(folder / "best.pt")
        if ctx.settings.train.learn_validation:
            best = {"stage": stage, "val_ndcg10": None, "val": {}, "path": str(folder / "best.pt"), "selected_by": "last stage"}
            continue
        if learned_validation(ckpt):
            continue
        score = float(ckpt.get("best_metric", -1.0))
        if best is None or score > best["val_ndcg10"]:
            best = {"stage": stage, "val_ndcg10": score, "val": ckpt.get("val", {}), "path": str(folder / "best.pt"), "selected_by": "validation NDCG@10"}
    if best is not None:
        atomic_write_json(ctx.run_dir / FINAL, best)
    return best


def export_final(ctx: "TrainContext", stage: str) -> str:
    from ur4rec_cli.runs import load_stage_model
    from ur4rec_cli.training.export import export_index

    loaded = load_stage_model(ctx.settings, stage, device=ctx.device)
    folder = ctx.run_dir / "index"
    export_index(
        loaded.model,
        ctx.dataset,
        folder,
        home=ctx.settings.home,
        extra={"stage": stage, "run": ctx.settings.train.run, "modalities": ctx.modalities, "dataset": ctx.digests["dataset"],
               "knn_weight": float(getattr(loaded.model, "content_knn", 0.0))},  # what recommend --history and items add score with
        inputs=dict(ctx.digests),
        device=ctx.device,
        tie_orders=ctx.settings.model.tie_orders,
    )
    return str(folder)
