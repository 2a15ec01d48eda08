#!/usr/bin/env python
"""The cold-item benchmark: ML-100K with a seeded share of items held out of training, every model on both test sets.

    python benchmarks/cold.py [--seeds 0 1 2] [--share 0.2] [--id-dropout P]   # run, write docs/, re-render the page
    python benchmarks/cold.py --render                                         # the page from docs/benchmarks-cold.json
    python benchmarks/cold.py --items-add HOME RUN                             # only time `items add` (100 items) into the figures

One home: `ur4rec data --cold-items SHARE` (cold seed 0; docs/evaluation.md, "cold-item protocol")
and template texts. Per seed, the default job once (`train --stage all --seed S`), then evaluated
under three scoring settings of the unknown items (``ARMS``; `model.cold_*` is applied where the
model scores, nothing is retrained): neighbours off (the same model without the cold machinery:
the shared unknown-item token and the anchor's mean row), the defaults (borrowed from the item's
content neighbours, models/cold_neighbours.py), and a cold-first point (temperature 0.01, scale 1:
about the nearest known items' blocks, unscaled). With ``--id-dropout P`` a further arm trains stages 2-4 with
`train.id_dropout = P` from the same stage 1. SASRec (stage 1) is evaluated once per seed;
popularity and content-KNN learn nothing and are evaluated once. Every `ur4rec evaluate --output`
ranks both test sets of the variant: the warm leave-one-out test (one case per user) and the cold
cases (one per interaction with a cold item).

Per case, NDCG@10 is averaged over seeds; differences get a paired bootstrap 95% CI (10,000
resamples of cases), as in benchmarks/ml100k.py. The figures go to docs/benchmarks-cold.json and
the "Cold items" section of docs/benchmarks.md (re-rendered by benchmarks/ml100k.py --render).
At the end, `ur4rec items add` of 100 new items into a copy of the last seed's run is timed
from a cold process, beside `python -c "import torch"`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "benchmarks-cold.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import ur4rec  # noqa: E402
from ml100k import ndcg10, paired_bootstrap  # noqa: E402
from scale import machine  # noqa: E402


# Scoring settings of the one trained run per seed (model.cold_*: applied where the model scores,
# nothing retrained). "neighbours off" is the same model without the cold machinery: an unknown item
# gets the shared unknown-item token and the anchor's mean row.
ARMS = {
    "UR4Rec V2, neighbours off": {"UR4REC_MODEL__COLD_NEIGHBOURS": "0"},
    "UR4Rec V2": {},
    "UR4Rec V2, cold-first (temperature 0.01, scale 1)": {"UR4REC_MODEL__COLD_TEMPERATURE": "0.01", "UR4REC_MODEL__COLD_SCALE": "1"},
}
OURS, PLAIN, FIRST, KNN = "UR4Rec V2", "UR4Rec V2, neighbours off", "UR4Rec V2, cold-first (temperature 0.01, scale 1)", "content-KNN"


def ranks_of(path: Path) -> np.ndarray:
    return np.array([json.loads(line)["rank"] for line in path.read_text().splitlines()], dtype=np.int64)


def evaluate(home: Path, name: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Warm and cold ranks (file order: users, cases) and metrics of one model."""
    out = home / f"{name}.jsonl"
    ev, wall = ur4rec(home, "evaluate", *args, "--output", str(out), env=env)
    cold = Path(ev["cold"]["output"])
    print(f"  {name}: warm NDCG@10 {ev['metrics']['NDCG@10']:.4f}, cold NDCG@10 {ev['cold']['metrics']['NDCG@10']:.4f} ({wall:.0f} s)", flush=True)
    return {"warm": ranks_of(out), "cold": ranks_of(cold), "warm_metrics": ev["metrics"], "cold_metrics": ev["cold"]["metrics"],
            "eval_s": round(ev["seconds"] + ev["cold"]["seconds"], 1), "description": ev["description"], "cold_description": ev["cold"]["description"]}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix="ur4rec-cold-"))
    t0 = time.perf_counter()
    data, _ = ur4rec(home, "data", "--cold-items", str(args.share))
    ur4rec(home, "llm", "--backend", "template")
    print(f"data: {data['cold_items']} cold items, {data['cold_cases']} cold cases; {data['interactions']} warm interactions", flush=True)
    dropout = f"UR4Rec V2, id_dropout {args.id_dropout:g}"
    models: dict[str, list[dict]] = {"popularity": [], KNN: [], "SASRec (stage 1)": [], **{arm: [] for arm in ARMS}, **({dropout: []} if args.id_dropout else {})}
    models["popularity"].append(evaluate(home, "popularity", "--stage", "popularity"))
    models[KNN].append(evaluate(home, "content-knn", "--stage", "content_knn"))
    walls: dict[str, list[float]] = {"default job": [], **({f"id_dropout {args.id_dropout:g}": []} if args.id_dropout else {})}
    for seed in args.seeds:
        name = f"d0-s{seed}"
        _, wall = ur4rec(home, "train", "--stage", "all", "--seed", str(seed), "--run", name)
        walls["default job"].append(round(wall, 1))
        print(f"seed {seed}: trained in {wall:.0f} s", flush=True)
        models["SASRec (stage 1)"].append(evaluate(home, f"sasrec-s{seed}", "--run", name, "--stage", "pretrain_sasrec"))
        for i, (arm, env) in enumerate(ARMS.items()):
            models[arm].append(evaluate(home, f"{name}-a{i}", "--run", name, env=env))
        if args.id_dropout:  # the same stage 1 (ID dropout starts at stage 2): copied, stages 2-4 trained
            drop = f"d{args.id_dropout:g}-s{seed}"
            runs = next(home.glob("runs/*"))
            shutil.copytree(runs / name / "pretrain_sasrec", runs / drop / "pretrain_sasrec")
            _, wall = ur4rec(home, "train", "--stage", "all", "--resume", "--seed", str(seed), "--run", drop, env={"UR4REC_TRAIN__ID_DROPOUT": str(args.id_dropout)})
            walls[f"id_dropout {args.id_dropout:g}"].append(round(wall, 1))
            models[dropout].append(evaluate(home, drop, "--run", drop))
    items_add = time_items_add(home, f"d0-s{args.seeds[-1]}")
    return {"home": str(home), "data": data, "models": models, "train_wall_s": walls, "total_s": round(time.perf_counter() - t0), "items_add": items_add}


