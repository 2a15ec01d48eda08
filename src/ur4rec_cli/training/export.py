"""Export a trained model as a numpy index: user and item vectors, block bounds, gate weights.

`recommend` reads it with numpy alone (no torch import, fast cold start). Non-finite vectors (a model
that diverged) are refused: no index is written from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.data.sequences import pad_left

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.data.dataset import Dataset

MODALITIES = ("user_text", "item_text", "image")


def export_index(
    model,
    dataset: "Dataset",
    folder: Path,
    *,
    home: Path | None = None,
    extra: dict[str, Any] | None = None,
    inputs: dict[str, str] | None = None,
    device: "torch.device | str" = "cpu",
    batch_size: int = 512,
    tie_orders: int = 1,
) -> Path:
    """Write user_vecs.npy, item_vecs.npy, blocks.json, gates.npz into ``folder`` as a store artifact.

    Row u of user_vecs is the user vector from the user's FULL history (averaged over
    ``tie_orders`` orders of its same-timestamp items, see ranking.TieOrderAverage); row 0 of
    both is zero. Users of similar history length share a batch padded to its longest row (the
    states do not depend on the padding width), and vectors and gate weights come from one pass.
    """
    import torch

    from ur4rec_cli.console import make_progress
    from ur4rec_cli.ranking import with_tie_orders
    from ur4rec_cli.store import ArtifactStore

    model.eval()
    max_len = int(model.max_len)
    n_users = dataset.n_users
    users = np.arange(1, n_users + 1, dtype=np.int64)
    has_gates = hasattr(model, "gate_weights")
    scorer = with_tie_orders(model, dataset, "full", tie_orders)
    with torch.inference_mode(), make_progress() as progress:  # off a terminal: a line every 30 s
        task = progress.add_task(f"exporting user vectors ({tie_orders} order{'s' if tie_orders > 1 else ''})", total=n_users)
        items = model.item_vectors().float().cpu().numpy().astype(np.float32)
        items[0] = 0.0
        user_vecs = np.zeros((n_users + 1, items.shape[1]), dtype=np.float32)
        n_mod = len(MODALITIES)
        sub = int(model.args.sub_experts) if has_gates else 1
        mod_w = np.zeros((n_users + 1, n_mod), dtype=np.float32)
        exp_w = np.zeros((n_users + 1, n_mod, sub), dtype=np.float32)
        histories = [dataset.history(int(u), "full") for u in users]
        order = np.argsort([len(h) for h in histories], kind="stable")
        for start in range(0, n_users, batch_size):
            idx = order[start : start + batch_size]
            chunk = users[idx]
            width = max(1, min(max_len, max(len(histories[i]) for i in idx)))
            seqs = torch.from_numpy(pad_left([histories[i] for i in idx], width)).to(device)
            ids = torch.from_numpy(chunk).to(device)
            if has_gates:
                vecs, g, w = scorer.user_vectors_and_gates(seqs, ids)
                mod_w[chunk], exp_w[chunk] = g.float().cpu().numpy(), w.float().cpu().numpy()
            else:
                vecs = scorer.user_vectors(seqs, ids)
            user_vecs[chunk] = vecs.float().cpu().numpy()
            progress.advance(task, len(idx))
    bad_users, bad_items = int((~np.isfinite(user_vecs)).any(axis=1).sum()), int((~np.isfinite(items)).any(axis=1).sum())
    if bad_users or bad_items:
        from ur4rec_cli.errors import DivergedError

        raise DivergedError(
            f"the {(extra or {}).get('stage', 'trained')} model gives non-finite vectors ({bad_users} users, {bad_items} items): "
            f"it diverged, and no index was written from it; train it again with a lower train.lr (UR4REC_TRAIN__LR)"
        )
    if has_gates:
        bounds = model.block_bounds()
        active = [m for m in MODALITIES if m in model.args.modalities]
    else:
        bounds = [("sasrec", 0, items.shape[1])]
        active = []
    store = ArtifactStore(home if home is not None else Path(folder).parent)
    with store.write(Path(folder), kind="index", inputs=inputs, extra=extra) as tmp:
        np.save(tmp / "user_vecs.npy", user_vecs)
        np.save(tmp / "item_vecs.npy", items)
        (tmp / "blocks.json").write_text(
            json.dumps({"names": [b[0] for b in bounds], "bounds": [[b[1], b[2]] for b in bounds]}), "utf-8"
        )
        np.savez(tmp / "gates.npz", modality=mod_w, experts=exp_w, modalities=np.array(MODALITIES), active=np.array(active, dtype=str))
    return Path(folder)
