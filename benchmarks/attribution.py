#!/usr/bin/env python
"""Which part of UR4Rec V2 makes its tail-item gain and which its head-item loss (ML-100K, standard test).

    python benchmarks/attribution.py [--seeds 0 1 2]                       # train the default job per seed, then the ablations
    python benchmarks/attribution.py --home H --runs-prefix ab-B- [--seeds 0 1 2]   # reuse default-job runs ab-B-0.. in home H
    python benchmarks/attribution.py --render                              # the page from docs/benchmarks-attribution.json

Per seed, one default job (`train --stage all --seed S`) gives two rows: SASRec (stage 1), i.e.
stages 2-4 off, and UR4Rec V2 (final). Each ablation copies that run's stage-1 checkpoint and
trains stages 2-4 again, with one part switched off: each modality the run's model reads
(`--modalities` without it) and the content adaptor (`model.item_adaptor = false`). Two rows need
no training (benchmarks/anchor_rows.py): the final model without its frozen stage-1 SASRec
(`model.sasrec_anchor`), and the control, two seeds' ID-only stage-1 SASRecs mixed as the anchor
mixes. Every row is ranked on the test split: full ranking, pessimistic ties, 8 tie orders
(`ur4rec evaluate --output`, or the same ranking code in process).

Test cases are cut by the target item's training-interaction count, exactly as `evaluate`'s
slices (`evaluation/slices.py`, `eval.popularity_cuts`). Per case, NDCG@10 is averaged over seeds;
each difference gets a paired bootstrap 95% CI over the cases of a slice (10,000 resamples), as in
benchmarks/ml100k.py. "final − ablation" is what the switched-off part adds, slice by slice. The
figures go to docs/benchmarks-attribution.json and the "Attribution" section of docs/benchmarks.md
(re-rendered by benchmarks/ml100k.py --render).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import ur4rec  # noqa: E402
import anchor_rows  # noqa: E402
from ml100k import ndcg10, paired_bootstrap  # noqa: E402
from scale import command_line, machine  # noqa: E402

FIGURES = ROOT / "docs" / "benchmarks-attribution.json"
S1, FINAL = "SASRec (stage 1) = stages 2-4 off", "UR4Rec V2 (final)"
NO_ANCHOR, TWO_SASRECS = "without the SASRec anchor", "two SASRecs, ID only (stage 1 of two seeds)"
BASELINE_NDCG10 = 0.1196  # the 3-seed final NDCG@10 of docs/benchmarks.md (2026-12-02) that issue 22 must not fall below


def evaluate(home: Path, run: str, out: Path, stage: str | None = None) -> dict[str, dict]:
    """``evaluate --output`` of one model: {user: {"target": raw item id, "rank": 0-based rank}}."""
    extra = ["--stage", stage] if stage else []
    ur4rec(home, "evaluate", "--run", run, "--output", str(out), *extra)
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines() if line.strip()]
    return {str(r["user"]): {"target": str(r["target"]), "rank": int(r["rank"])} for r in rows}


def modalities_of(home: Path, dataset: str, run: str) -> list[str]:
    """The modalities the run's final model reads (its ``present`` buffer)."""
    from ur4rec_cli.models.ur4rec import MODALITIES
    from ur4rec_cli.runs import read_checkpoint

    present = read_checkpoint(home / "runs" / dataset / run / "end_to_end" / "best.pt")["state_dict"]["present"]
    return [m for m, on in zip(MODALITIES, present.tolist()) if on]


def ablate(home: Path, dataset: str, base: str, name: str, seed: int, args: list[str], env: dict[str, str]) -> float:
    """Stages 2-4 again from ``base``'s stage 1 with a part off; returns the train wall."""
    run = f"{base}-{name}"
    dst = home / "runs" / dataset / run
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(home / "runs" / dataset / base / "pretrain_sasrec", dst / "pretrain_sasrec")
    _, wall = ur4rec(home, "train", "--stage", "all", "--resume", "--device", "cpu", "--seed", str(seed), "--run", run, *args, env=env)
    return wall


