"""A stage's state on disk and in memory: early stopping, best.pt / last.pt / history.jsonl, resume checks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ur4rec_cli.errors import ConfigError
from ur4rec_cli.store import atomic_write_text

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings

METRIC = "NDCG@10"
# Settings that may change between an interrupted run and its resume: where it runs, not what it
# computes (model.tie_orders, model.cold_* and model.knn_weight only shape scoring, never a training step).
RESUMABLE_CHANGES = {"train.device", "train.num_threads", "train.run", "model.tie_orders", "model.cold_neighbours", "model.cold_temperature", "model.cold_scale",
                     "model.knn_weight"}


@dataclass
class EarlyStopping:
    """Epoch count, best validation NDCG@10 and patience: saved in last.pt and restored as a whole."""

    patience: int
    epoch: int = 0
    best: float = -1.0
    best_epoch: int = 0
    bad: int = 0
    finished: bool = False
    wall: float = 0.0
    best_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        state = asdict(self)
        state.pop("patience")
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any], patience: int) -> "EarlyStopping":
        return cls(patience=patience, **{k: v for k, v in state.items() if k != "patience"})

    @property
    def patience_left(self) -> int:
        return max(0, self.patience - self.bad)

    def observe(self, val: dict[str, float], epoch: int) -> bool:
        """Record a validation result; True when it beats the best so far."""
        if val[METRIC] <= self.best:
            return False
        self.best, self.best_epoch = val[METRIC], epoch
        self.best_metrics = {"NDCG@10": val["NDCG@10"], "HR@10": val["HR@10"]}
        return True

    def take(self, epoch: int) -> bool:
        """A fixed schedule (no validation): every epoch is the newest best, and patience never runs out."""
        self.best_epoch = epoch
        return True

    def end_epoch(self, epoch: int, seconds: float, improved: bool) -> None:
        self.epoch, self.wall = epoch, self.wall + seconds
        self.bad = 0 if improved else self.bad + 1
        if self.bad >= self.patience:
            self.finished = True


class StageFiles:
    """best.pt, last.pt and history.jsonl of one stage; ``write=False`` (ranks > 0) writes nothing."""

    def __init__(self, folder: Path, base: dict[str, Any], write: bool = True) -> None:
        self.folder, self.base, self.write = Path(folder), base, write
        self.best, self.last, self.history = self.folder / "best.pt", self.folder / "last.pt", self.folder / "history.jsonl"
        self.saved_epoch: int | None = None  # the epoch last.pt holds, once this process wrote it (what a stop keeps)

    def save_best(self, model, epoch: int, state: EarlyStopping) -> None:
        from ur4rec_cli.training.checkpoints import save_checkpoint

        if self.write:
            payload = {**self.base, "state_dict": model.state_dict(), "epoch": epoch, "best_metric": state.best, "val": state.best_metrics}
            save_checkpoint(self.best, payload)

    def save_last(self, model, optimizer, scheduler, rng, neg_gen, state: EarlyStopping, average=None) -> None:
        from ur4rec_cli.training import checkpoints as ck

        if not self.write:
            return
        try:
            ck.save_checkpoint(
                self.last,
                {
                    **self.base,
                    "state_dict": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": ck.rng_state(rng),
                    "neg_rng": neg_gen.get_state(),
                    "early_stopping": state.to_dict(),
                    "epoch": state.epoch,
                    "best_metric": state.best,
                    "average": average.to_dict() if average is not None else None,
                },
            )
        except KeyboardInterrupt:
            # A SIGTERM held across the rename fires once last.pt is in place: what it holds now is
            # what a stop keeps (this epoch if the rename happened, else the one before).
            self.saved_epoch = _epoch_in(self.last, self.saved_epoch)
            raise
        self.saved_epoch = state.epoch

    def append_history(self, row: dict[str, Any]) -> None:
        if self.write:
            old = self.history.read_text("utf-8") if self.history.is_file() else ""
            atomic_write_text(self.history, old + json.dumps(row) + "\n")


def _epoch_in(path: Path, fallback: int | None) -> int | None:
    """The epoch a saved ``last.pt`` holds (``fallback`` when it cannot be read)."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - a stop path: a missing or unreadable file keeps what we knew
        return fallback


def check_resume_settings(stage: str, saved: dict[str, Any], current: dict[str, Any], hint: str, also: frozenset[str] = frozenset()) -> None:
    """--resume continues the interrupted run as it was: a changed model or train setting is refused
    (but those of ``also``: a diverged stage's learning rates, stops.py)."""
    old, new = _flatten(saved), _flatten(current)
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES or key in also or old.get(key) == new.get(key):
            continue
        raise ConfigError(
            f"--resume: {stage} was started with {key} = {old.get(key)!r}, not {new.get(key)!r}; "
            f"resume it as it was started (`{hint}`) or train it anew without --resume"
        )


def resume_command(settings: "Settings", stage: str) -> str:
    """The `ur4rec train` line that resumes this run with the settings it was started with."""
    import shlex

    from ur4rec_cli.settings import TrainConfig, default_home

    t, defaults = settings.train, TrainConfig()
    # A home given by --home (or the config file) is named: the same command in the same environment finds the run.
    home = [] if Path(settings.home).expanduser().absolute() == default_home().absolute() else ["--home", shlex.quote(str(settings.home))]
    parts = ["ur4rec", *home, "train", "--stage", stage, "--run", t.run]
    if settings.data.name:
        parts += ["--dataset", settings.data.name]
    if t.epochs is not None:
        parts += ["--epochs", str(t.epochs)]
    if t.seed != defaults.seed:
        parts += ["--seed", str(t.seed)]
    if list(settings.model.modalities) != list(type(settings.model)().modalities):
        parts += ["--modalities", ",".join(settings.model.modalities) or '""']
    if t.learn_validation != defaults.learn_validation:
        parts += ["--learn-validation" if t.learn_validation else "--select-on-validation"]
    if t.device != defaults.device:
        parts += ["--device", t.device]
    return " ".join([*parts, "--resume"])


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
