#!/usr/bin/env python
"""Choose how the final model scores unknown items, on a DEVELOPMENT cold variant (never the reported one).

    python benchmarks/cold_anchor.py --home DIR --dataset NAME --runs d0 d1 [--scales 0.8 0.9 1.0 1.1] [--json FILE]

NAME is a cold variant made for choosing (``ur4rec data --source PATH --cold-items 0.2 --cold-seed 1``),
each run the default job trained on it. For every run the final model's user vectors are computed
once (warm test users and cold cases, the same tie orders as `evaluate`), then every setting is one
ranking: full ranking over every item not in the fed history, pessimistic ties; the cold cases also
on the new-items shelf (candidates = the cold items). Settings:

- ``neighbours``: the unknown item borrows its ID-side blocks from its item-text neighbours
  (``model.cold_neighbours``, its defaults; ``--neighbours K,T,S ...`` adds other settings);
- ``default + w x KNN`` (``--fusion W ...``): the default's score plus w times content-KNN's cosine
  (evaluation/late_fusion.py's scorer over the cached user vectors);
- ``RULE x s``, neighbours off: the anchor row of an unknown item is made by RULE (``mean`` of
  the known rows, what the model does; its ``own`` row of the stage-1 table ``anchor_table``, which
  a model trained with ``model.content_stage1`` keeps; or its current item ``token``), then its
  ID-side blocks (token and anchor row) are multiplied by s (s < 1 demotes cold items in a warm
  user's list).

The final model is loaded without its own content-KNN block (``model.knn_weight = 0``; the
product's default off ML-100K since lever 49 is ``default + 8 x KNN``), so each row adds it once.
Also printed: the run's stage-1 model and content-KNN on the same cases. Prints one line per run
and setting (NDCG@10 warm / cold / shelf) and the mean over runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


class _Cached:
    """A scorer whose user vectors are computed once per batch of users (item vectors: a setting's)."""

    def __init__(self, scorer) -> None:
        self.scorer, self.max_len, self.cache, self.items = scorer, scorer.max_len, {}, None

    def user_vectors(self, histories, users):
        key = users.cpu().numpy().tobytes()
        if key not in self.cache:
            self.cache[key] = self.scorer.user_vectors(histories, users)
        return self.cache[key]

    def item_vectors(self):
        return self.items if self.items is not None else self.scorer.item_vectors()


def _rank(warm, cold, dataset, view, shelf_absent, max_len):
    from ur4rec_cli.ranking import full_ranking_ranks, full_ranking_ranks_among, metrics_from_ranks

    _, _, w = full_ranking_ranks(warm, dataset, "test", max_len=max_len)
    _, _, (c, s) = full_ranking_ranks_among(cold, view, "test", [None, shelf_absent], max_len=max_len)  # type: ignore[arg-type]
    return [round(metrics_from_ranks(r, [10])["NDCG@10"], 4) for r in (w, c, s)]


def main() -> None:
    import torch

    from ur4rec_cli.data.cold import ColdView, OwnerScorer
    from ur4rec_cli.data.current import select_dataset
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.evaluation.content_knn import ContentKNNScorer
    from ur4rec_cli.evaluation.late_fusion import LateFusionScorer
    from ur4rec_cli.features.llm.texts import load_text_embeddings
    from ur4rec_cli.ranking import with_tie_orders
    from ur4rec_cli.runs import load_stage_model
    from ur4rec_cli.settings import load_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--rules", nargs="+", default=["mean", "own", "token"])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.8, 0.9, 1.0, 1.1])
    ap.add_argument("--neighbours", nargs="*", default=[], help="more neighbour settings, each K,TEMPERATURE,SCALE")
    ap.add_argument("--fusion", type=float, nargs="*", default=[], help="weights w of the default model + w x content-KNN")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    base = select_dataset(load_settings(None, {"home": args.home, "train": {"device": "cpu"}}), args.dataset)
    dataset, dman = load_dataset(base)
    if dataset.cold is None:
        raise SystemExit(f"{args.dataset} is not a cold variant (ur4rec data --cold-items)")
    view, shelf = ColdView(dataset), ColdView(dataset, shelf=True)
    shelf_absent = shelf.absent_items("test")
    orders = base.model.tie_orders
    results: dict[str, dict[str, list[float]]] = {}

    def keep(run: str, label: str, row: list[float]) -> None:
        results.setdefault(label, {})[run] = row
        print(f"{run:>6} {label:<22} warm {row[0]:.4f}  cold {row[1]:.4f}  shelf {row[2]:.4f}", flush=True)

    knn = ContentKNNScorer(load_text_embeddings(base, dman)[0])
    keep("-", "content-KNN", _rank(knn, OwnerScorer(knn, view.owners), dataset, view, shelf_absent, knn.max_len))
    for run in args.runs:
        settings = base.model_copy(update={"train": base.train.model_copy(update={"run": run})})
        stage1 = load_stage_model(settings, "pretrain_sasrec").model
        keep(run, "stage 1", _rank(with_tie_orders(stage1, dataset, "test", orders),
                                   with_tie_orders(OwnerScorer(stage1, view.owners), view, "test", orders), dataset, view, shelf_absent, stage1.max_len))  # fmt: skip
        model = load_stage_model(settings, knn_weight=0.0).model  # the trained model alone: the probe adds content-KNN itself (the "+ w x KNN" rows)
        warm = _Cached(with_tie_orders(model, dataset, "test", orders))
        cold = _Cached(with_tie_orders(OwnerScorer(model, view.owners), view, "test", orders))
        with torch.inference_mode():
            keep(run, "neighbours (default)", _rank(warm, cold, dataset, view, shelf_absent, model.max_len))
            for w in args.fusion:
                keep(run, f"default + {w:g} x KNN", _rank(LateFusionScorer(warm, knn, w), LateFusionScorer(cold, OwnerScorer(knn, view.owners), w), dataset, view, shelf_absent, model.max_len))
            for spec in args.neighbours:
                k, t, sc = spec.split(",")
                model.set_cold_neighbours(int(k), float(t), float(sc))
                keep(run, f"neighbours {k}, {t}, {sc}", _rank(warm, cold, dataset, view, shelf_absent, model.max_len))
            model.set_cold_neighbours(0)
            bounds = model.block_bounds()  # the ID-side blocks, as UR4RecV2's own unknown-item path picks them
            cols = torch.cat([torch.arange(a, b) for name, a, b in bounds if name in ("sasrec", "anchor")])
            unknown = (~model.known).nonzero().squeeze(1)
            start, end = next((a, b) for name, a, b in bounds if name == "anchor")
            plain = model.item_vectors().float()  # neighbours off: the unknown items' anchor rows are the known items' mean
            for rule in args.rules:
                vecs = plain.clone()
                if rule != "mean":  # the item's own row of the stage-1 table, or its current token
                    vecs[unknown, start:end] = (model.anchor_table if rule == "own" else model.item_table()).float()[unknown]
                for s in args.scales:
                    scaled = vecs.clone()
                    scaled[unknown[:, None], cols[None, :]] *= s
                    warm.items = cold.items = scaled
                    keep(run, f"{rule} x {s:g}", _rank(warm, cold, dataset, view, shelf_absent, model.max_len))
            warm.items = cold.items = None
    print("mean over runs:")
    summary = {label: [round(float(np.mean([r[i] for r in rows.values()])), 4) for i in range(3)] for label, rows in results.items()}
    for label, row in summary.items():
        print(f"  {label:<22} warm {row[0]:.4f}  cold {row[1]:.4f}  shelf {row[2]:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"dataset": args.dataset, "runs": args.runs, "results": results, "mean": summary}, indent=1), "utf-8")


if __name__ == "__main__":
    main()
