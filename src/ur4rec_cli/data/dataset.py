"""The dataset artifact: items, users, chronological sequences and the leave-one-out split.

Ids are remapped to contiguous internal indices: users ``1..n_users``, items ``1..n_items``;
index 0 is padding everywhere. Raw ids (strings, as in the source) are kept for display.

Leave-one-out (DESIGN.md): per user with at least 3 interactions, the last item is the test
target, the one before it the validation target, the rest train. Users with fewer than 3
interactions contribute their items to training only and are never evaluated.

A cold-item variant (``data/cold.py``) holds the warm sequences here and its cold test cases in
``cold``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ur4rec_cli.data.item_fields import common_labels, empty_item as empty_item_meta

Split = Literal["train", "valid", "test", "full"]

FILES = ("interactions.npz", "items.json", "users.json", "summary.json")


@dataclass
class Dataset:
    """In-memory dataset; arrays are numpy, internal ids are 1-based."""

    name: str
    item_ids: list[str]  # raw id of internal item i is item_ids[i - 1]
    user_ids: list[str]  # raw id of internal user u is user_ids[u - 1]
    items: list[dict[str, Any]]  # per item, same order: {"title", "year", ...} (data/item_fields.py)
    users: list[dict[str, Any]]  # {"age": int | None, "gender": str | None, "occupation": str | None}
    offsets: np.ndarray  # int64 [n_users + 1]; user u's sequence is seq_items[offsets[u-1]:offsets[u]]
    seq_items: np.ndarray  # int32, chronological per user (ties keep source order)
    seq_ratings: np.ndarray  # float32
    seq_times: np.ndarray  # int64
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # What the items are ("movie", "product", ...: the texts' words); an artifact written before the
    # noun was recorded was worded as movies, so that is what it reads as.
    noun: str = "movie"
    has_rating: bool = True  # False: implicit feedback (every rating 1.0 and never shown)
    item_columns: dict[str, str] = field(default_factory=dict)  # item column -> its role (the summary)
    common_labels: list[str] = field(default_factory=list)  # labels on every labelled item (item_fields.common_labels)
    rating_scale: float = 5.0  # the highest rating ("4.5/5"), fixed when the data set is built
    cold: Any = None  # cold.ColdSplit of a cold-item variant (`data --cold-items`), else None

    # Sizes ------------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return int(self.seq_items.shape[0])

    def lengths(self) -> np.ndarray:
        """Sequence length per internal user, shape [n_users] (user u at position u-1)."""
        return np.diff(self.offsets)

    # Sequences and split ----------------------------------------------------------------------
    def sequence(self, user: int) -> np.ndarray:
        """The user's full chronological item sequence."""
        return self.seq_items[self.offsets[user - 1] : self.offsets[user]]

    def ratings(self, user: int) -> np.ndarray:
        return self.seq_ratings[self.offsets[user - 1] : self.offsets[user]]

    def times(self, user: int) -> np.ndarray:
        """Timestamps of the user's sequence (a history's are its first ``len(history)``)."""
        return self.seq_times[self.offsets[user - 1] : self.offsets[user]]

    def is_evaluable(self, user: int) -> bool:
        return int(self.offsets[user] - self.offsets[user - 1]) >= 3

    def eval_users(self) -> np.ndarray:
        """Internal ids of users with a validation and a test item."""
        return np.nonzero(self.lengths() >= 3)[0].astype(np.int64) + 1

    def history(self, user: int, split: Split) -> np.ndarray:
        """Items fed as history: ``train``/``valid`` -> train part, ``test`` -> train + valid, ``full`` -> all."""
        seq = self.sequence(user)
        if split == "full" or not self.is_evaluable(user):
            return seq
        if split in ("train", "valid"):
            return seq[:-2]
        if split == "test":
            return seq[:-1]
        raise ValueError(f"unknown split {split!r}")

    def target(self, user: int, split: Literal["valid", "test"]) -> int:
        """The held-out item of an evaluable user."""
        seq = self.sequence(user)
        if len(seq) < 3:
            raise ValueError(f"user {user} has fewer than 3 interactions")
        return int(seq[-2] if split == "valid" else seq[-1])

    def targets(self, users: np.ndarray, split: Literal["valid", "test"]) -> np.ndarray:
        """Held-out items of many evaluable users at once (vectorised)."""
        users = np.asarray(users, dtype=np.int64)
        pos = self.offsets[users] - (2 if split == "valid" else 1)
        return self.seq_items[pos].astype(np.int64)

    def absent_items(self, split: Split) -> np.ndarray | None:
        """Items that are nobody's candidates under ``split``: a cold-item variant's cold items while
        validating (they do not exist yet at training time); None otherwise."""
        return self.cold.items if self.cold is not None and split == "valid" else None

    def train_sequences(self) -> list[np.ndarray]:
        """Train part of every user's sequence, index u-1 (all items for non-evaluable users)."""
        return [self.history(u, "train") for u in range(1, self.n_users + 1)]

    def item_popularity(self, split: Split = "train") -> np.ndarray:
        """Interaction counts per item over the fed histories of ``split`` (index 0 = padding = 0)."""
        counts = np.zeros(self.n_items + 1, dtype=np.int64)
        for u in range(1, self.n_users + 1):
            np.add.at(counts, self.history(u, split), 1)
        return counts

    def find_user(self, raw_id: str | int) -> int | None:
        """Internal index of a raw user id, or None."""
        key = str(raw_id)
        index = self.extra.get("_user_index")
        if index is None:
            index = {uid: i + 1 for i, uid in enumerate(self.user_ids)}
            self.extra["_user_index"] = index
        return index.get(key)

    # Persistence ------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write the artifact files into ``folder`` (a store temp folder)."""
        folder = Path(folder)
        np.savez(
            folder / "interactions.npz",
            offsets=self.offsets.astype(np.int64),
            items=self.seq_items.astype(np.int32),
            ratings=self.seq_ratings.astype(np.float32),
            times=self.seq_times.astype(np.int64),
            **(self.cold.arrays() if self.cold is not None else {}),
        )
        items = [{"id": iid, **meta} for iid, meta in zip(self.item_ids, self.items)]
        users = [{"id": uid, **meta} for uid, meta in zip(self.user_ids, self.users)]
        (folder / "items.json").write_text(json.dumps(items, ensure_ascii=False), "utf-8")
        (folder / "users.json").write_text(json.dumps(users, ensure_ascii=False), "utf-8")
        (folder / "summary.json").write_text(json.dumps(self.summary(), indent=2), "utf-8")

    @classmethod
    def load(cls, folder: Path) -> "Dataset":
        """Read an artifact folder written by :meth:`save` (validity is the store's job)."""
        folder = Path(folder)
        from ur4rec_cli.data.cold import ColdSplit

        with np.load(folder / "interactions.npz") as z:
            offsets, seq_items, ratings, times = z["offsets"], z["items"], z["ratings"], z["times"]
            cold = ColdSplit.from_arrays(z)
        items = json.loads((folder / "items.json").read_text("utf-8"))
        users = json.loads((folder / "users.json").read_text("utf-8"))
        summary = json.loads((folder / "summary.json").read_text("utf-8"))
        return cls(
            name=summary.get("name", folder.name),
            item_ids=[str(r.pop("id")) for r in items],
            user_ids=[str(r.pop("id")) for r in users],
            items=items,
            users=users,
            offsets=offsets,
            seq_items=seq_items,
            seq_ratings=ratings,
            seq_times=times,
            source=summary.get("source", ""),
            noun=summary.get("noun", "movie"),
            has_rating=summary.get("feedback", "explicit") != "implicit",
            item_columns=dict(summary.get("item_columns") or {}),
            common_labels=list(summary.get("common_labels") or []),
            rating_scale=float(summary.get("rating_scale", 5.0)),
            cold=cold,
        )

    def summary(self) -> dict[str, Any]:
        """Counts for the summary table and ``--json``."""
        lengths = self.lengths()
        n_eval = int((lengths >= 3).sum())
        return {
            "name": self.name,
            "source": self.source,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.n_interactions / max(1, self.n_users * self.n_items),
            "seq_len_min": int(lengths.min()) if len(lengths) else 0,
            "seq_len_median": float(np.median(lengths)) if len(lengths) else 0.0,
            "seq_len_mean": float(lengths.mean()) if len(lengths) else 0.0,
            "seq_len_max": int(lengths.max()) if len(lengths) else 0,
            "train_interactions": int(self.n_interactions - 2 * n_eval),
            "valid_users": n_eval,
            "test_users": n_eval,
            # Fewer than 3 interactions: their items are training data, they are never evaluated.
            "train_only_users": int(self.n_users - n_eval),
            "noun": self.noun,
            "feedback": "explicit" if self.has_rating else "implicit",
            "item_columns": self.item_columns,
            "common_labels": self.common_labels,
            "rating_scale": self.rating_scale,
            **(self.cold.summary() if self.cold is not None else {}),
        }


