"""The cold-item protocol: a data set variant in which a seeded share of items does not exist yet.

``ur4rec data --cold-items 0.2`` draws 20% of the items that have at least one interaction
(uniformly, ``numpy.random.default_rng(data.cold_seed)``; ColdRec's default share) and removes
every interaction with them from the users' sequences. What is left is an ordinary data set
(leave-one-out over the warm sequences: the warm validation and test targets), so `train`,
`evaluate` and the benchmark run it with no special path. The cold items stay in the catalogue
with their metadata: they are items a shop has just added, with a title and a poster but no
interaction yet.

Every removed interaction becomes a cold test case (``ColdSplit``): its target is the cold item,
its history the user's warm items that came before it in the sorted sequence (same-second items
keep the file order, as everywhere), possibly including the user's warm validation and test
items. A case without any earlier warm item has no history to rank from and is dropped (counted
in the summary). A cold case is ranked like a warm one: full ranking over every item not in the
fed history, pessimistic ties (docs/evaluation.md).

Training never sees a cold item: not in a history, not as a target, not as a negative of the
softmax (the loss runs over the items with a training interaction only); training's validation
ranks without them (``Dataset.absent_items``). ``ColdView`` presents the cases to the ranking code as pseudo-users
``1..n_cases`` whose test history and target are the case's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np


@dataclass
class ColdSplit:
    """The cold items and their test cases (internal ids, cases in user then time order)."""

    items: np.ndarray  # int64 [n_cold], sorted: items with no training or validation interaction
    users: np.ndarray  # int64 [C]: the case's user
    lengths: np.ndarray  # int64 [C]: how many of the user's warm items come before it (its history)
    targets: np.ndarray  # int64 [C]: the cold item
    times: np.ndarray  # int64 [C]: when it was rated
    share: float
    seed: int
    dropped: int = 0  # cold interactions with no earlier warm item (no history): not cases

    def arrays(self) -> dict[str, np.ndarray]:
        """What ``Dataset.save`` writes beside the sequences."""
        return {
            "cold_items": self.items, "cold_users": self.users, "cold_lengths": self.lengths,
            "cold_targets": self.targets, "cold_times": self.times,
            "cold_meta": np.array([self.share, self.seed, self.dropped], dtype=np.float64),
        }  # fmt: skip

    @classmethod
    def from_arrays(cls, z: Any) -> "ColdSplit | None":
        if "cold_items" not in z.files:
            return None
        share, seed, dropped = z["cold_meta"].tolist()
        return cls(
            z["cold_items"].astype(np.int64), z["cold_users"].astype(np.int64), z["cold_lengths"].astype(np.int64),
            z["cold_targets"].astype(np.int64), z["cold_times"].astype(np.int64), float(share), int(seed), int(dropped),
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {"cold_share": self.share, "cold_seed": self.seed, "cold_items": int(len(self.items)),
                "cold_cases": int(len(self.targets)), "cold_cases_dropped": self.dropped}  # fmt: skip


def cold_suffix(share: float, seed: int) -> str:
    """``-cold20`` (share 0.2, seed 0), ``-cold20s3`` (seed 3): part of the variant's store name."""
    pct = f"{share * 100:.6g}".replace(".", "p")
    return f"-cold{pct}" + (f"s{seed}" if seed else "")