def time_items_add(home: Path, run_name: str, n: int = 100) -> dict:
    """`items add` of ``n`` new items into a copy of a trained run, from a cold process, beside `import torch`."""
    runs = next(home.glob("runs/*"))
    copy = f"{run_name}-items"
    shutil.copytree(runs / run_name, runs / copy, dirs_exist_ok=True)
    genres = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Children's", "Musical", "Western"]
    rows = [f"New Movie Number {i},{1990 + i % 10},{genres[i % 10]}|{genres[(i * 3 + 1) % 10]}" for i in range(n)]
    path = home / "new-items.csv"
    path.write_text("title,year,genres\n" + "\n".join(rows) + "\n", "utf-8")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    torch_s = time.perf_counter() - t0
    added, wall = ur4rec(home, "items", "add", str(path), "--run", copy)
    assert len(added["added"]) == n, added
    print(f"items add of {n} items: {wall:.1f} s (import torch {torch_s:.1f} s)", flush=True)
    return {"items": n, "wall_s": round(wall, 2), "import_torch_s": round(torch_s, 2)}


def items_add_target(add: dict) -> dict:
    return {"target": f"items add of {add['items']} items <= 10 s (from a cold process)",
            "measured": f"{add['wall_s']:.1f} s (import torch alone: {add['import_torch_s']:.1f} s)", "met": bool(add["wall_s"] <= 10)}  # fmt: skip


