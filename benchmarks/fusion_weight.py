#!/usr/bin/env python
"""Choose the late-fusion weight w on VALIDATION: validation NDCG@10 of stage-1 SASRec + w x content-KNN
for a grid of w, for a run trained with the validation items held out (--select-on-validation, or the
`<run>-select` pass of train.epoch_rule).

    python benchmarks/fusion_weight.py --home DIR --run RUN [--dataset NAME] [--grid 0 1 2 4 8 16 32] [--base final]

``--base`` names the trained model the cosine is added to (``eval.fusion_base``): the stage-1 SASRec
by default, or another stage, or ``final`` (the run's last stage: UR4Rec V2 plus the fixed cosine).

The user vectors of both parts are computed once (the scorer of `evaluate --stage late_fusion`,
evaluation/late_fusion.py, read in its two blocks; same-second history items in file order, one
tie order), then each w is one ranking over every item not in the fed history
(ranking.full_ranking_ranks: pessimistic ties). Prints one line per w and the chosen one (ties:
the smaller w); test is never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


class _Fixed:
    """A scorer over precomputed user vectors [SASRec block, w x KNN block]."""

    def __init__(self, users: np.ndarray, seq: np.ndarray, knn: np.ndarray, items: np.ndarray, w: float) -> None:
        import torch

        self.row = {int(u): i for i, u in enumerate(users)}
        self.vecs = torch.from_numpy(np.concatenate([seq, w * knn], axis=1))
        self.items, self.max_len = torch.from_numpy(items), 1

    def user_vectors(self, histories, users):
        return self.vecs[[self.row[int(u)] for u in users]]

    def item_vectors(self):
        return self.items


def main() -> None:
    import torch

    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.evaluation.content_knn import ContentKNNScorer
    from ur4rec_cli.evaluation.late_fusion import LateFusionScorer
    from ur4rec_cli.features.llm.texts import load_text_embeddings
    from ur4rec_cli.runs import load_stage_model
    from ur4rec_cli.ranking import full_ranking_ranks, metrics_from_ranks
    from ur4rec_cli.settings import load_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--grid", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    ap.add_argument("--base", default="pretrain_sasrec", help="the model the cosine is added to: a stage name or final")
    ap.add_argument("--json", type=Path, default=None, help="write {w: validation NDCG@10} and the choice here")
    args = ap.parse_args()
    from ur4rec_cli.data.current import select_dataset

    settings = select_dataset(load_settings(None, {"home": args.home, "train": {"run": args.run, "device": "cpu"}}), args.dataset)
    dataset, dman = load_dataset(settings)
    item_text = load_text_embeddings(settings, dman)[0]
    base = load_stage_model(settings, None if args.base == "final" else args.base, device="cpu", knn_weight=0.0).model  # the fusion adds content-KNN, once
    raw = LateFusionScorer(base, ContentKNNScorer(item_text), 1.0)
    users = dataset.eval_users()
    seq, knn = [], []
    with torch.inference_mode():
        from ur4rec_cli.data.sequences import pad_left

        for start in range(0, len(users), 256):
            batch = users[start : start + 256]
            fed = [dataset.history(int(u), "valid") for u in batch]
            x = torch.from_numpy(pad_left(fed, max(1, min(raw.max_len, max(len(h) for h in fed)))))
            u = torch.from_numpy(batch)
            seq.append(raw.sasrec.user_vectors(x, u).float().numpy())
            knn.append(raw.knn.user_vectors(x, u).float().numpy())
        items = raw.item_vectors().float().numpy()
    seq_u, knn_u = np.concatenate(seq), np.concatenate(knn)
    scores = {}
    for w in args.grid:
        _, _, ranks = full_ranking_ranks(_Fixed(users, seq_u, knn_u, items, w), dataset, "valid", max_len=1, batch_size=512)
        scores[w] = metrics_from_ranks(ranks, [10])["NDCG@10"]
        print(f"w = {w:g}: validation NDCG@10 {scores[w]:.4f}", flush=True)
    best = max(args.grid, key=lambda w: (scores[w], -w))
    print(f"chosen on validation: w = {best:g}")
    if args.json:
        args.json.write_text(json.dumps({"run": args.run, "base": args.base, "validation_ndcg10": {str(k): v for k, v in scores.items()}, "w": best}) + "\n", "utf-8")


if __name__ == "__main__":
    main()
