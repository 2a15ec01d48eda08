"""Top-N recommendations from the exported index: one matrix product, seen items masked, numpy only;
with ``new``, only items new to the model (the new-items shelf: ``new_items``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ur4rec_cli.errors import ConfigError, UnknownUserError
from ur4rec_cli.serving.index import ServingData, ServingIndex, display_id, load_index, load_serving_data
from ur4rec_cli.store import atomic_write_text

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings

# Users scored per matrix product for --all: bounds memory at chunk x n_items floats.
_CHUNK = 2048


def top_items(index: ServingIndex, data: ServingData, users: np.ndarray, top: int, shelf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(items [B, N], scores [B, N])``, best first, never an item the user has seen; ``shelf``
    ([n_items + 1] bool, ``new_items``): only the items it marks.

    Rows with fewer unseen items than N are padded with item 0 and score -inf.
    """
    scores = index.user_vecs[users] @ index.item_vecs.T
    scores[data.seen_mask(users)] = -np.inf
    if shelf is not None:
        scores[:, ~shelf] = -np.inf
    return ranked_unseen(scores, top)


def new_items(index: ServingIndex, data: ServingData) -> np.ndarray:
    """[n_items + 1] bool, the new-items shelf: True for every item the model never trained on, i.e. the
    catalogue's items without any interaction in the data set (the cold items of a `data --cold-items`
    variant, items no one has used yet) and the items appended after training (`items add`)."""
    counts = np.bincount(data.seq_items, minlength=index.item_vecs.shape[0])[: index.item_vecs.shape[0]]
    shelf = counts == 0
    shelf[0] = False
    return shelf


