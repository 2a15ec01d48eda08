"""The four training stages, run one after another.

pretrain_sasrec -> pretrain_retriever (SASRec frozen) -> joint_finetune (SASRec at a lower lr)
-> end_to_end (everything at a small lr). By default (``train.learn_validation``) each stage runs a
fixed number of epochs with the validation items as training targets, nothing is validated, and
the last stage is final. With ``--select-on-validation`` each stage early-stops on validation
NDCG@10, starts from its predecessor's best (or last, ``train.start_from``) checkpoint, and the
stage with the best validation NDCG@10 becomes final.json. The final stage is exported as the
serving index (``final.py``). After each stage's first epoch a whole-job estimate is printed (``estimate.py``).
``train`` holds the run folder's writer lock (``runlock.py``) throughout, and stops early as ``stops.py`` says
(Ctrl-C, SIGTERM, a non-finite loss, a full disk); stage 2 may reuse its frozen SASRec's states (``state_cache.py``,
off by default). When stage 2 starts, the stage-1 SASRec is also copied into the model's frozen anchor
(``model.sasrec_anchor``; models/ur4rec.py; with ``model.content_stage1`` the item table stage 1 read too), which
stages 2-4 add to their score and never train. Stage 1 trains what ``models/content_sasrec.stage1_scorer`` gives. Test data is never read here.
"""

from __future__ import annotations

import math
import os
import random
import resource
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ur4rec_cli import __version__, runs
from ur4rec_cli.errors import ConfigError, StageOrderError
from ur4rec_cli.settings import STAGES
from ur4rec_cli.training.averaging import WeightAverage
from ur4rec_cli.training.checkpoints import predecessor_weights, restore_rng
from ur4rec_cli.training.chunked_loss import describe_loss, uses_bf16_logits
from ur4rec_cli.training.context import TrainContext, model_args, new_model, prepare_context
from ur4rec_cli.training.curves import stage_curve
from ur4rec_cli.training.distributed import DistContext, from_main
from ur4rec_cli.training.epoch import EpochParts, train_epoch
from ur4rec_cli.training.estimate import JobEstimate
from ur4rec_cli.training.final import choose_final, export_final
from ur4rec_cli.training.plan import StagePlan, configure_stage, lr_schedule, stage_plan
from ur4rec_cli.training.state import METRIC, EarlyStopping, StageFiles, check_resume_settings, resume_command
from ur4rec_cli.training.state_cache import stage_pool
from ur4rec_cli.training.stops import after_resume, rates_may_change, stage_stops, train_stops

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings

__all__ = ["STAGE_END_HOOKS", "TrainContext", "choose_final", "export_final", "prepare_context", "run_stage", "stage_plan", "train"]

# Called on every rank as hook(stage, model, dist) once a stage's last epoch is done, before its
# files are finalised: an extension point (the DDP test reads each rank's weights through it).
STAGE_END_HOOKS: list[Callable[[str, Any, DistContext], None]] = []


def train(settings: "Settings", *, stage: str = "all", resume: bool = False, upto: bool = False, export: bool = True) -> dict[str, Any]:
    """Train one stage (``upto``: all up to it) or all four, export the final one (``export``); returns {"run", "stages", "final", ...}."""
    if stage != "all" and stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose from all, {', '.join(STAGES)}")
    stages = list(STAGES) if stage == "all" else (list(STAGES[: STAGES.index(stage) + 1]) if upto else [stage])
    stage = "all" if upto else stage
    from ur4rec_cli.training import distributed as dd

    if dd.launched_by_torchrun():
        from ur4rec_cli.devices import resolve_device

        dist = dd.init_distributed(resolve_device(settings.train.device))
    else:
        dist = DistContext()
    try:
        if not dist.is_main:
            _silence_output()
            with train_stops(settings, stage):
                return _train(settings, stages, stage, resume, dist, export)
        from ur4rec_cli.runlock import command_line, run_lock
        from ur4rec_cli.runs import run_dir

        # One writer per run folder (rank 0 speaks for a torchrun job); a second `train` of the run is refused.
        with run_lock(run_dir(settings), command_line(), f"run {settings.train.run} ({run_dir(settings)})"), train_stops(settings, stage):
            return _train(settings, stages, stage, resume, dist, export)
    finally:
        dd.shutdown(dist)


