"""Run folders and stage checkpoints, the reading side, shared by training, `evaluate` and `recommend`.

Layout (docs/architecture.md): ``<home>/runs/<dataset>/<run>/<stage>/`` holds ``best.pt``,
``last.pt`` (resume state), ``history.jsonl`` and, once the stage has finished, ``manifest.json``;
``<run>/final.json`` names the stage validation chose. Writing lives in ``training.checkpoints``.
A loaded model gets the scoring-time settings (``model.cold_*``, ``model.knn_weight``), which
never change a training step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ur4rec_cli.errors import ArtifactMissingError, DataError
from ur4rec_cli.settings import STAGES
from ur4rec_cli.store import ArtifactStore, read_manifest

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.settings import Settings

FINAL = "final.json"


@dataclass
class LoadedModel:
    """A trained model ready for scoring (eval mode) and where it came from."""

    model: Any
    stage: str
    path: Path
    info: dict[str, Any] = field(default_factory=dict)


def run_dir(settings: "Settings") -> Path:
    """``<home>/runs/<dataset name>/<run>``."""
    from ur4rec_cli.data.prepare import dataset_name

    return ArtifactStore(settings.home).run_dir(dataset_name(settings.data), settings.train.run)


def stage_dir(settings: "Settings", stage: str) -> Path:
    return run_dir(settings) / stage


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True`` (no arbitrary unpickling)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArtifactMissingError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # torch raises many types for corrupt files
        raise DataError(f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def build_model(model_args: dict[str, Any]):
    """UR4RecV2 from the stored (asdict) ModelArgs."""
    from ur4rec_cli.models.ur4rec import ModelArgs, UR4RecV2

    return UR4RecV2(ModelArgs(**model_args))


def model_from_checkpoint(ckpt: dict[str, Any], stage: str):
    """The scorer a stage trained: SASRec alone for pretrain_sasrec (on content-aware tokens with
    ``model.content_stage1``), else the full UR4RecV2."""
    from ur4rec_cli.models.content_sasrec import stage1_scorer

    model = build_model(ckpt["model_args"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return stage1_scorer(model) if stage == STAGES[0] else model


def set_cold_neighbours(model: Any, settings: "Settings") -> None:
    """Apply the scoring-time ``model.cold_*`` settings (a UR4RecV2's unknown items; SASRec has none)."""
    if hasattr(model, "set_cold_neighbours"):
        m = settings.model
        model.set_cold_neighbours(m.cold_neighbours, m.cold_temperature, m.cold_scale)


# model.knn_weight = auto: the weight of content-KNN's block for a model whose stage 1 read content
# (chosen on Scientific's validation, three seeds, and on a development cold variant: docs/model.md, 43 and 49).
AUTO_KNN_WEIGHT = 8.0


def set_content_knn(model: Any, settings: "Settings", weight: float | None = None) -> None:
    """Apply the scoring-time ``model.knn_weight`` (a UR4RecV2's last block; auto: ``AUTO_KNN_WEIGHT`` with
    ``content_stage1``, else off), or ``weight`` when given (an index's, or 0 where a caller fuses content-KNN itself)."""
    if hasattr(model, "set_content_knn"):
        w = settings.model.knn_weight if weight is None else weight
        model.set_content_knn((AUTO_KNN_WEIGHT if model.args.content_stage1 else 0.0) if w == "auto" else float(w))


def stage_finished(folder: Path) -> bool:
    man = read_manifest(folder, verify=False)
    return man is not None and man.kind == "checkpoint" and (folder / "best.pt").is_file()


def trained_stages(settings: "Settings") -> list[str]:
    """Stages of the configured run that finished training, in pipeline order."""
    root = run_dir(settings)
    return [s for s in STAGES if stage_finished(root / s)]


def read_final(settings: "Settings") -> dict[str, Any] | None:
    """The run's final.json (which stage validation chose), or None."""
    try:
        return json.loads((run_dir(settings) / FINAL).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def learned_validation(ckpt: dict[str, Any]) -> bool:
    """Whether a checkpoint's training had the validation items as targets (its validation figures would be leaked)."""
    return bool(ckpt.get("settings", {}).get("train", {}).get("learn_validation", False))


def load_stage_model(settings: "Settings", stage: str | None = None, device: "torch.device | str" = "cpu", knn_weight: float | None = None) -> LoadedModel:
    """A trained stage's best model in eval mode; ``stage=None`` means the run's final stage. ``knn_weight``
    overrides ``model.knn_weight`` (``set_content_knn``)."""
    root = run_dir(settings)
    if stage is None:
        final = read_final(settings)
        if final is None or final.get("stage") not in STAGES:
            raise ArtifactMissingError(f"no trained model in {root} (no {FINAL}); run `ur4rec train --stage all` first")
        stage = str(final["stage"])
    if stage not in STAGES:
        raise ArtifactMissingError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    path = root / stage / "best.pt"
    if not path.is_file():
        raise ArtifactMissingError(f"no trained model for stage {stage} ({path}); run `ur4rec train --stage {stage}` first")
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, stage).to(device)
    set_cold_neighbours(model, settings)
    set_content_knn(model, settings, knn_weight)  # after training only: training's validation never adds it
    info = {k: v for k, v in ckpt.items() if k not in ("state_dict",)}
    return LoadedModel(model=model, stage=stage, path=path, info=info)
