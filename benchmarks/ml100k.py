#!/usr/bin/env python
"""The whole pipeline on the real ML-100K, measured, written to docs/benchmarks.md.

    python benchmarks/ml100k.py [--seeds 0 1 2] [--home DIR] [--out docs/benchmarks.md]
    python benchmarks/ml100k.py --render docs/benchmarks.json   # rewrite the page from saved figures

Every step runs the installed CLI in a fresh process (`python -m ur4rec_cli ...`), exactly as a
user would: data (package-index mirror), template texts + MiniLM embeddings, `train --stage all
--device cpu` per seed, one ablation per modality (each modality switched off in turn), then
`evaluate` under full ranking and sampled-100 for popularity, stage-1 SASRec, each ablation and
the final model. Figures are mean ± std over seeds, checked against the project's targets; the
final - SASRec NDCG@10 difference gets a paired bootstrap 95% CI over users (per-user NDCG@10
averaged over seeds). Test is read only here, after training; model selection inside training
used validation only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KS = ("5", "10", "20")
COLS = ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR"]


def cli(home: Path, *args: str, env: dict[str, str] | None = None, json_out: bool = True) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "ur4rec_cli", "--home", str(home), *args] + (["--json"] if json_out else [])
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"`ur4rec {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    lines = proc.stdout.strip().splitlines()
    return (json.loads(lines[-1]) if json_out and lines else {}), wall


def read_ranks(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out[str(row["user"])] = int(row["rank"])
    return out


def ndcg10(ranks: np.ndarray) -> np.ndarray:
    return (ranks < 10) / np.log2(ranks + 2.0)


def paired_bootstrap(diff: np.ndarray, n: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def fmt(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def median_wall(cmd: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--home", type=Path, default=None, help="artifact home (default: a fresh temp folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--render", type=Path, default=None, metavar="JSON", help="rewrite --out from the figures a previous run saved (no training)")
    args = ap.parse_args()
    saved = json.loads(args.render.read_text("utf-8")) if args.render else measure(args)
    md = render(**saved)
    args.out.write_text(md, "utf-8")
    if not args.render:
        args.out.with_suffix(".json").write_text(json.dumps(saved, indent=1) + "\n", "utf-8")
    print(md)


def measure(args: argparse.Namespace) -> dict:
    """Run the whole pipeline; returns the figures ``render`` takes (saved as benchmarks.json)."""
    home = args.home or Path(tempfile.mkdtemp(prefix="ur4rec-bench-"))
    work = Path(tempfile.mkdtemp(prefix="ur4rec-bench-ranks-"))
    t_start = time.perf_counter()
    data, t_data = cli(home, "data")
    print(f"data: {data['users']} users, {data['items']} items, {data['interactions']} interactions via {data['source']} ({t_data:.1f}s)", flush=True)
    llm, t_llm = cli(home, "llm")
    print(f"llm: backend {llm.get('backend')} ({t_llm:.1f}s)", flush=True)

    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    per_user: dict[str, list[dict[str, int]]] = {}
    train_rows = []
    ablations: list[str] = []
    eval_seconds: dict[str, list[float]] = {}

    def record(name: str, protocol: str, metrics: dict[str, float]) -> None:
        slot = results.setdefault(name, {}).setdefault(protocol, {})
        for key in COLS:
            slot.setdefault(key, []).append(metrics[key])

    def evaluate(run: str, label: str, stage: str | None, seed: int) -> None:
        for protocol in ("full", "sampled"):
            ranks = work / f"{label}-{seed}-{protocol}.jsonl"
            extra = ["--stage", stage] if stage else []
            res, _ = cli(home, "evaluate", "--k", *KS, "--protocol", protocol, "--run", run, "--output", str(ranks), *extra)
            record(label, protocol, res["metrics"])
            if protocol == "full":
                eval_seconds.setdefault(label, []).append(res["seconds"])
                per_user.setdefault(label, []).append(read_ranks(ranks))

    for seed in args.seeds:
        run = f"seed{seed}"
        res, wall = cli(home, "train", "--stage", "all", "--device", "cpu", "--seed", str(seed), "--run", run)
        train_rows.append((seed, res, wall))
        print(f"seed {seed}: train --stage all {wall:.1f}s", flush=True)
        modalities = res.get("modalities") or []
        evaluate(run, "SASRec (stage 1)", "pretrain_sasrec", seed)
        evaluate(run, "UR4Rec V2 (final)", None, seed)
        if seed == args.seeds[0]:
            evaluate(run, "popularity", "popularity", seed)
        if args.no_ablations or len(modalities) < 2:
            continue
        name = data["name"]
        for off in modalities:
            keep = [m for m in modalities if m != off]
            arun = f"{run}-no-{off}"
            label = f"without {off}"
            if label not in ablations:
                ablations.append(label)
            # Same seed, same stage-1 SASRec: copy it, then train stages 2-4 with the modality off.
            src = home / "runs" / name / run / "pretrain_sasrec"
            dst = home / "runs" / name / arun / "pretrain_sasrec"
            shutil.rmtree(dst.parent, ignore_errors=True)
            shutil.copytree(src, dst)
            _, awall = cli(home, "train", "--stage", "all", "--resume", "--device", "cpu", "--seed", str(seed), "--run", arun, "--modalities", ",".join(keep))
            print(f"seed {seed}: ablation {label} (stages 2-4) {awall:.1f}s", flush=True)
            evaluate(arun, label, None, seed)

    # Paired bootstrap: final - stage 1, per-user NDCG@10 averaged over seeds.
    users = sorted(per_user["SASRec (stage 1)"][0])
    base = np.mean([[ndcg10(np.array([r[u]]))[0] for u in users] for r in per_user["SASRec (stage 1)"]], axis=0)
    final = np.mean([[ndcg10(np.array([r[u]]))[0] for u in users] for r in per_user["UR4Rec V2 (final)"]], axis=0)
    mean_diff, lo, hi = paired_bootstrap(final - base)

    rec_wall = median_wall([sys.executable, "-m", "ur4rec_cli", "--home", str(home), "recommend", "--user", "42", "--run", f"seed{args.seeds[0]}", "--json"])
    torch_wall = median_wall([sys.executable, "-c", "import torch"])
    help_wall = median_wall([sys.executable, "-m", "ur4rec_cli", "--help"])
    total = time.perf_counter() - t_start

    saved = {
        "seeds": args.seeds,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} CPU ({os.cpu_count()} cores), Python {platform.python_version()}",
        "data": data,
        "t_data": t_data,
        "llm": {"backend": llm.get("backend")},
        "t_llm": t_llm,
        "train_rows": [[seed, {"stages": res.get("stages", [])}, wall] for seed, res, wall in train_rows],
        "results": results,
        "ablations": ablations,
        "boot": [float(mean_diff), float(lo), float(hi)],
        "rec_wall": rec_wall,
        "torch_wall": torch_wall,
        "help_wall": help_wall,
        "total": total,
        "eval_seconds": eval_seconds,
    }
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return saved


# The project's targets (issue 5): test split, full ranking, mean over seeds; cost per seed, worst seed.
TARGETS = [
    ("UR4Rec V2 (final)", "HR@10", "0.23"),
    ("UR4Rec V2 (final)", "NDCG@10", "0.125"),
    ("SASRec (stage 1)", "HR@10", "0.20"),
    ("SASRec (stage 1)", "NDCG@10", "0.11"),
]


def targets(results, boot, train_rows) -> list[str]:
    """One row per target: what it asks, what was measured, met or not."""
    rows = ["| target | measured | met |", "| --- | --- | --- |"]
    for model, metric, bar in TARGETS:
        vals = results.get(model, {}).get("full", {}).get(metric)
        if vals:
            got = statistics.mean(vals)
            rows.append(f"| {model} {metric} ≥ {bar} | {fmt(vals)} | {'yes' if got >= float(bar) else '**no**'} |")
    _, lo, hi = boot
    rows.append(f"| final − SASRec NDCG@10: paired 95% CI above 0 | [{lo:+.4f}, {hi:+.4f}] | {'yes' if lo > 0 else '**no**'} |")
    if train_rows:
        wall = max(w for _, _, w in train_rows)
        rss = max((st.get("peak_rss_mb") or 0) for _, res, _ in train_rows for st in res.get("stages", [])) or float("nan")
        rows.append(f"| `train --stage all --device cpu` ≤ 600 s wall | {wall:.0f} s (slowest seed) | {'yes' if wall <= 600 else '**no**'} |")
        gb = rss * 2**20 / 1e9  # peak_rss_mb is MiB (ru_maxrss / 1024); the target is 3 GB = 3e9 bytes
        rows.append(f"| peak memory ≤ 3 GB | {gb:.2f} GB (largest stage peak RSS) | {'yes' if gb <= 3 else '**no**'} |")
    return rows


def render(seeds, date, machine, data, t_data, llm, t_llm, train_rows, results, ablations, boot, rec_wall, torch_wall, help_wall, total, eval_seconds) -> str:
    seed_list = " ".join(str(s) for s in seeds)
    out = [
        "# Benchmarks",
        "",
        f"Produced by `python benchmarks/ml100k.py --seeds {seed_list}` on {date}, "
        f"{machine}, no GPU. Whole script: {total / 60:.1f} min. "
        "The figures are also saved in benchmarks.json beside this page.",
        "",
        "Protocol: leave-one-out, **test** split, 943 users; *full* = every item not in the user's history is a "
        "candidate, pessimistic ties; *sampled* = 100 uniformly sampled never-interacted negatives (seed 0). "
        "Mean ± std over seeds. See docs/evaluation.md.",
        "",
        f"Data: {data['users']} users, {data['items']} items, {data['interactions']:,} interactions via {data['source']} "
        f"({t_data:.1f} s). Texts: {llm.get('backend', '?')} backend + MiniLM embeddings ({t_llm:.1f} s).",
        "",
        "Texts from a real LLM (`ur4rec llm --backend local`) and UR4Rec V2 trained on them: "
        "[benchmarks-llm.md](benchmarks-llm.md) (`benchmarks/llm_page.py`).",
        "",
        "## Targets",
        "",
        *targets(results, boot, train_rows),
        "",
        "## Test metrics, full ranking",
        "",
        "| model | " + " | ".join(COLS) + " |",
        "| --- | " + " | ".join("---" for _ in COLS) + " |",
    ]
    order = ["popularity", "SASRec (stage 1)", *ablations, "UR4Rec V2 (final)"]
    for name in order:
        if name in results and "full" in results[name]:
            out.append(f"| {name} | " + " | ".join(fmt(results[name]["full"][c]) for c in COLS) + " |")
    out += ["", "## Test metrics, sampled (100 negatives)", "", "| model | HR@10 | NDCG@10 | MRR |", "| --- | --- | --- | --- |"]
    for name in order:
        if name in results and "sampled" in results[name]:
            r = results[name]["sampled"]
            out.append(f"| {name} | {fmt(r['HR@10'])} | {fmt(r['NDCG@10'])} | {fmt(r['MRR'])} |")
    mean_diff, lo, hi = boot
    out += [
        "",
        "## Final − stage-1 SASRec (paired, per user)",
        "",
        f"NDCG@10 difference {mean_diff:+.4f}, paired bootstrap 95% CI [{lo:+.4f}, {hi:+.4f}] "
        "(10,000 resamples of the 943 users; per-user NDCG@10 averaged over seeds).",
        "",
        "## Training cost (`ur4rec train --stage all --device cpu`)",
        "",
        "| seed | stage | epochs | best epoch | best val NDCG@10 | wall s | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for seed, res, wall in train_rows:
        for st in res.get("stages", []):
            out.append(
                f"| {seed} | {st.get('stage')} | {st.get('epochs')} | {st.get('best_epoch')} | "
                f"{(st.get('best_val') or {}).get('NDCG@10', float('nan')):.4f} | {st.get('wall_s', float('nan')):.1f} | {st.get('peak_rss_mb', float('nan')):.0f} |"
            )
        out.append(f"| {seed} | **all four (command wall)** | | | | **{wall:.1f}** | |")
    out += [
        "",
        "## Cold start",
        "",
        "| command | median wall s (5 runs) |",
        "| --- | --- |",
        f"| `ur4rec recommend --user 42` (numpy index, no torch) | {rec_wall:.3f} |",
        f"| `python -c \"import torch\"` | {torch_wall:.3f} |",
        f"| `ur4rec --help` | {help_wall:.3f} |",
        "",
        f"recommend / import torch = {rec_wall / torch_wall:.2f}",
        "",
        "## Evaluation compute (`ur4rec evaluate`, full ranking, test split, all users)",
        "",
        "Seconds spent scoring and ranking (the `seconds` field of `evaluate --json`; model load and process start excluded).",
        "",
        "| model | seconds, mean ± std over seeds |",
        "| --- | --- |",
        *(f"| {name} | {fmt(vals)} |" for name, vals in eval_seconds.items()),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    main()