def _silence_output() -> None:
    """Ranks other than 0 print nothing (warnings included); rank 0 speaks for the job."""
    from ur4rec_cli import console

    console.set_quiet(True)
    console.out.quiet = True
    console.console.file = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def _train(settings: "Settings", stages: list[str], stage: str, resume: bool, dist: DistContext, export: bool = True) -> dict[str, Any]:
    from ur4rec_cli.runs import stage_dir, stage_finished
    from ur4rec_cli.training.distributed import barrier, broadcast_object

    # Fail fast, before any data or feature work, when a lone later stage lacks its predecessor.
    if stage != "all" and stage != STAGES[0]:
        prev = STAGES[STAGES.index(stage) - 1]
        if not from_main(dist, lambda: stage_finished(stage_dir(settings, prev))):
            raise StageOrderError(
                f"stage {stage} needs a finished {prev} checkpoint ({stage_dir(settings, prev) / 'best.pt'}); "
                f"run `ur4rec train --stage {prev}` (or --stage all) first"
            )
    ctx = prepare_context(settings, dist)
    if settings.train.max_steps:
        from ur4rec_cli.console import warn

        ctx.notes.append(f"short epochs: each epoch ends after at most {settings.train.max_steps} steps (train.max_steps), not a full training")
        warn(ctx.notes[-1])
    ctx.estimate = JobEstimate([(s, stage_plan(settings, s).epochs) for s in stages], caps=not settings.train.learn_validation)
    summaries = [run_stage(ctx, s, resume=resume, requested=stage) for s in stages]
    final = index = None
    export_s = 0.0
    if dist.is_main:
        final = choose_final(ctx)
        started = time.perf_counter()
        index = export_final(ctx, final["stage"]) if final and export else None
        export_s = time.perf_counter() - started
    final, index = broadcast_object((final, index), dist)
    barrier(dist)
    return {
        "run": settings.train.run,
        "run_dir": str(ctx.run_dir),
        "device": str(ctx.device),
        "modalities": ctx.modalities,
        "stages": summaries,
        "final": final,
        "index": index,
        "export_s": round(export_s, 2),
        "notes": ctx.notes,
        "loss": describe_loss(settings.train.loss, int(ctx.known()[1:].sum()), settings.train.batch_size * settings.model.max_len, settings.train.negatives,
                             catalogue=ctx.dataset.n_items, bf16=uses_bf16_logits(settings.train.bf16_logits, ctx.device.type)),  # fmt: skip
        "protocol": (
            "leave-one-out; validation items are training targets (train.learn_validation), fixed epoch counts, nothing validated; test is never read in training"
            if settings.train.learn_validation
            else "leave-one-out, validation split, full ranking (history excluded); test is never read in training"
        ),
        "rank": dist.rank,
        "world_size": dist.world_size,
    }


# One stage ----------------------------------------------------------------------------------------
@dataclass
class StageRun:
    """The live objects of one stage: its model, what steps it, its data and RNGs."""

    model: Any
    scorer: Any  # what validation ranks: SASRec alone in stage 1, the whole model after
    parts: EpochParts
    pairs: Any
    rng: np.random.Generator
    average: Any = None  # WeightAverage over the stage's last epochs (train.average_last), or None


def run_stage(ctx: TrainContext, stage: str, *, resume: bool = False, requested: str | None = None) -> dict[str, Any]:
    """Train one stage with early stopping; writes best.pt, last.pt, history.jsonl, manifest.json."""
    from ur4rec_cli.console import info

    plan = stage_plan(ctx.settings, stage)
    files = StageFiles(ctx.run_dir / stage, _checkpoint_base(ctx, stage), write=ctx.dist.is_main)
    hint = resume_command(ctx.settings, requested or stage)
    if resume:
        if from_main(ctx.dist, lambda: runs.stage_finished(files.folder)):
            summary = from_main(ctx.dist, lambda: runs.read_checkpoint(files.best).get("summary", {}))
            info(f"{stage}: already finished, kept ({files.best})")
            return {**summary, "stage": stage, "skipped": True}
        # An interrupted stage continues with the settings it started with, or not at all.
        saved = from_main(ctx.dist, lambda: runs.read_checkpoint(files.last).get("settings") if files.last.is_file() else None)
        if saved is not None:
            check_resume_settings(stage, saved, files.base["settings"], hint, from_main(ctx.dist, lambda: rates_may_change(stage, files.folder)))
    live = _build_stage(ctx, plan)
    state = _restore_or_begin(ctx, plan, files, live, resume)
    with stage_stops(plan, files, state, hint):  # Ctrl-C, SIGTERM, divergence: what was kept, how to resume
        _fit(ctx, plan, files, live, state)
    return _finish_stage(ctx, plan, files, live, state)