def summarise(raw: dict, args: argparse.Namespace) -> dict:
    models = raw["models"]
    mean_case = {m: {part: np.mean([ndcg10(r[part]) for r in rs], axis=0) for part in ("warm", "cold")} for m, rs in models.items()}

    def ci(a: str, b: str, part: str) -> dict:
        d, lo, hi = paired_bootstrap(mean_case[a][part] - mean_case[b][part])
        return {"a": a, "b": b, "part": part, "mean": d, "ci95": [lo, hi]}

    pairs = [ci(OURS, KNN, "cold"), ci(FIRST, KNN, "cold"), ci(OURS, PLAIN, "warm"), ci(FIRST, PLAIN, "warm"), ci(PLAIN, "SASRec (stage 1)", "warm")]
    table = {m: {part: {k: [r[f"{part}_metrics"][k] for r in rs] for k in ("NDCG@10", "HR@10", "MRR")} for part in ("warm", "cold")} | {"eval_s": [r["eval_s"] for r in rs]}
             for m, rs in models.items()}  # fmt: skip
    cold_ours, cold_knn = float(np.mean(mean_case[OURS]["cold"])), float(np.mean(mean_case[KNN]["cold"]))
    warm_gap = pairs[2]
    targets = [
        {"target": "cold NDCG@10 >= 2x content-KNN's, CI of the difference above zero",
         "measured": f"{cold_ours:.4f} vs {cold_knn:.4f} (x{cold_ours / max(cold_knn, 1e-12):.2f}); difference CI [{pairs[0]['ci95'][0]:+.4f}, {pairs[0]['ci95'][1]:+.4f}]",
         "met": bool(cold_ours >= 2 * cold_knn and pairs[0]["ci95"][0] > 0)},
        {"target": "warm NDCG@10 within 0.003 of the same model without the cold machinery (neighbours off)",
         "measured": f"{warm_gap['mean']:+.4f} [{warm_gap['ci95'][0]:+.4f}, {warm_gap['ci95'][1]:+.4f}]", "met": bool(warm_gap["mean"] >= -0.003)},
        items_add_target(raw["items_add"]),
    ]  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d"), "machine": machine("cpu"),
        "command": "python benchmarks/cold.py " + " ".join(sys.argv[1:]), "seeds": args.seeds, "share": args.share, "id_dropout": args.id_dropout,
        "arms": ARMS, "data": {k: raw["data"][k] for k in ("name", "items", "interactions", "cold_items", "cold_cases", "cold_cases_dropped", "valid_users")},
        "description": models[OURS][0]["description"], "cold_description": models[OURS][0]["cold_description"],
        "table": table, "pairs": pairs, "targets": targets, "train_wall_s": raw["train_wall_s"], "total_s": raw["total_s"],
        "items_add": raw["items_add"],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--share", type=float, default=0.2, help="share of interacted items made cold (data --cold-items)")
    ap.add_argument("--id-dropout", type=float, default=0.0, help="also train an arm with this train.id_dropout (stages 2-4 from the same stage 1; 0: none)")
    ap.add_argument("--render", action="store_true", help="only re-render docs/benchmarks.md from docs/benchmarks-cold.json")
    ap.add_argument("--items-add", nargs=2, metavar=("HOME", "RUN"), help="only time `items add` in a benchmark home's run and add it to the saved figures")
    args = ap.parse_args()
    if args.items_add:
        figures = json.loads(FIGURES.read_text("utf-8"))
        add = time_items_add(Path(args.items_add[0]), args.items_add[1])
        figures["items_add"] = add
        figures["targets"] = [t for t in figures["targets"] if not t["target"].startswith("items add")] + [items_add_target(add)]
        FIGURES.write_text(json.dumps(figures, indent=1) + "\n", "utf-8")
    elif not args.render:
        save_figures(FIGURES, summarise(run(args), args))
    render_page()


def save_figures(path: Path, figures: dict) -> None:
    """Write a benchmark's figures atomically and print its targets, met or not."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(figures, indent=1) + "\n", "utf-8")
    tmp.replace(path)
    for t in figures["targets"]:
        print(f"{'MET' if t['met'] else 'NOT MET'}: {t['target']}: {t['measured']}")


def render_page() -> None:
    """docs/benchmarks.md again, from every benchmark's saved figures (benchmarks/ml100k.py --render)."""
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ml100k.py"), "--render", str(ROOT / "docs" / "benchmarks.json")], check=True)


if __name__ == "__main__":
    main()
