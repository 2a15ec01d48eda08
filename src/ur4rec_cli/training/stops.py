"""How a training call stops before its end, and what it tells the user.

- Interrupted (Ctrl-C) or stopped (SIGTERM, ``termination.py``): the current step is abandoned; the
  stage's ``last.pt`` holds the last finished epoch, and the exact resume command is printed.
- Diverged: a non-finite loss or gradient norm stops the stage at that step (``check_step``, read at
  the step's existing host sync). Nothing of the step is saved: ``last.pt`` keeps the last finite
  epoch, no index is exported, and ``diverged.json`` lets ``--resume`` continue from there with
  lowered learning rates (``resume_rates``), the one change a resume otherwise refuses.
- Disk full: the DiskFullError (``diskspace.py``) ends with the resume command instead of "rerun".
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ur4rec_cli.errors import DiskFullError, DivergedError

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.settings import Settings
    from ur4rec_cli.training.plan import StagePlan
    from ur4rec_cli.training.state import EarlyStopping, StageFiles

DIVERGED = "diverged.json"
# The learning-rate settings of each stage: the ones to lower after a divergence, and the only
# settings a resume of a diverged stage may change.
RATE_SETTINGS = {
    "pretrain_sasrec": ("train.lr",),
    "pretrain_retriever": ("train.lr", "train.retriever_lr_scale"),
    "joint_finetune": ("train.lr", "train.joint_sasrec_lr_scale", "train.joint_lr_scale"),
    "end_to_end": ("train.lr", "train.end_to_end_lr_scale"),
}


class StepDiverged(DivergedError):
    """A step's loss or gradient norm is not finite (worded by ``stage_stops``, which knows the files)."""

    def __init__(self, stage: str, epoch: int, step: int, what: str, value: float, lrs: list[float]) -> None:
        super().__init__(f"{stage} diverged at epoch {epoch}, step {step}: the {what} is {value}")
        self.stage, self.epoch, self.step, self.what, self.value, self.lrs = stage, epoch, step, what, value, lrs


def gradient_norm(optimizer: "torch.optim.Optimizer") -> "torch.Tensor | None":
    """The total 2-norm of the gradients the optimizer is about to apply, left on the device (no sync).

    It only reads the gradients: the step, and so the training result, is the same with it or without.
    """
    import torch

    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else None


def check_step(loss: float, grad_norm: "torch.Tensor | None", stage: str, epoch: int, step: int, lrs: list[float]) -> None:
    """Raise StepDiverged when the step's loss (already on the host) or its gradient norm is not finite."""
    if not math.isfinite(loss):
        raise StepDiverged(stage, epoch, step, "training loss", loss, lrs)
    if grad_norm is not None and not math.isfinite(norm := grad_norm.item()):  # after the loss's sync: nothing left to wait for
        raise StepDiverged(stage, epoch, step, "gradient norm", norm, lrs)


@contextmanager
def stage_stops(plan: "StagePlan", files: "StageFiles", state: "EarlyStopping", hint: str) -> Iterator[None]:
    """Around a stage's epochs: the interrupt and divergence messages; a finished fit clears diverged.json."""
    from ur4rec_cli.console import warn
    from ur4rec_cli.termination import Terminated

    try:
        yield
    except KeyboardInterrupt as exc:
        how = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        warn(f"{how} in {plan.stage} after epoch {_kept(files, state)}; {files.last} holds the state: resume with `{hint}`")
        raise
    except StepDiverged as exc:
        if files.write:
            facts = {"epoch": exc.epoch, "step": exc.step, "what": exc.what, "value": str(exc.value), "lrs": exc.lrs, "kept_epoch": _kept(files, state)}
            _write_json(files.folder / DIVERGED, facts)
        settings = " or ".join(f"{s} ({_env(s)})" for s in RATE_SETTINGS[plan.stage])
        rates = ", ".join(f"{lr:.3g}" for lr in exc.lrs)
        raise DivergedError(
            f"{exc} at learning rate {rates}: lower {settings} and resume with `{hint}`, which continues from "
            f"epoch {_kept(files, state)} in {files.last} (the last finite checkpoint); no index was written"
        ) from None
    if files.write:
        (files.folder / DIVERGED).unlink(missing_ok=True)


@contextmanager
def train_stops(settings: "Settings", stage: str) -> Iterator[None]:
    """Around a whole `train` call: a full disk names the resume command (finished epochs are kept)."""
    from ur4rec_cli.training.state import resume_command

    try:
        yield
    except DiskFullError as exc:
        raise exc.then(f"resume with `{resume_command(settings, stage)}`") from None


def rates_may_change(stage: str, folder: Path) -> frozenset[str]:
    """The settings a resume may change: a diverged stage's learning rates, else none."""
    return frozenset(RATE_SETTINGS[stage]) if (folder / DIVERGED).is_file() else frozenset()


def after_resume(plan: "StagePlan", files: "StageFiles", parts: Any, state: "EarlyStopping") -> None:
    """A resumed stage: its rates as now set (``resume_rates``), and history.jsonl without the rows of
    epochs that last.pt does not hold (written before a stop that came ahead of last.pt's save)."""
    resume_rates(parts.optimizer, parts.scheduler, plan)
    if not files.write or not files.history.is_file():
        return
    rows = [line for line in files.history.read_text("utf-8").splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line).get("epoch", 0) <= state.epoch]
    if len(kept) != len(rows):
        from ur4rec_cli.store import atomic_write_text

        atomic_write_text(files.history, "".join(f"{line}\n" for line in kept))


def resume_rates(optimizer: "torch.optim.Optimizer", scheduler: Any, plan: "StagePlan") -> None:
    """After a resume restored optimizer and schedule, apply the plan's rates if they were lowered since.

    Unchanged rates touch nothing, so an ordinary resume stays bit-identical to an uninterrupted run.
    """
    base = [lr for lr in (plan.sasrec_lr, plan.moe_lr) if lr is not None]
    if [float(b) for b in scheduler.base_lrs] == base:
        return
    scheduler.base_lrs = list(base)
    for group, lr, factor in zip(optimizer.param_groups, base, scheduler.lr_lambdas):
        group["initial_lr"], group["lr"] = lr, lr * factor(scheduler.last_epoch)


def _kept(files: "StageFiles", state: "EarlyStopping") -> int:
    """The epoch last.pt holds: a stop can land after an epoch ended and before its last.pt was written."""
    return files.saved_epoch if files.saved_epoch is not None else state.epoch


def _env(setting: str) -> str:
    return "UR4REC_" + setting.upper().replace(".", "__")


def _write_json(path: Path, obj: Any) -> None:
    from ur4rec_cli.store import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