def _checkpoint_base(ctx: TrainContext, stage: str) -> dict[str, Any]:
    """What every checkpoint of the stage carries besides weights (the model is rebuilt from it)."""
    return {
        "stage": stage,
        "model_args": model_args(ctx),
        "settings": ctx.settings.slice("model", "train"),
        "digests": dict(ctx.digests),
        "version": __version__,
    }


def _build_stage(ctx: TrainContext, plan: StagePlan) -> StageRun:
    """Seeded model (from the predecessor's best after stage 1), optimizer, schedule, training pairs."""
    import torch

    from ur4rec_cli.models.content_sasrec import stage1_scorer
    from ur4rec_cli.training.trainer import SequenceLossInputs, n_batches, positions_per_step

    t, dist = ctx.settings.train, ctx.dist
    torch.manual_seed(plan.seed)
    random.seed(plan.seed)
    rng = np.random.default_rng(plan.seed)
    model = new_model(ctx)
    if plan.predecessor is not None:
        model.load_state_dict(predecessor_weights(ctx, plan), strict=False)
        if plan.index == 1:
            model.set_anchor()  # stage 2 starts from stage 1: its SASRec becomes the frozen anchor
    model.to(ctx.device)
    optimizer = configure_stage(model, plan, t.weight_decay, t.id_dropout if plan.index >= 1 else 0.0)
    pairs = _stage_pairs(ctx, plan)
    # Under torchrun every rank takes ceil(n / world) users per epoch (DistributedSampler), so
    # train.batch_size is the per-rank batch and every rank runs the same number of steps.
    per_rank = math.ceil(len(pairs[0]) / dist.world_size)
    steps = math.ceil(per_rank / t.batch_size) if dist.enabled else n_batches(pairs, t.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(t.warmup_epochs * steps, plan.epochs * steps, t.schedule))
    scorer = stage1_scorer(model) if plan.index == 0 else model
    neg_gen = torch.Generator().manual_seed(plan.seed)
    engine = _wrap(SequenceLossInputs(scorer), ctx)
    if plan.index >= 1:
        model.id_dropout = float(t.id_dropout)  # stages 2-4: content learns to stand in for a missing ID
    parts = EpochParts(model, engine, optimizer, scheduler, neg_gen, positions_per_step(pairs, steps), steps,
                       stage_pool(ctx, plan, model, lambda rng: _stage_pairs(ctx, plan, tie_rng=rng)), ctx.catalogue())  # fmt: skip
    average = WeightAverage(plan.average_from) if plan.average_from is not None else None
    return StageRun(model, scorer, parts, pairs, rng, average)


def _stage_pairs(ctx: TrainContext, plan: StagePlan, tie_rng: np.random.Generator | None = None):
    """The stage's training pairs (same-second items in file order, or shuffled by ``tie_rng``)."""
    from ur4rec_cli.training.trainer import training_pairs

    t = ctx.settings.train
    return training_pairs(ctx.dataset, ctx.settings.model.max_len, t.learn_validation, t.newest_window, tie_rng=tie_rng, recent=plan.recent)


def _wrap(engine, ctx: TrainContext):
    from ur4rec_cli.training.distributed import wrap_for_ddp

    return wrap_for_ddp(engine, ctx.device, ctx.dist)