def split_cold(dataset: Any, share: float, seed: int) -> Any:
    """The cold-item variant of ``dataset`` (a new Dataset whose ``cold`` holds the split)."""
    from ur4rec_cli.errors import DataError

    counts = np.bincount(dataset.seq_items, minlength=dataset.n_items + 1)
    eligible = np.nonzero(counts[1:])[0] + 1
    n_cold = int(round(share * len(eligible)))
    if n_cold < 1 or n_cold >= len(eligible):
        raise DataError(f"--cold-items {share:g} of {len(eligible):,} interacted items makes {n_cold:,} cold items: choose a share that leaves some cold and some warm")
    rng = np.random.default_rng(seed)
    cold_items = np.sort(rng.choice(eligible, size=n_cold, replace=False)).astype(np.int64)
    is_cold = np.zeros(dataset.n_items + 1, dtype=bool)
    is_cold[cold_items] = True

    seq_cold = is_cold[dataset.seq_items]
    lengths = dataset.lengths()
    owner = np.repeat(np.arange(1, dataset.n_users + 1, dtype=np.int64), lengths)
    # Warm items before each position, within its user: a global running count minus the user's start.
    warm_running = np.concatenate([[0], np.cumsum(~seq_cold)])
    before = warm_running[:-1] - warm_running[dataset.offsets[:-1]][owner - 1]
    case = seq_cold & (before > 0)
    warm_counts = np.bincount(owner[~seq_cold], minlength=dataset.n_users + 1)[1:]
    split = ColdSplit(
        items=cold_items,
        users=owner[case],
        lengths=before[case].astype(np.int64),
        targets=dataset.seq_items[case].astype(np.int64),
        times=dataset.seq_times[case].astype(np.int64),
        share=float(share),
        seed=int(seed),
        dropped=int((seq_cold & (before == 0)).sum()),
    )
    return replace(
        dataset,
        offsets=np.concatenate([[0], np.cumsum(warm_counts)]).astype(np.int64),
        seq_items=dataset.seq_items[~seq_cold],
        seq_ratings=dataset.seq_ratings[~seq_cold],
        seq_times=dataset.seq_times[~seq_cold],
        cold=split,
        extra={},
    )


class ColdView:
    """The cold cases as a data set the ranking code reads: pseudo-user ``c`` (1-based) is case c.

    ``history(c, "test")`` is the case's warm history, ``targets`` its cold item, ``times`` the
    history's timestamps (tie orders shuffle within them). ``owners`` maps pseudo-users back to the
    real users (whose preference text the model reads): wrap a scorer with ``OwnerScorer``.
    ``shelf``: the new-items shelf, where the candidates are the cold items alone (every warm item
    is absent), as `recommend --new` ranks them.
    """

    def __init__(self, dataset: Any, shelf: bool = False) -> None:
        if dataset.cold is None:
            raise ValueError("the data set has no cold split")
        self.base, self.cold = dataset, dataset.cold
        self.n_items = dataset.n_items
        self.owners = self.cold.users
        self.shelf = shelf

    def eval_users(self) -> np.ndarray:
        return np.arange(1, len(self.cold.targets) + 1, dtype=np.int64)

    def history(self, case: int, split: str = "test") -> np.ndarray:
        return self.base.sequence(int(self.owners[case - 1]))[: int(self.cold.lengths[case - 1])]

    def times(self, case: int) -> np.ndarray:
        return self.base.times(int(self.owners[case - 1]))[: int(self.cold.lengths[case - 1])]

    def targets(self, cases: np.ndarray, split: str = "test") -> np.ndarray:
        return self.cold.targets[np.asarray(cases, dtype=np.int64) - 1]

    def item_popularity(self, split: str = "train") -> np.ndarray:
        return self.base.item_popularity(split)

    def absent_items(self, split: str = "test") -> np.ndarray | None:
        if not self.shelf:
            return None  # at test time every item exists
        warm = np.ones(self.n_items + 1, dtype=bool)
        warm[0] = False
        warm[self.cold.items] = False
        return np.nonzero(warm)[0].astype(np.int64)


class OwnerScorer:
    """A scorer called with pseudo-users (cold cases) that hands the real users to ``scorer``."""

    def __init__(self, scorer: Any, owners: np.ndarray) -> None:
        self.scorer, self.owners = scorer, np.asarray(owners, dtype=np.int64)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scorer, name)

    def _real(self, users: Any) -> Any:
        import torch

        return torch.from_numpy(self.owners[users.cpu().numpy() - 1]).to(users.device)

    def user_vectors(self, histories: Any, users: Any) -> Any:
        return self.scorer.user_vectors(histories, self._real(users))
