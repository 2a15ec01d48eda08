"""Batching helpers shared by training, evaluation and export (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_left(seqs: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Left-pad (with 0) and left-truncate to ``max_len``: the most recent item is always column -1.

    Left padding keeps the user state at a fixed position (-1) for every row, so no row can ever
    read a padding position as its state (the research code's bug with right-padding indices).
    """
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = np.asarray(seq[-max_len:], dtype=np.int64)
        if len(tail):
            out[row, max_len - len(tail) :] = tail
    return out


def shuffle_ties(items: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``items`` with every run of equal ``times`` put in a random order (times non-decreasing).

    Items a user rated in the same second come in the source file's order, which says nothing
    about which came first; any order of them is as true as another.
    """
    if len(items) < 2:
        return items
    return items[np.lexsort((rng.random(len(items)), times))]
