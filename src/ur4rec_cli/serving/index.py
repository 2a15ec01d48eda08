"""The exported serving index and the dataset facts `recommend` needs, read with numpy alone.

Training writes ``<home>/runs/<name>/<run>/index/``: ``user_vecs.npy`` [n_users + 1, D] (row u =
the user's vector from the full history), ``item_vecs.npy`` [n_items + 1, D], ``blocks.json``
(which columns of D each modality owns), ``gates.npz`` (per-user gate weights) and, once `items add`
ran, ``added_items.json`` (the items appended after the catalogue's rows). Nothing here
imports torch, so a recommendation starts in a fraction of torch's import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.errors import ArtifactMissingError, DataError
from ur4rec_cli.store import ArtifactStore

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings


def display_id(raw: str) -> int | str:
    """A raw id as the source spells it: an int when it is a plain integer (ML-100K), else the string."""
    s = str(raw)
    if s.isdigit() and str(int(s)) == s:
        return int(s)
    return s


@dataclass
class ServingIndex:
    """User and item vectors (row 0 = padding) plus what explains a score."""

    folder: Path
    user_vecs: np.ndarray  # float32 [n_users + 1, D]
    item_vecs: np.ndarray  # float32 [n_items + 1, D]
    block_names: list[str]
    block_bounds: list[tuple[int, int]]
    gate_modalities: list[str] = field(default_factory=list)
    modality_gates: np.ndarray | None = None  # [n_users + 1, M]
    expert_gates: np.ndarray | None = None  # [n_users + 1, M, S]
    active: list[str] | None = None  # modalities the model used (None: all in gate_modalities)
    extra: dict[str, Any] = field(default_factory=dict)
    added: list[dict[str, Any]] = field(default_factory=list)  # items appended after training (`items add`)

    @property
    def n_trained(self) -> int:
        """Items of the catalogue the model was trained with (rows 1..n_trained); added items follow."""
        return self.item_vecs.shape[0] - 1 - len(self.added)

    @property
    def stage(self) -> str | None:
        return self.extra.get("stage")

    def shown_blocks(self) -> list[tuple[str, int, int]]:
        """Blocks that can carry score: a modality the model did not use is all zeros, never shown."""
        off = set(self.gate_modalities) - set(self.active if self.active is not None else self.gate_modalities)
        return [(n, a, b) for n, (a, b) in zip(self.block_names, self.block_bounds) if n not in off]


@dataclass
class ServingData:
    """The dataset facts needed to serve: seen items per user and item metadata."""

    folder: Path
    digest: str
    offsets: np.ndarray  # int64 [n_users + 1]
    seq_items: np.ndarray  # int32, internal item ids per user, concatenated
    item_ids: list[str]
    items: list[dict[str, Any]]
    user_ids: list[str]
    noun: str = "movie"  # what the items are (summary.json; an artifact without one was worded as movies)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def find_user(self, raw_id: str | int) -> int | None:
        """Internal index of a raw user id, or None."""
        try:
            return self.user_ids.index(str(raw_id)) + 1
        except ValueError:
            return None

    def seen_mask(self, users: np.ndarray) -> np.ndarray:
        """[B, n_items + 1] bool: True for padding and every item in each user's full history."""
        users = np.asarray(users, dtype=np.int64)
        starts, ends = self.offsets[users - 1], self.offsets[users]
        lengths = ends - starts
        rows = np.repeat(np.arange(len(users)), lengths)
        # Positions of every history item of every row, without a per-user loop.
        pos = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
        mask = np.zeros((len(users), self.n_items + 1), dtype=bool)
        mask[rows, self.seq_items[pos]] = True
        mask[:, 0] = True
        return mask


def dataset_folder(settings: "Settings") -> tuple[str, Path]:
    """Name and folder of the configured dataset artifact."""
    from ur4rec_cli.data.prepare import dataset_name

    name = dataset_name(settings.data)
    return name, ArtifactStore(settings.home).dataset_dir(name)


def index_folder(settings: "Settings") -> Path:
    """Where the exported index of the configured run lives."""
    name, _ = dataset_folder(settings)
    return ArtifactStore(settings.home).run_dir(name, settings.train.run) / "index"