def ranked_unseen(scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``top`` columns of each row of ``scores`` [B, n_items + 1] (seen items at -inf), best first."""
    n = min(top, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part_scores = np.take_along_axis(scores, part, axis=1)
    # Best first; equal scores fall back to the smaller item id, so output is deterministic.
    order = np.lexsort((part, -part_scores), axis=1)
    items = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(part_scores, order, axis=1)
    items[~np.isfinite(best)] = 0
    return items, best


def recommend(
    settings: "Settings",
    *,
    user: str | int | None = None,
    top: int = 10,
    explain: bool = False,
    all_users: bool = False,
    output: Path | None = None,
    new: bool = False,
) -> dict[str, Any]:
    """Top-N unseen items for one user (``user``) or for every user (``all_users`` into ``output``);
    ``new``: among the new-items shelf only (``new_items``)."""
    if top < 1:
        raise ConfigError(f"--top must be a positive integer, got {top}")
    if all_users == (user is not None):
        raise ConfigError("give one of --user ID, --history ITEMS or --all --output FILE")
    if all_users and output is None:
        raise ConfigError("--all needs --output FILE (one JSON line per user)")
    data = load_serving_data(settings)
    index = load_index(settings, data)
    shelf = new_items(index, data) if new else None  # once per call, not per chunk of users
    if shelf is not None and not shelf.any():
        raise ConfigError(
            "--new: the catalogue has no new items (every item has an interaction and none was added): "
            "add some with `ur4rec items add FILE`"
        )
    if all_users:
        return _recommend_all(index, data, top, Path(output), shelf)  # type: ignore[arg-type]
    u = data.find_user(user)  # type: ignore[arg-type]
    if u is None:
        raise UnknownUserError(
            f"unknown user {user!r}: the dataset {data.folder} has {data.n_users} users "
            f"(ids {id_range(data.user_ids)})"
        )
    items, scores = top_items(index, data, np.array([u]), top, shelf)
    rows = item_rows(data, items[0], scores[0])
    result: dict[str, Any] = {
        "user": display_id(data.user_ids[u - 1]),
        "items": rows,
        "history": int(data.offsets[u] - data.offsets[u - 1]),
        "stage": index.stage,
        "run": settings.train.run,
        "index": str(index.folder),
        "new": bool(new),
    }
    if explain:
        result["explain"] = _gates(index, u)
        contributions = _contributions(index, u, np.array([r["_item"] for r in rows], dtype=np.int64))
        for row, contrib in zip(rows, contributions):
            row["contributions"] = contrib
            row["top_part"] = max(contrib, key=contrib.__getitem__) if contrib else None
    for row in rows:
        row.pop("_item")
    return result


def item_rows(data: ServingData, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """One ranked row per item of a ``ranked_unseen`` row (rank, ids, title, year, genres, what else
    the catalogue has of brand, categories and tags, score; ``_item``, the internal id, for the
    caller to drop), up to the first padding item."""
    rows = []
    for rank, (i, s) in enumerate(zip(items.tolist(), scores.tolist()), start=1):
        if i == 0:
            break
        rows.append({"rank": rank, **_item_fields(data, i), "score": float(s)})
    return rows


def _item_fields(data: ServingData, item: int) -> dict[str, Any]:
    meta = data.items[item - 1]
    shown = {key: meta[key] for key in ("brand", "categories", "tags") if key in meta}
    return {
        "item_id": display_id(data.item_ids[item - 1]),
        "title": meta.get("title"),
        "year": meta.get("year"),
        "genres": list(meta.get("genres") or []),
        **shown,
        "_item": item,
    }


def _gates(index: ServingIndex, user: int) -> dict[str, Any]:
    """The user's modality gate weights and, per modality, its sub-expert weights."""
    out: dict[str, Any] = {"modality": {}, "experts": {}}
    names = index.gate_modalities
    shown = set(index.active if index.active is not None else names)
    if index.modality_gates is not None:
        out["modality"] = {m: float(w) for m, w in zip(names, index.modality_gates[user].tolist()) if m in shown}
    if index.expert_gates is not None:
        out["experts"] = {m: [float(w) for w in ws] for m, ws in zip(names, index.expert_gates[user].tolist()) if m in shown}
    return out


# The score's parts as the README names them: the sequence model's block (SASRec state against the
# item token: its ID embedding plus the content adaptor's offset), one block per modality, the
# frozen stage-1 SASRec's block (model.sasrec_anchor) and content-KNN's (model.knn_weight).
PART_NAMES = {"sasrec": "sequence", "anchor": "stage-1 sequence", "content_knn": "content-KNN"}


def _contributions(index: ServingIndex, user: int, items: np.ndarray) -> list[dict[str, float]]:
    """Per item, each part's share of the score: the dot product of the user's and the item's
    sub-vectors of that part. The parts tile the vector (a modality the model did not use is all
    zeros), so they add up to the score."""
    u = index.user_vecs[user]
    blocks = index.shown_blocks()
    per_block = [index.item_vecs[items, a:b] @ u[a:b] for _, a, b in blocks]
    names = [PART_NAMES.get(name, name) for name, _, _ in blocks]
    return [{name: float(col[j]) for name, col in zip(names, per_block)} for j in range(len(items))]


def _recommend_all(index: ServingIndex, data: ServingData, top: int, output: Path, shelf: np.ndarray | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    users = np.arange(1, data.n_users + 1, dtype=np.int64)
    item_ids = np.array([display_id(i) for i in data.item_ids], dtype=object)
    lines: list[str] = []
    for start in range(0, len(users), _CHUNK):
        chunk = users[start : start + _CHUNK]
        items, scores = top_items(index, data, chunk, top, shelf)
        for row, u in enumerate(chunk.tolist()):
            keep = items[row] > 0
            record = {
                "user": display_id(data.user_ids[u - 1]),
                "items": item_ids[items[row][keep] - 1].tolist(),
                "scores": [round(float(s), 6) for s in scores[row][keep].tolist()],
            }
            lines.append(json.dumps(record))
    atomic_write_text(output, "\n".join(lines) + "\n")
    return {
        "users": len(users),
        "top": top,
        "new": shelf is not None,
        "output": str(output),
        "stage": index.stage,
        "index": str(index.folder),
        "seconds": time.perf_counter() - started,
    }


def id_range(ids: Sequence[str]) -> str:
    """``first..last`` in natural order (u2 before u10), whatever order the ids are stored in."""
    import re

    def key(raw: str) -> list:
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(raw)) if t]

    return f"{min(ids, key=key)}..{max(ids, key=key)}"