def build_dataset(
    name: str,
    source: str,
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    times: np.ndarray,
    item_meta: dict[str, dict[str, Any]],
    user_meta: dict[str, dict[str, Any]],
    *,
    noun: str = "movie",
    has_rating: bool = True,
    item_columns: dict[str, str] | None = None,
) -> Dataset:
    """Assemble a Dataset from parallel raw arrays in source order.

    ``users``/``items`` hold raw ids (str). Each user's interactions are sorted by timestamp with a
    stable sort, so ties keep the order of the source file. Items that are in the metadata but never
    interacted with stay in the catalog; interacted items missing from metadata get empty metadata.
    """
    users = np.asarray(users).astype(str)
    items = np.asarray(items).astype(str)
    ratings = np.asarray(ratings, dtype=np.float32)
    times = np.asarray(times, dtype=np.int64)

    item_ids = list(item_meta.keys())
    known = set(item_ids)
    for iid in dict.fromkeys(items.tolist()):
        if iid not in known:
            item_ids.append(iid)
            known.add(iid)
    item_ids = sorted(item_ids, key=_id_sort_key)
    item_index = {iid: i + 1 for i, iid in enumerate(item_ids)}

    user_ids = sorted(set(users.tolist()) | set(user_meta.keys()), key=_id_sort_key)
    user_index = {uid: i + 1 for i, uid in enumerate(user_ids)}

    u_int = np.fromiter((user_index[u] for u in users.tolist()), dtype=np.int64, count=len(users))
    i_int = np.fromiter((item_index[i] for i in items.tolist()), dtype=np.int64, count=len(items))
    # Stable lexsort: by user, then time; equal times keep source order.
    order = np.lexsort((times, u_int), axis=0) if len(u_int) else np.zeros(0, dtype=np.int64)
    counts = np.bincount(u_int, minlength=len(user_ids) + 1)[1:]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    empty_item = empty_item_meta(item_meta)
    metas = [{**empty_item, **item_meta.get(i, {})} for i in item_ids]
    empty_user = {"age": None, "gender": None, "occupation": None}
    return Dataset(
        name=name,
        item_ids=item_ids,
        user_ids=user_ids,
        items=metas,
        users=[{**empty_user, **user_meta.get(u, {})} for u in user_ids],
        offsets=offsets,
        seq_items=i_int[order].astype(np.int32),
        seq_ratings=ratings[order],
        seq_times=times[order],
        source=source,
        noun=noun,
        has_rating=has_rating,
        item_columns=dict(item_columns or {}),
        common_labels=common_labels(metas),
        rating_scale=float(ratings.max()) if has_rating and ratings.size else 5.0,
    )


def _id_sort_key(raw: str) -> tuple[int, int | str]:
    # Numeric ids sort numerically (so ML-100K item 1 is internal 1), others lexically after them.
    try:
        return (0, int(raw))
    except ValueError:
        return (1, raw)
