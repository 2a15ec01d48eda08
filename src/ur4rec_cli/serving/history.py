"""`recommend --history 50,172,181`: top-N for someone who is not in the data set.

The items (raw ids as in the source data, oldest first) go through the trained sequence model of
the run's exported index (with the content-KNN weight the index was written with) to make a user vector (this path imports torch; `recommend --user` does
not), and that vector is scored against the index's own item vectors: the same dot product as
for a known user, the given items excluded. No timestamps come with the items, so they are read in
the order given (one order: no averaging over same-second orders). There is no user-preference
text for such a user: the user-text modality's input is zero (its experts still see the sequence
state), the other modalities work as for anyone. For a model trained without user_text, a known
user's own history given here gives that user's `recommend --user` list (same-second items aside).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.errors import ConfigError, UnknownItemError
from ur4rec_cli.serving.index import load_index, load_serving_data

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings


def parse_history(raw: str) -> list[str]:
    """"50, 172,181" -> ["50", "172", "181"]; an empty list is an error."""
    items = [p.strip() for p in raw.split(",") if p.strip()]
    if not items:
        raise ConfigError("--history needs at least one item id (comma-separated raw ids, oldest first), e.g. --history 50,172,181")
    return items


def recommend_history(settings: "Settings", history: str | list[str], top: int = 10, new: bool = False) -> dict[str, Any]:
    """Top-N unseen items for a history of raw item ids, oldest first (a list, or the comma-separated text of --history);
    ``new``: among the new-items shelf only."""
    import torch

    from ur4rec_cli.data.sequences import pad_left
    from ur4rec_cli.runs import load_stage_model
    from ur4rec_cli.serving.recommend import item_rows, new_items, ranked_unseen

    if isinstance(history, str):
        history = parse_history(history)
    if top < 1:
        raise ConfigError(f"--top must be a positive integer, got {top}")
    data = load_serving_data(settings)
    index = load_index(settings, data)
    lookup = {str(raw): i + 1 for i, raw in enumerate(data.item_ids)}
    unknown = [raw for raw in history if raw not in lookup]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UnknownItemError(f"unknown item id(s) in --history: {shown} (the dataset {data.folder} has {data.n_items} items)")
    late = [raw for raw in history if lookup[raw] > index.n_trained]
    if late:
        raise UnknownItemError(f"item(s) {', '.join(late[:5])} were added after training (items add): the sequence model has no token for them; leave them out of --history")
    internal = np.array([lookup[raw] for raw in history], dtype=np.int64)
    loaded = load_stage_model(settings, index.stage, knn_weight=float(index.extra.get("knn_weight", 0.0)))  # the block as the index was written
    model = loaded.model
    seqs = torch.from_numpy(pad_left([internal], min(len(internal), int(model.max_len))))
    with torch.inference_mode():
        vec = model.user_vectors(seqs, None).float().numpy()[0]
    if vec.shape[0] != index.item_vecs.shape[1]:
        raise ConfigError(f"the index in {index.folder} does not match stage {loaded.stage} of run {settings.train.run}; rerun `ur4rec train`")
    scores = (index.item_vecs @ vec)[None]
    scores[0, 0] = -np.inf
    scores[0, internal] = -np.inf
    if new:
        scores[0, ~new_items(index, data)] = -np.inf
    items, best = ranked_unseen(scores, top)
    rows = item_rows(data, items[0], best[0])
    for row in rows:
        row.pop("_item")
    return {
        "user": f"(new: {len(history)} given items)",
        "items": rows,
        "history": len(history),
        "new": bool(new),
        "stage": index.stage,
        "run": settings.train.run,
        "index": str(index.folder),
        "user_text": "absent (no preference text for a history given on the command line)" if "user_text" in (index.active or []) else None,
    }
