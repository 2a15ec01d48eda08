"""The four training stages, run one after another with early stopping on validation NDCG@10.

pretrain_sasrec -> pretrain_retriever (SASRec frozen) -> joint_finetune (SASRec at a lower lr)
-> end_to_end (everything at a small lr). Each stage starts from its predecessor's best
checkpoint; the stage with the best validation NDCG@10 becomes final.json and is exported.
Test data is never read here.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli import __version__
from ur4rec_cli.errors import ConfigError, StageOrderError
from ur4rec_cli.settings import STAGES
from ur4rec_cli.store import atomic_write_json, atomic_write_text
from ur4rec_cli.training.distributed import DistContext

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.settings import Settings
    from ur4rec_cli.store import Manifest

METRIC = "NDCG@10"


@dataclass
class TrainContext:
    """What every stage of one `train` call shares."""

    settings: "Settings"
    dataset: "Dataset"
    dataset_manifest: "Manifest"
    device: "torch.device"
    modalities: list[str]
    features: dict[str, np.ndarray] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    run_dir: Path = Path(".")
    dist: DistContext = field(default_factory=DistContext)


def train(settings: "Settings", *, stage: str = "all", resume: bool = False) -> dict[str, Any]:
    """Train one stage or all four; returns {"run", "stages": [summary...], "final", "notes", ...}."""
    if stage != "all" and stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose from all, {', '.join(STAGES)}")
    stages = list(STAGES) if stage == "all" else [stage]
    from ur4rec_cli.training import distributed as dd

    if dd.launched_by_torchrun():
        from ur4rec_cli.devices import resolve_device

        dist = dd.init_distributed(resolve_device(settings.train.device))
    else:
        dist = DistContext()
    try:
        if not dist.is_main:
            _silence_output()
        return _train(settings, stages, stage, resume, dist)
    finally:
        dd.shutdown(dist)


def _silence_output() -> None:
    """Ranks other than 0 print nothing (warnings included); rank 0 speaks for the job."""
    from ur4rec_cli import console

    console.set_quiet(True)
    console.out.quiet = True
    console.console.file = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def _from_main(dist: DistContext, fn):
    """fn() evaluated on rank 0 only and broadcast (files need not be shared between nodes); its error is raised everywhere."""
    from ur4rec_cli.errors import Ur4recError
    from ur4rec_cli.training.distributed import broadcast_object

    if not dist.enabled:
        return fn()
    result = error = None
    if dist.is_main:
        try:
            result = fn()
        except Ur4recError as exc:
            error = exc
    result, error = broadcast_object((result, error), dist)
    if error is not None:
        raise error
    return result


def _train(settings: "Settings", stages: list[str], stage: str, resume: bool, dist: DistContext) -> dict[str, Any]:
    from ur4rec_cli.training.checkpoints import stage_dir, stage_finished
    from ur4rec_cli.training.distributed import barrier, broadcast_object

    # Fail fast, before any data or feature work, when a lone later stage lacks its predecessor.
    if stage != "all" and stage != STAGES[0]:
        prev = STAGES[STAGES.index(stage) - 1]
        if not _from_main(dist, lambda: stage_finished(stage_dir(settings, prev))):
            raise StageOrderError(
                f"stage {stage} needs a finished {prev} checkpoint ({stage_dir(settings, prev) / 'best.pt'}); "
                f"run `ur4rec train --stage {prev}` (or --stage all) first"
            )
    ctx = prepare_context(settings, dist)
    summaries = [run_stage(ctx, s, resume=resume, requested=stage) for s in stages]
    final = index = None
    if dist.is_main:
        final = choose_final(ctx)
        index = export_final(ctx, final["stage"]) if final else None
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
        "notes": ctx.notes,
        "protocol": "leave-one-out, validation split, full ranking (history excluded); test is never read in training",
        "rank": dist.rank,
        "world_size": dist.world_size,
    }


# Inputs -----------------------------------------------------------------------------------------
def prepare_context(settings: "Settings", dist: DistContext | None = None) -> TrainContext:
    """Dataset and features, prepared with the configured defaults when missing (rank 0 first under torchrun)."""
    import torch

    from ur4rec_cli.console import info
    from ur4rec_cli.devices import resolve_device
    from ur4rec_cli.training.distributed import barrier, local_device

    dist = dist or DistContext()
    device = local_device(resolve_device(settings.train.device), dist)
    if settings.train.num_threads:
        torch.set_num_threads(settings.train.num_threads)
    if not dist.is_main:
        barrier(dist)  # rank 0 prepares (downloads, encodes) first; the others then load its artifacts
    try:
        ctx = _prepare(settings, device, dist)
    finally:
        if dist.is_main:
            barrier(dist)
    info(f"training on {device}" + (f" x {dist.world_size} ranks" if dist.enabled else "") + f"; MoE modalities: {', '.join(ctx.modalities) or 'none'}")
    return ctx


def _prepare(settings: "Settings", device: "torch.device", dist: DistContext) -> TrainContext:
    from ur4rec_cli.console import warn
    from ur4rec_cli.data.prepare import ensure_dataset
    from ur4rec_cli.training.checkpoints import run_dir

    dataset, dman = ensure_dataset(settings)
    modalities = list(settings.model.modalities)
    ctx = TrainContext(settings, dataset, dman, device, modalities, digests={"dataset": dman.digest}, run_dir=run_dir(settings), dist=dist)
    if "user_text" in modalities or "item_text" in modalities:
        from ur4rec_cli.features.llm import ensure_text_embeddings

        item_text, user_text, tman = ensure_text_embeddings(settings, dataset, dman)
        ctx.features["item_text"], ctx.features["user_text"] = item_text, user_text
        ctx.digests["text_emb"] = tman.digest
    if "image" in modalities:
        image, reason = _image_features(settings, dman)
        if image is None:
            modalities.remove("image")
            note = f"image modality off: {reason}"
            ctx.notes.append(note)
            warn(note)
        else:
            ctx.features["image"], ctx.digests["clip"] = image
    return ctx


def _image_features(settings: "Settings", dman: "Manifest") -> tuple[Any, str]:
    from ur4rec_cli.features import clip

    loaded = clip.load_clip_features(settings, dman, allow_random=settings.train.allow_random_clip)
    if loaded is None:
        ok, reason = clip.weights_available(settings)
        if not ok:
            return None, f"no CLIP weights ({reason}); run `ur4rec clip` once weights are available"
        clip.extract_clip_features(settings)
        loaded = clip.load_clip_features(settings, dman, allow_random=settings.train.allow_random_clip)
        if loaded is None:
            return None, "CLIP features were extracted but are not usable (random weights?)"
    image, man = loaded
    return (image, man.digest), ""


def model_args(ctx: TrainContext) -> dict[str, Any]:
    from dataclasses import asdict

    from ur4rec_cli.models.ur4rec import ModelArgs

    m = ctx.settings.model
    args = ModelArgs(
        n_items=ctx.dataset.n_items,
        n_users=ctx.dataset.n_users,
        max_len=m.max_len,
        hidden=m.hidden,
        layers=m.layers,
        heads=m.heads,
        dropout=m.dropout,
        init_std=m.init_std,
        expert_dim=m.expert_dim,
        sub_experts=m.sub_experts,
        modalities=list(ctx.modalities),
    )
    return asdict(args)


def new_model(ctx: TrainContext):
    """A freshly initialised UR4RecV2 with the context's features in its buffers."""
    import torch

    from ur4rec_cli.training.checkpoints import build_model

    model = build_model(model_args(ctx))
    model.set_features(**{k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in ctx.features.items()})
    return model


