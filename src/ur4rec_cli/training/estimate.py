"""How long the rest of a `train` call will take, from the epochs timed so far.

Printed once the first epoch of stage 1 is timed and again at the first epoch of each later stage.
A stage not yet started is estimated from the measured stage-1 epoch and the cost of its epoch
relative to a stage-1 epoch in the default run of docs/benchmarks.md (stage 2 recomputes the
frozen SASRec with the MoE on top; stages 3 and 4 train only each user's newest transitions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ur4rec_cli.console import duration

# Seconds per epoch relative to a stage-1 epoch, measured in the default ML-100K run (394 s / 80,
# 158 s / 20, 29 s / 6, 20 s / 4 epochs).
RELATIVE_EPOCH_COST = {"pretrain_sasrec": 1.0, "pretrain_retriever": 1.6, "joint_finetune": 1.0, "end_to_end": 1.0}


@dataclass
class JobEstimate:
    """The stages this call runs, with their epoch counts, and the seconds per epoch seen so far."""

    plan: list[tuple[str, int]]
    caps: bool = False  # early stopping: the counts are caps, the estimate an upper bound
    measured: dict[str, float] = field(default_factory=dict)

    def observe(self, stage: str, epoch: int, seconds: float) -> str | None:
        """Record a stage's first timed epoch; the line to print, or None when nothing is new."""
        if stage in self.measured or stage not in dict(self.plan):
            return None
        self.measured[stage] = seconds
        left = self.seconds_left(stage, epoch)
        if left is None:
            return None
        names = [s for s, _ in self.plan]
        later = names[names.index(stage) + 1 :]
        basis = f"{seconds:.1f} s per {stage} epoch" + (", later stages scaled from it" if later else "")
        bound = "at most " if self.caps else "about "
        return f"whole job: {bound}{duration(left)} left ({basis})"

    def seconds_left(self, stage: str, epoch: int) -> float | None:
        """Seconds after ``epoch`` of ``stage`` until the last planned stage ends."""
        ref = self._reference()
        if ref is None:
            return None
        names = [s for s, _ in self.plan]
        total = 0.0
        for s, epochs in self.plan[names.index(stage) :]:
            per = self.measured.get(s, ref * RELATIVE_EPOCH_COST.get(s, 1.0))
            total += per * (epochs - epoch if s == stage else epochs)
        return max(0.0, total)

    def _reference(self) -> float | None:
        """The stage-1 epoch time, measured or implied by a later stage's measured epoch."""
        if "pretrain_sasrec" in self.measured:
            return self.measured["pretrain_sasrec"]
        for s, secs in self.measured.items():
            return secs / RELATIVE_EPOCH_COST.get(s, 1.0)
        return None