def load_serving_data(settings: "Settings") -> ServingData:
    """Seen items and item metadata from the dataset artifact (interactions.npz, items.json, users.json)."""
    _, folder = dataset_folder(settings)
    man = ArtifactStore(settings.home).load(folder, kind="dataset")
    if man is None:
        raise ArtifactMissingError(f"no dataset artifact at {folder}: run `ur4rec data` first")
    try:
        with np.load(folder / "interactions.npz") as z:
            offsets = z["offsets"].astype(np.int64)
            seq_items = z["items"].astype(np.int64)
        items = json.loads((folder / "items.json").read_text("utf-8"))
        users = json.loads((folder / "users.json").read_text("utf-8"))
        summary = json.loads((folder / "summary.json").read_text("utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read the dataset artifact {folder}: {exc}") from None
    return ServingData(
        folder=folder,
        digest=man.digest,
        offsets=offsets,
        seq_items=seq_items,
        item_ids=[str(r.get("id")) for r in items],
        items=items,
        user_ids=[str(r.get("id")) for r in users],
        noun=str(summary.get("noun") or "movie"),
    )


def load_index(settings: "Settings", data: ServingData | None = None) -> ServingIndex:
    """The run's exported index; ArtifactMissingError when absent, corrupt or built from other data."""
    folder = index_folder(settings)
    man = ArtifactStore(settings.home).load(folder, kind="index")
    if man is None:
        raise ArtifactMissingError(
            f"no trained model for run {settings.train.run!r} (no valid index at {folder}): run `ur4rec train` first"
        )
    if data is not None and man.extra.get("dataset") not in (None, data.digest):
        raise ArtifactMissingError(
            f"the index at {folder} was built from a different dataset artifact than {data.folder}: rerun `ur4rec train`"
        )
    try:
        user_vecs = np.load(folder / "user_vecs.npy")
        item_vecs = np.load(folder / "item_vecs.npy")
        blocks = json.loads((folder / "blocks.json").read_text("utf-8"))
        names = [str(n) for n in blocks["names"]]
        bounds = [(int(a), int(b)) for a, b in blocks["bounds"]]
        gates: dict[str, np.ndarray] = {}
        if (folder / "gates.npz").exists():
            with np.load(folder / "gates.npz") as z:
                gates = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read the index {folder}: {exc}") from None
    if user_vecs.ndim != 2 or item_vecs.ndim != 2 or user_vecs.shape[1] != item_vecs.shape[1]:
        raise DataError(f"index {folder}: user_vecs {user_vecs.shape} and item_vecs {item_vecs.shape} do not match")
    added: list[dict[str, Any]] = []
    if (folder / "added_items.json").exists():  # items added after training (`items add`, serving/new_items.py)
        try:
            added = json.loads((folder / "added_items.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the index {folder}: {exc}") from None
    if data is not None and (user_vecs.shape[0] != data.n_users + 1 or item_vecs.shape[0] != data.n_items + 1 + len(added)):
        raise DataError(
            f"index {folder}: {user_vecs.shape[0] - 1} users x {item_vecs.shape[0] - 1} items, "
            f"but the dataset has {data.n_users} x {data.n_items}" + (f" (+ {len(added)} added)" if added else "") + ": rerun `ur4rec train`"
        )
    if data is not None and added:  # served like catalogue items from here on
        data.item_ids = [*data.item_ids, *(str(a["id"]) for a in added)]
        data.items = [*data.items, *(dict(a) for a in added)]
    modalities = [str(m) for m in gates["modalities"].tolist()] if "modalities" in gates else []
    active = [str(m) for m in gates["active"].tolist()] if "active" in gates else None
    return ServingIndex(
        folder=folder,
        user_vecs=user_vecs.astype(np.float32, copy=False),
        item_vecs=item_vecs.astype(np.float32, copy=False),
        block_names=names,
        block_bounds=bounds,
        gate_modalities=modalities,
        modality_gates=gates.get("modality"),
        expert_gates=gates.get("experts"),
        active=active,
        extra=dict(man.extra),
        added=added,
    )