def _restore_or_begin(ctx: TrainContext, plan: StagePlan, files: StageFiles, live: StageRun, resume: bool) -> EarlyStopping:
    """Resume from last.pt exactly, or start the stage afresh (its epoch 0 is the predecessor's model)."""
    from ur4rec_cli.console import info

    t, p = ctx.settings.train, live.parts
    last = from_main(ctx.dist, lambda: runs.read_checkpoint(files.last) if files.last.is_file() else None) if resume else None
    if last is not None:
        live.model.load_state_dict(last["state_dict"])
        p.optimizer.load_state_dict(last["optimizer"])
        p.scheduler.load_state_dict(last["scheduler"])
        restore_rng(last["rng"], live.rng)
        p.neg_gen.set_state(last["neg_rng"])
        if live.average is not None and last.get("average"):
            live.average = WeightAverage.from_dict(last["average"])
        state = EarlyStopping.from_dict(last["early_stopping"], t.patience)
        after_resume(plan, files, p, state)  # rates lowered after a divergence; history rows past last.pt (stops.py)
        info(f"{plan.stage}: resuming after epoch {state.epoch}")
        return state
    state = EarlyStopping(t.patience)
    if files.write:
        files.folder.mkdir(parents=True, exist_ok=True)
        files.history.unlink(missing_ok=True)
        # Retraining a stage makes this stage and every later one stale until they rerun.
        for later in STAGES[plan.index :]:
            (ctx.run_dir / later / "manifest.json").unlink(missing_ok=True)
        (ctx.run_dir / runs.FINAL).unlink(missing_ok=True)
    if plan.index > 0 and plan.selects:
        # The predecessor's model is this stage's epoch 0: a stage can never end worse than it.
        val = _validate(ctx, live)
        if state.observe(val, 0):
            files.save_best(live.model, 0, state)
        files.append_history({"epoch": 0, "loss": None, "aux": None, **_val(val), "seconds": 0.0, "lr": 0.0})
    files.save_last(live.model, p.optimizer, p.scheduler, live.rng, p.neg_gen, state, live.average)
    return state


def _stage_model(live: StageRun):
    """Context in which live.model holds the stage's model: the weight average when there is one."""
    from contextlib import nullcontext

    return live.average.applied(live.model) if live.average is not None else nullcontext()


def _validate(ctx: TrainContext, live: StageRun) -> dict[str, float]:
    from ur4rec_cli.training.trainer import validation_metrics

    s = ctx.settings
    return validation_metrics(live.scorer, ctx.dataset, s.model.max_len, ctx.device, s.eval.batch_size, dist=ctx.dist)


def _fit(ctx: TrainContext, plan: StagePlan, files: StageFiles, live: StageRun, state: EarlyStopping) -> None:
    """Epochs until the cap or until patience runs out; last.pt and history after each, best.pt after each new best (fixed schedule: after the final epoch)."""
    from ur4rec_cli.console import info, make_progress

    p = live.parts
    with make_progress() as progress:
        while not state.finished and state.epoch < plan.epochs:
            epoch = state.epoch + 1
            started = time.perf_counter()
            where = f"cap {plan.epochs}, patience {state.patience_left} left" if plan.selects else f"of {plan.epochs}"
            task = progress.add_task(f"{plan.stage} epoch {epoch} ({where}{_best_so_far(state)})", total=min(p.steps_per_epoch, ctx.settings.train.max_steps or p.steps_per_epoch), status="")
            step = lambda loss: progress.update(task, advance=1, status=f"loss {loss:.3f}")  # noqa: E731
            if ctx.settings.train.shuffle_ties and p.cache is None:
                # A fresh order of same-timestamp items every epoch (drawn from the stage's saved RNG: resumable;
                # the same on every rank, whose shards then split it).
                live.pairs = _stage_pairs(ctx, plan, tie_rng=live.rng)
            loss, aux = train_epoch(ctx, plan, p, live.pairs, epoch, live.rng, on_step=step)
            if live.average is not None:
                live.average.update(live.model, epoch)
            # From the averaging window on, the stage's model at this epoch is the running average:
            # that is what is validated and saved as best.pt (training continues from its own weights).
            with _stage_model(live):
                # Under learn_validation the validation items are training targets: nothing to validate on.
                val = _validate(ctx, live) if plan.selects else None
                seconds = time.perf_counter() - started
                improved = state.observe(val, epoch) if val is not None else state.take(epoch)
                if improved and (plan.selects or epoch >= plan.epochs):  # fixed schedule: best.pt is the final epoch's
                    files.save_best(live.model, epoch, state)
            state.end_epoch(epoch, seconds, improved)
            progress.remove_task(task)
            if not files.write:
                continue
            lrs = [g["lr"] for g in p.optimizer.param_groups]
            files.append_history({"epoch": epoch, "loss": loss, "aux": aux, **_val(val), "seconds": round(seconds, 3), "lr": lrs})
            files.save_last(live.model, p.optimizer, p.scheduler, live.rng, p.neg_gen, state, live.average)
            if val is None:
                info(f"{plan.stage} epoch {epoch} of {plan.epochs}: loss {loss:.4f} (validation items trained on, not validated) [{seconds:.1f} s]")
            else:
                info(
                    f"{plan.stage} epoch {epoch} (cap {plan.epochs}, patience {state.patience_left} left): loss {loss:.4f}, val NDCG@10 {val[METRIC]:.4f}"
                    f"{' (new best)' if improved else f' (best {state.best:.4f} at epoch {state.best_epoch})'} [{seconds:.1f} s]"
                )
            if ctx.estimate is not None and (line := ctx.estimate.observe(plan.stage, epoch, seconds)):
                info(line)


