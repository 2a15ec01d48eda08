"""Weight averaging over a stage's last epochs (stochastic weight averaging with a uniform mean)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def averaging_start(epochs: int, fraction: float) -> int | None:
    """First epoch (1-based) whose end-of-epoch weights enter the average, or None when off."""
    n = math.ceil(fraction * epochs - 1e-9) if fraction > 0 else 0
    return None if n <= 0 else epochs - min(n, epochs) + 1


class WeightAverage:
    """Uniform running mean of a model's parameters, one sample per finished epoch from ``start`` on.

    Only parameters are averaged (buffers are the fixed feature matrices). Frozen parameters stay
    what they are, so the mean of a stage that freezes a module leaves that module unchanged.
    """

    def __init__(self, start: int) -> None:
        self.start = start
        self.count = 0
        self.mean: dict[str, Any] | None = None

    def update(self, model, epoch: int) -> bool:
        """Add the model's weights after ``epoch`` when it is inside the window; True when added."""
        if epoch < self.start:
            return False
        self.count += 1
        params = dict(model.named_parameters())
        if self.mean is None:
            self.mean = {k: p.detach().clone() for k, p in params.items()}
        else:
            for k, m in self.mean.items():
                m.add_(params[k].detach() - m, alpha=1.0 / self.count)
        return True

    @contextmanager
    def applied(self, model) -> Iterator[None]:
        """Inside: the model holds the average (when there is one); after: its own weights again."""
        import torch

        if self.mean is None:
            yield
            return
        params = dict(model.named_parameters())
        own = {k: p.detach().clone() for k, p in params.items()}
        with torch.no_grad():
            for k, m in self.mean.items():
                params[k].copy_(m)
        try:
            yield
        finally:
            with torch.no_grad():
                for k, w in own.items():
                    params[k].copy_(w)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "count": self.count, "mean": self.mean}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> "WeightAverage":
        avg = cls(int(state["start"]))
        avg.count, avg.mean = int(state["count"]), state["mean"]
        return avg
