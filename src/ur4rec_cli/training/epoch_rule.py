"""How many epochs `train --stage all` runs on a data set its fixed schedule was not tuned on.

The fixed epoch counts (``train.sasrec_epochs`` ... ``end_to_end_epochs``: 80 / 20 / 6 / 4) were
chosen on ML-100K's validation split (docs/model.md). On ML-100K the default job runs them as they
are, each user's validation item trained on (``train.learn_validation``). On any other data set
(``train.epoch_rule = auto``) validation chooses them instead, in two passes:

1. selection: the four stages with each user's validation item held out, each stage early-stopped
   on validation NDCG@10 (its fixed count is raised to a cap, ``CAP_FACTOR`` times it; patience
   ``SELECT_PATIENCE`` epochs, or ``train.patience`` when set) and started from its predecessor's best epoch; the run folder is
   ``<run>-select``, and its final stage is the one with the best validation NDCG@10;
2. refit: the stages up to that final stage, each for the epoch count validation chose (its best
   epoch, at least 1), with the validation items trained on, as the fixed schedule does; this is
   the run's model and index.

An epoch count or ``--learn-validation`` / ``--select-on-validation`` that the user set keeps the
schedule the user asked for, ``train.epoch_rule = fixed`` runs the fixed counts anywhere, and a
``--resume`` of a run begun on the fixed schedule continues on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ur4rec_cli.settings import STAGES
from ur4rec_cli.training.context import tuned_on

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.settings import Settings

EPOCH_FIELDS = {"pretrain_sasrec": "sasrec_epochs", "pretrain_retriever": "retriever_epochs", "joint_finetune": "joint_epochs", "end_to_end": "end_to_end_epochs"}
CAP_FACTOR = 2  # the selection pass may run each stage up to twice its fixed count
SELECT_PATIENCE = 10  # ... and stops a stage after 10 epochs without a better validation NDCG@10 (unless train.patience is set)
SELECT_SUFFIX = "-select"


def chosen_rule(settings: "Settings", dataset: "Dataset") -> str:
    """``fixed`` or ``validation``: what ``train.epoch_rule`` means for this data set and these settings."""
    t = settings.train
    if t.epoch_rule != "auto":
        return t.epoch_rule
    user_set = t.model_fields_set & {"learn_validation", "epochs", *EPOCH_FIELDS.values()}
    if user_set or not t.learn_validation:
        return "fixed"  # the user chose a schedule (or selection without a refit: --select-on-validation)
    return "fixed" if tuned_on(dataset) else "validation"


def selection_settings(settings: "Settings") -> "Settings":
    """The selection pass: validation held out, each stage early-stopped under a raised cap, in ``<run>-select``."""
    t = settings.train
    caps = {field: CAP_FACTOR * getattr(t, field) for field in EPOCH_FIELDS.values()}
    patience = t.patience if "patience" in t.model_fields_set else min(t.patience, SELECT_PATIENCE)
    train = t.model_copy(update={"run": t.run + SELECT_SUFFIX, "learn_validation": False, "start_from": "best", "epochs": None, "patience": patience, **caps})
    return settings.model_copy(update={"train": train})


def chosen_epochs(summaries: list[dict[str, Any]], final_stage: str) -> dict[str, int]:
    """Per stage up to the selection's final stage: its best validation epoch (at least 1)."""
    best = {s["stage"]: int(s.get("best_epoch") or 0) for s in summaries}
    upto = STAGES[: STAGES.index(final_stage) + 1]
    return {stage: max(1, best.get(stage, 0)) for stage in upto}


def refit_settings(settings: "Settings", epochs: dict[str, int]) -> "Settings":
    """The refit: the chosen epoch counts, validation items trained on."""
    t = settings.train
    counts = {EPOCH_FIELDS[stage]: n for stage, n in epochs.items()}
    train = t.model_copy(update={"learn_validation": True, "epochs": None, **counts})
    return settings.model_copy(update={"train": train})


def train(settings: "Settings", *, stage: str = "all", resume: bool = False) -> dict[str, Any]:
    """`train`: the fixed schedule (``training.stages.train``), or on a data set it was not tuned on
    (``chosen_rule``) a selection pass and a refit with the epochs validation chose."""
    from ur4rec_cli.training import stages

    if stage != "all" or _under_torchrun() or (resume and _begun_without_rule(settings)):
        return stages.train(settings, stage=stage, resume=resume)
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.errors import Ur4recError

    try:
        dataset, _ = load_dataset(settings)
    except Ur4recError:  # no data set yet: training says so, in its own order of checks (device first)
        return stages.train(settings, stage=stage, resume=resume)
    if chosen_rule(settings, dataset) == "fixed":
        return stages.train(settings, stage=stage, resume=resume)
    from ur4rec_cli.console import info

    info(f"epoch counts: chosen on validation ({dataset.n_users:,} users x {dataset.n_items:,} items is not the data set the fixed "
         f"schedule was tuned on; train.epoch_rule): a selection pass in run {settings.train.run}{SELECT_SUFFIX}, then the refit")  # fmt: skip
    selection = stages.train(selection_settings(settings), stage="all", resume=resume, export=False)  # only its epochs are wanted
    final = (selection.get("final") or {}).get("stage") or STAGES[0]
    epochs = chosen_epochs(selection["stages"], final)
    info("epoch counts chosen on validation: " + ", ".join(f"{s} {n}" for s, n in epochs.items()))
    result = stages.train(refit_settings(settings, epochs), stage="all" if len(epochs) == len(STAGES) else list(epochs)[-1], resume=resume, upto=True)
    result["epoch_rule"] = {
        "rule": "validation",
        "selection_run": selection["run"],
        "selection_final": final,
        "selection_val_ndcg10": (selection.get("final") or {}).get("val_ndcg10"),
        "epochs": epochs,
        "selection_stages": selection["stages"],
        "selection_wall_s": round(sum(s.get("wall_s") or 0 for s in selection["stages"]), 1),
    }
    return result


def _begun_without_rule(settings: "Settings") -> bool:
    """A --resume of a run whose stages were begun on the fixed schedule (no selection pass beside it): kept so."""
    from ur4rec_cli.runs import run_dir

    return (run_dir(settings) / STAGES[0]).is_dir() and not run_dir(selection_settings(settings)).is_dir()


def _under_torchrun() -> bool:
    from ur4rec_cli.training.distributed import launched_by_torchrun

    return launched_by_torchrun()