# One stage ----------------------------------------------------------------------------------------
def stage_plan(settings: "Settings", stage: str) -> dict[str, Any]:
    """Epoch cap and learning rates of a stage (``train.epochs`` overrides every cap)."""
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
    sasrec_lr, moe_lr = lrs[stage]
    return {"epochs": t.epochs or caps[stage], "sasrec_lr": sasrec_lr, "moe_lr": moe_lr}


def configure_stage(model, stage: str, plan: dict[str, Any], weight_decay: float = 0.0):
    """Freeze/unfreeze per stage and build the optimizer's parameter groups."""
    import torch

    sasrec_params = list(model.sasrec.parameters())
    ids = {id(p) for p in sasrec_params}
    other = [p for p in model.parameters() if id(p) not in ids]
    groups = []
    for params, lr in ((sasrec_params, plan["sasrec_lr"]), (other, plan["moe_lr"])):
        for p in params:
            p.requires_grad_(lr is not None)
        if lr is not None:
            groups.append({"params": params, "lr": lr})
    return torch.optim.AdamW(groups, betas=(0.9, 0.98), weight_decay=weight_decay)


def run_stage(ctx: TrainContext, stage: str, *, resume: bool = False, requested: str | None = None) -> dict[str, Any]:
    """Train one stage with early stopping; writes best.pt, last.pt, history.jsonl, manifest.json."""
    import torch

    from ur4rec_cli.console import info, make_progress, warn
    from ur4rec_cli.training import checkpoints as ck
    from ur4rec_cli.training import distributed as dd
    from ur4rec_cli.training.trainer import (
        SequenceLossInputs,
        iterate_batches,
        n_batches,
        positions_per_step,
        shard_pairs,
        softmax_loss,
        training_pairs,
        validation_metrics,
    )

    s, t = ctx.settings, ctx.settings.train
    dist, main = ctx.dist, ctx.dist.is_main
    folder = ctx.run_dir / stage
    plan = stage_plan(s, stage)
    last_path, best_path, hist_path = folder / "last.pt", folder / "best.pt", folder / "history.jsonl"
    if resume and _from_main(dist, lambda: ck.stage_finished(folder)):
        summary = _from_main(dist, lambda: ck.read_checkpoint(best_path).get("summary", {}))
        info(f"{stage}: already finished, kept ({best_path})")
        return {**summary, "stage": stage, "skipped": True}

    index = STAGES.index(stage)
    seed = t.seed + 1000 * index
    torch.manual_seed(seed)
    random.seed(seed)
    rng = np.random.default_rng(seed)
    model = new_model(ctx)
    if index > 0:
        prev = ctx.run_dir / STAGES[index - 1] / "best.pt"
        if not _from_main(dist, lambda: ck.stage_finished(prev.parent)):
            raise StageOrderError(
                f"stage {stage} needs a finished {STAGES[index - 1]} checkpoint ({prev}); run `ur4rec train --stage {STAGES[index - 1]}` first"
            )
        prev_ckpt = _from_main(dist, lambda: ck.read_checkpoint(prev))
        if prev_ckpt.get("digests", {}).get("dataset") != ctx.digests["dataset"]:
            raise StageOrderError(f"{prev} was trained on another dataset; rerun `ur4rec train --stage all`")
        state = {k: v for k, v in prev_ckpt["state_dict"].items() if k not in _FEATURE_BUFFERS}
        model.load_state_dict(state, strict=False)
    model.to(ctx.device)
    optimizer = configure_stage(model, stage, plan, t.weight_decay)
    pairs = training_pairs(ctx.dataset, s.model.max_len)
    # Under torchrun every rank takes ceil(n / world) users per epoch (DistributedSampler), so
    # train.batch_size is the per-rank batch and every rank runs the same number of steps.
    per_rank = math.ceil(len(pairs[0]) / dist.world_size)
    steps_per_epoch = math.ceil(per_rank / t.batch_size) if dist.enabled else n_batches(pairs, t.batch_size)
    per_step = positions_per_step(pairs, steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(t.warmup_epochs * steps_per_epoch, plan["epochs"] * steps_per_epoch, t.schedule))
    scorer = model.sasrec if index == 0 else model
    neg_gen = torch.Generator().manual_seed(seed)

    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "bad": 0, "finished": False, "wall": 0.0, "best_metrics": {}}
    base = {
        "stage": stage,
        "model_args": model_args(ctx),
        "settings": s.slice("model", "train"),
        "digests": dict(ctx.digests),
        "version": __version__,
    }
    last = _from_main(dist, lambda: ck.read_checkpoint(last_path) if last_path.is_file() else None) if resume else None
    if last is not None:
        model.load_state_dict(last["state_dict"])
        optimizer.load_state_dict(last["optimizer"])
        scheduler.load_state_dict(last["scheduler"])
        ck.restore_rng(last["rng"], rng)
        neg_gen.set_state(last["neg_rng"])
        state = dict(last["early_stopping"])
        info(f"{stage}: resuming after epoch {state['epoch']}")
    else:
        if main:
            folder.mkdir(parents=True, exist_ok=True)
            hist_path.unlink(missing_ok=True)
            # Retraining a stage makes this stage and every later one stale until they rerun.
            for later in STAGES[index:]:
                (ctx.run_dir / later / "manifest.json").unlink(missing_ok=True)
            (ctx.run_dir / ck.FINAL).unlink(missing_ok=True)
        if index > 0:
            # The predecessor's model is this stage's epoch 0: a stage can never end worse than it.
            val = validation_metrics(scorer, ctx.dataset, s.model.max_len, ctx.device, s.eval.batch_size, dist=dist)
            _improve(state, val, 0, model, best_path, base, save=main)
            if main:
                _append_history(hist_path, {"epoch": 0, "loss": None, "aux": None, **_val(val), "seconds": 0.0, "lr": 0.0})
        if main:
            _save_last(last_path, base, model, optimizer, scheduler, rng, neg_gen, state)

    engine = SequenceLossInputs(scorer)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # Frozen parameters (requires_grad False) are left out by DDP; some MoE parts may see no
        # gradient in a step, hence find_unused_parameters. Feature buffers are identical on every
        # rank, so they are not re-broadcast each step.
        import inspect

        # torch >= 2.14 renamed broadcast_buffers (per-forward sync) to forward_sync_buffers.
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers"
        engine = DistributedDataParallel(
            engine,
            device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=True,
            **{no_sync: False},
        )
    cuda = ctx.device.type == "cuda"
    amp = bool(t.amp) and cuda

    sampled = t.loss == "sampled"
    try:
        with make_progress() as progress:
            while not state["finished"] and state["epoch"] < plan["epochs"]:
                epoch = state["epoch"] + 1
                started = time.perf_counter()
                task = progress.add_task(f"{stage} {epoch}/{plan['epochs']}", total=steps_per_epoch, status="")
                model.train()
                if index == 1:
                    model.sasrec.eval()  # frozen: no dropout noise in its states
                total = aux_total = 0.0
                epoch_pairs = pairs
                if dist.enabled:
                    # Same seed and epoch on every rank: the shards partition the epoch's users.
                    epoch_pairs = shard_pairs(pairs, dd.shard_indices(len(pairs[0]), dist, seed=seed, epoch=epoch))
                for users, inputs, targets in iterate_batches(epoch_pairs, t.batch_size, rng):
                    if cuda:
                        users, inputs, targets = users.pin_memory(), inputs.pin_memory(), targets.pin_memory()
                    users, inputs, targets = (x.to(ctx.device, non_blocking=cuda) for x in (users, inputs, targets))
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                        vecs, items, aux = engine(inputs, users)
                        flat = targets[inputs != 0]
                        summed = softmax_loss(vecs, items, flat, sampled=sampled, negatives=t.negatives, generator=neg_gen, reduction="sum")
                    # Every target position weighs the same whatever its batch: the summed loss over a
                    # constant (mean positions per step). Under torchrun the constant counts the global
                    # step, times world size: DDP's gradient averaging then gives the same update.
                    loss = summed * (dist.world_size / per_step)
                    step_loss = summed.detach().float() / max(1, flat.numel())
                    if dist.enabled:
                        counts = torch.stack([torch.tensor(float(flat.numel()), device=ctx.device), summed.detach().float()])
                        dd.all_reduce_sum(counts, dist)
                        step_loss = counts[1] / counts[0]
                    objective = loss + t.aux_loss_weight * aux
                    optimizer.zero_grad(set_to_none=True)
                    objective.backward()
                    optimizer.step()
                    scheduler.step()
                    total += step_loss.item()
                    aux_total += float(aux.detach())
                    progress.update(task, advance=1, status=f"loss {step_loss.item():.3f}")
                val = validation_metrics(scorer, ctx.dataset, s.model.max_len, ctx.device, s.eval.batch_size, dist=dist)
                seconds = time.perf_counter() - started
                state["epoch"], state["wall"] = epoch, state["wall"] + seconds
                improved = _improve(state, val, epoch, model, best_path, base, save=main)
                state["bad"] = 0 if improved else state["bad"] + 1
                if state["bad"] >= t.patience:
                    state["finished"] = True
                progress.update(task, status=f"loss {total / steps_per_epoch:.3f}  val NDCG@10 {val[METRIC]:.4f}{' *' if improved else ''}")
                progress.remove_task(task)
                if not main:
                    continue
                _append_history(
                    hist_path,
                    {
                        "epoch": epoch,
                        "loss": total / steps_per_epoch,
                        "aux": aux_total / steps_per_epoch,
                        **_val(val),
                        "seconds": round(seconds, 3),
                        "lr": [g["lr"] for g in optimizer.param_groups],
                    },
                )
                _save_last(last_path, base, model, optimizer, scheduler, rng, neg_gen, state)
    except KeyboardInterrupt:
        warn(
            f"interrupted in {stage} after epoch {state['epoch']}; {last_path} holds the state: "
            f"resume with `ur4rec train --stage {requested or stage} --run {t.run} --resume`"
        )
        raise
    state["finished"] = True
    _dump_for_test(model, stage, dist)
    if main:
        _save_last(last_path, base, model, optimizer, scheduler, rng, neg_gen, state)
    summary = {
        "stage": stage,
        "epochs": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val": state["best_metrics"],
        "wall_s": round(state["wall"], 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "skipped": False,
        "path": str(best_path),
        "curve": "",
    }
    if main:
        summary["curve"] = _write_curves(hist_path, folder / "curve.png", f"{t.run} · {stage}")
        best = ck.read_checkpoint(best_path)
        best["summary"] = summary
        ck.save_checkpoint(best_path, best)
        ck.write_stage_manifest(folder, inputs=dict(ctx.digests), settings=s.slice("model", "train"), extra={"stage": stage, "summary": summary})
    dd.barrier(dist)
    return summary


def _write_curves(hist_path: Path, png: Path, title: str) -> str:
    """curve.png (loss and val NDCG@10 per epoch) when matplotlib is installed; the NDCG@10 sparkline."""
    from ur4rec_cli.training.curves import read_history, sparkline, write_curve

    rows = read_history(hist_path)
    write_curve(rows, png, title)
    return sparkline([r.get("val_ndcg10") for r in rows])


def _dump_for_test(model, stage: str, dist: DistContext) -> None:
    """Each rank's final weights for the DDP test, only when DDP_TEST_DUMP_DIR is set (not a setting)."""
    folder = os.environ.get("DDP_TEST_DUMP_DIR")
    if not folder:
        return
    from ur4rec_cli.training import checkpoints as ck

    ck.save_checkpoint(Path(folder) / f"{stage}-rank{dist.rank}.pt", {"state_dict": model.state_dict()})


_FEATURE_BUFFERS = ("item_text", "user_text", "image", "present")


def _schedule(warmup: int, total: int, kind: str):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _val(val: dict[str, float]) -> dict[str, float]:
    return {"val_ndcg10": val["NDCG@10"], "val_hr10": val["HR@10"]}


def _improve(state: dict[str, Any], val: dict[str, float], epoch: int, model, best_path: Path, base: dict[str, Any], save: bool = True) -> bool:
    from ur4rec_cli.training import checkpoints as ck

    if val[METRIC] <= state["best"]:
        return False
    state.update(best=val[METRIC], best_epoch=epoch, best_metrics={"NDCG@10": val["NDCG@10"], "HR@10": val["HR@10"]})
    if save:
        ck.save_checkpoint(best_path, {**base, "state_dict": model.state_dict(), "epoch": epoch, "best_metric": val[METRIC], "val": state["best_metrics"]})
    return True


def _save_last(path: Path, base: dict[str, Any], model, optimizer, scheduler, rng, neg_gen, state: dict[str, Any]) -> None:
    from ur4rec_cli.training import checkpoints as ck

    ck.save_checkpoint(
        path,
        {
            **base,
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": ck.rng_state(rng),
            "neg_rng": neg_gen.get_state(),
            "early_stopping": dict(state),
            "epoch": state["epoch"],
            "best_metric": state["best"],
        },
    )


def _append_history(path: Path, row: dict[str, Any]) -> None:
    old = path.read_text("utf-8") if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(row) + "\n")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# Final choice and export ----------------------------------------------------------------------------
