"""Paired bootstrap over users: is model A's per-user metric really above model B's?"""

from __future__ import annotations

import numpy as np

from ur4rec_cli.errors import EvaluationError


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> dict[str, float]:
    """CI of mean(a - b) over users resampled with replacement; a and b are per-user metrics of the same users.

    Returns ``mean_diff``, ``low``, ``high`` (the ``1 - alpha`` percentile interval) and ``p_value``
    (two-sided: twice the share of resampled means on the far side of zero).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise EvaluationError(f"paired bootstrap needs two equal-length per-user vectors, got {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    # Chunks keep the index matrix small for large user counts.
    step = max(1, 4_000_000 // diff.size)
    for start in range(0, n_boot, step):
        m = min(step, n_boot - start)
        idx = rng.integers(0, diff.size, size=(m, diff.size))
        means[start : start + m] = diff[idx].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    p = 2 * min((means <= 0).mean(), (means >= 0).mean())
    return {"mean_diff": float(diff.mean()), "low": float(low), "high": float(high), "p_value": float(min(1.0, p))}
