"""Metrics cut into slices: by the target item's training-interaction count and by history length.

Content earns its place where IDs know little (cold and long-tail items, short histories); one
overall figure hides that. Each test case falls in one slice of each cut:

- target popularity: the held-out item's count in the train split (every user's train part):
  ``cold`` = 0, ``tail`` = 1..a, ``torso`` = a+1..b, ``head`` > b, with (a, b) =
  ``eval.popularity_cuts`` (default 50, 200);
- history length: the fed history's length, ``short`` <= ``eval.short_history`` (default 20) < ``long``.

A slice prints its number of test cases beside its metrics: a slice with few cases is a hint, not
a verdict (the benchmark gives paired CIs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.ranking import metrics_from_ranks

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset


def popularity_slices(counts: np.ndarray, cuts: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """(label, mask) per target-popularity slice, for the training counts of each case's target."""
    a, b = cuts
    return [
        ("cold (0)", counts == 0),
        (f"tail (1-{a})", (counts >= 1) & (counts <= a)),
        (f"torso ({a + 1}-{b})", (counts > a) & (counts <= b)),
        (f"head (>{b})", counts > b),
    ]


def history_slices(lengths: np.ndarray, short: int) -> list[tuple[str, np.ndarray]]:
    return [(f"short (<={short})", lengths <= short), (f"long (>{short})", lengths > short)]


def slice_metrics(dataset: "Dataset", users: np.ndarray, targets: np.ndarray, ranks: np.ndarray, split: str,
                  ks: list[int], cuts: tuple[int, int], short: int) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Every metric per slice of both cuts, with the case count (a slice without cases is listed, empty)."""
    counts = dataset.item_popularity("train")[np.asarray(targets, dtype=np.int64)]
    users = np.asarray(users, dtype=np.int64)
    # The fed history: train + valid for test (every item but the last), train for valid.
    lengths = dataset.offsets[users] - dataset.offsets[users - 1] - (1 if split == "test" else 2)
    out: dict[str, list[dict[str, Any]]] = {}
    for cut, slices in (("target_popularity", popularity_slices(counts, cuts)), ("history_length", history_slices(lengths, short))):
        rows = []
        for label, mask in slices:
            n = int(mask.sum())
            rows.append({"slice": label, "cases": n, "metrics": metrics_from_ranks(ranks[mask], ks) if n else None})
        out[cut] = rows
    return out