def choose_final(ctx: TrainContext) -> dict[str, Any] | None:
    """final.json = the finished stage with the best validation NDCG@10 (ties: the earlier stage)."""
    from ur4rec_cli.training import checkpoints as ck

    best = None
    for stage in STAGES:
        folder = ctx.run_dir / stage
        if not ck.stage_finished(folder):
            continue
        ckpt = ck.read_checkpoint(folder / "best.pt")
        score = float(ckpt.get("best_metric", -1.0))
        if best is None or score > best["val_ndcg10"]:
            best = {"stage": stage, "val_ndcg10": score, "val": ckpt.get("val", {}), "path": str(folder / "best.pt")}
    if best is not None:
        atomic_write_json(ctx.run_dir / ck.FINAL, best)
    return best


def export_final(ctx: TrainContext, stage: str) -> str:
    from ur4rec_cli.training.checkpoints import load_stage_model
    from ur4rec_cli.training.export import export_index

    loaded = load_stage_model(ctx.settings, stage, device=ctx.device)
    folder = ctx.run_dir / "index"
    export_index(
        loaded.model,
        ctx.dataset,
        folder,
        home=ctx.settings.home,
        extra={"stage": stage, "run": ctx.settings.train.run, "modalities": ctx.modalities, "dataset": ctx.digests["dataset"]},
        inputs=dict(ctx.digests),
        device=ctx.device,
    )
    return str(folder)