def _finish_stage(ctx: TrainContext, plan: StagePlan, files: StageFiles, live: StageRun, state: EarlyStopping) -> dict[str, Any]:
    """Mark the stage finished: hooks, last.pt, curves, the summary in best.pt, the manifest."""
    from ur4rec_cli.console import info
    from ur4rec_cli.training import checkpoints as ck
    from ur4rec_cli.training.distributed import barrier

    stopped_early = state.finished and state.bad >= state.patience
    state.finished = True
    for hook in STAGE_END_HOOKS:
        hook(plan.stage, live.model, ctx.dist)
    p = live.parts
    files.save_last(live.model, p.optimizer, p.scheduler, live.rng, p.neg_gen, state, live.average)
    summary = {
        "stage": plan.stage,
        "epochs": state.epoch,
        "best_epoch": state.best_epoch,
        "best_val": state.best_metrics,
        "wall_s": round(state.wall, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_gpu_mb": _peak_gpu_mb(ctx.device),
        "skipped": False,
        "path": str(files.best),
        "curve": "",
        "stopped": "early" if stopped_early else "cap",
        "state_cache": p.cache.describe() if p.cache is not None else None,
        "steps_per_epoch": p.steps_per_epoch,
        "steps_run_per_epoch": min(p.steps_per_epoch, ctx.settings.train.max_steps or p.steps_per_epoch),
    }
    if files.write:
        summary["curve"] = stage_curve(files.history, files.folder / "curve.png", f"{ctx.settings.train.run} · {plan.stage}")
        best = runs.read_checkpoint(files.best)
        best["summary"] = summary
        ck.save_checkpoint(files.best, best)
        ck.write_stage_manifest(files.folder, inputs=dict(ctx.digests), settings=ctx.settings.slice("model", "train"), extra={"stage": plan.stage, "summary": summary})
        if not plan.selects:
            info(f"{plan.stage} done after its {state.epoch} epochs (fixed schedule; validation items trained on)")
        else:
            why = f"stopped early: no better validation NDCG@10 for {state.patience} epochs" if stopped_early else f"reached its cap of {plan.epochs} epochs"
            info(f"{plan.stage} done after {state.epoch} epochs ({why}); best epoch {state.best_epoch}, val NDCG@10 {state.best:.4f}")
    barrier(ctx.dist)
    return summary


def _best_so_far(state: EarlyStopping) -> str:
    """", best val NDCG@10 0.0418 @3" once an epoch has been validated (the bar's running score)."""
    return f", best val NDCG@10 {state.best:.4f} @{state.best_epoch}" if state.best >= 0 else ""


def _val(val: dict[str, float] | None) -> dict[str, float]:
    return {} if val is None else {"val_ndcg10": val["NDCG@10"], "val_hr10": val["HR@10"]}


def _peak_gpu_mb(device) -> float | None:
    """Peak CUDA memory allocated by this process (MiB), or None off CUDA."""
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