def measure(args: argparse.Namespace) -> dict:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.evaluation.slices import popularity_slices
    from ur4rec_cli.settings import Settings

    t0 = time.perf_counter()
    home = args.home or Path(tempfile.mkdtemp(prefix="ur4rec-attr-"))
    work = Path(tempfile.mkdtemp(prefix="ur4rec-attr-ranks-"))
    if args.home is None:
        ur4rec(home, "data")
        ur4rec(home, "llm", "--backend", "template")
    dataset = json.loads((home / "current-dataset.json").read_text("utf-8"))["dataset"]
    data = Dataset.load(home / "datasets" / dataset)
    orders = Settings().model.tie_orders
    per: dict[str, list[dict]] = {}
    walls: dict[str, list[float]] = {}
    ablations: list[str] = []
    for seed in args.seeds:
        base = f"{args.runs_prefix}{seed}"
        if not (home / "runs" / dataset / base / "end_to_end" / "manifest.json").is_file():
            _, wall = ur4rec(home, "train", "--stage", "all", "--device", "cpu", "--seed", str(seed), "--run", base)
            walls.setdefault(FINAL, []).append(round(wall, 1))
        per.setdefault(S1, []).append(evaluate(home, base, work / f"{base}-s1.jsonl", "pretrain_sasrec"))
        per.setdefault(FINAL, []).append(evaluate(home, base, work / f"{base}-final.jsonl"))
        if anchor_rows.anchor_weight(home, dataset, base) > 0:
            per.setdefault(NO_ANCHOR, []).append(anchor_rows.without_anchor(home, data, dataset, base, orders))
        mods = modalities_of(home, dataset, base)
        arms = [(f"without {m}", f"no-{m}", ["--modalities", ",".join(x for x in mods if x != m)], {}) for m in mods if len(mods) > 1]
        arms.append(("without the content adaptor", "no-adaptor", [], {"UR4REC_MODEL__ITEM_ADAPTOR": "false"}))
        for label, name, extra, env in arms:
            wall = ablate(home, dataset, base, name, seed, extra, env)
            walls.setdefault(label, []).append(round(wall, 1))
            per.setdefault(label, []).append(evaluate(home, f"{base}-{name}", work / f"{base}-{name}.jsonl"))
            if label not in ablations:
                ablations.append(label)
            print(f"seed {seed}: {label}: stages 2-4 {wall:.0f} s, NDCG@10 {ndcg10(np.array([r['rank'] for r in per[label][-1].values()])).mean():.4f}", flush=True)

    bases = [f"{args.runs_prefix}{seed}" for seed in args.seeds]
    weight = anchor_rows.anchor_weight(home, dataset, bases[0])
    if len(bases) > 1:  # the control: two seeds' ID-only stage 1, mixed as the anchor mixes (weight 1 without one)
        per[TWO_SASRECS] = [anchor_rows.two_sasrecs(home, data, dataset, a, b, weight or 1.0, orders) for a, b in zip(bases, bases[1:] + bases[:1])]
    counts = data.item_popularity("train")
    column = {raw: i + 1 for i, raw in enumerate(data.item_ids)}
    users = sorted(per[S1][0])
    targets = np.array([column[per[S1][0][u]["target"]] for u in users])
    cuts = tuple(Settings().eval.popularity_cuts)
    slices = [("all", np.ones(len(users), dtype=bool))] + [(n, m) for n, m in popularity_slices(counts[targets], cuts) if m.any()]
    scores = {label: np.array([[ndcg10(np.array([run[u]["rank"]]))[0] for u in users] for run in runs]) for label, runs in per.items()}
    table = {label: {name: {"mean": float(s[:, mask].mean()), "per_seed": [float(x) for x in s[:, mask].mean(axis=1)]} for name, mask in slices}
             for label, s in scores.items()}  # fmt: skip
    pairs = []
    extra = [m for m in (NO_ANCHOR,) if m in per]
    controls = [m for m in (TWO_SASRECS,) if m in per]
    for a, b in [(FINAL, S1), *((FINAL, abl) for abl in ablations + extra), *((FINAL, c) for c in controls),
                 *((abl, S1) for abl in ablations + extra + controls)]:  # fmt: skip
        diff = scores[a].mean(axis=0) - scores[b].mean(axis=0)
        for name, mask in slices:
            mean, lo, hi = paired_bootstrap(diff[mask])
            pairs.append({"a": a, "b": b, "slice": name, "mean": mean, "ci95": [lo, hi]})
    return {
        "command": command_line(),
        "date": date.today().isoformat(),
        "machine": machine("cpu"),
        "note": args.note,
        "seeds": args.seeds,
        "cuts": list(cuts),
        "cases": {name: int(mask.sum()) for name, mask in slices},
        "models": [S1, *controls, *ablations, *extra, FINAL],
        "anchor": weight,
        "table": table,
        "pairs": pairs,
        "train_wall_s": walls,
        "total_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--home", type=Path, default=None, help="a benchmark home holding default-job runs (default: a fresh one, runs trained here)")
    ap.add_argument("--runs-prefix", default="attr-", help="the default-job run of seed S is PREFIX + S (trained when missing)")
    ap.add_argument("--note", default="nothing else heavy ran", help="what else ran on the machine meanwhile")
    ap.add_argument("--render", action="store_true", help="only re-render docs/benchmarks.md from docs/benchmarks-attribution.json")
    args = ap.parse_args()
    if not args.render:
        figures = measure(args)
        tmp = FIGURES.with_suffix(".tmp")
        tmp.write_text(json.dumps(figures, indent=1) + "\n", "utf-8")
        tmp.replace(FIGURES)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ml100k.py"), "--render", str(ROOT / "docs" / "benchmarks.json")], check=True)


if __name__ == "__main__":
    main()
