#!/usr/bin/env python
"""A/B of two training settings on ML-100K: the default job per seed under each, test NDCG@10 paired per user.

    python benchmarks/ab.py --b train.retriever_recent=20 train.state_cache_orders=4 [--a ...] [--seeds 0 1 2] [--jobs 2]
    python benchmarks/ab.py --a-src OLD/src [--b-src NEW/src]   # two versions of the code, same settings

Each arm runs `ur4rec train --stage all --seed S` (the settings given as UR4REC_* variables, on
top of the defaults) and `ur4rec evaluate --output` in one shared home (data + template texts made
once). ``--a-src`` / ``--b-src``: an arm runs the code of that src folder (e.g. ``git archive REF src``)
instead of the installed one, so a change of code is judged like a change of settings. Per user, NDCG@10 is averaged over seeds, and B − A gets a paired bootstrap 95% CI (10,000
resamples of users), as in benchmarks/ml100k.py. Wall seconds per stage and per command and the
training process's peak RSS are kept,
so one run answers both "is it as good" and "what does it cost". With --jobs 2 two runs share the
machine (one torch thread each); the walls then say so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml100k import cli, ndcg10, paired_bootstrap, read_ranks  # noqa: E402
from scale import machine  # noqa: E402


def env_of(assignments: list[str]) -> dict[str, str]:
    """["train.retriever_recent=20"] -> {"UR4REC_TRAIN__RETRIEVER_RECENT": "20"}."""
    out = {}
    for a in assignments:
        key, _, value = a.partition("=")
        if not value or "." not in key:
            raise SystemExit(f"error: {a!r} is not section.setting=value")
        out["UR4REC_" + key.replace(".", "__").upper()] = value
    return out


def ur4rec(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict, float]:
    """``ur4rec --home HOME ARGS --json`` in its own process: (its JSON result, wall seconds); a failure ends the benchmark."""
    return cli(home, *args, env=env)


def one_run(home: Path, arm: str, seed: int, env: dict[str, str], threads: int | None) -> dict:
    run = f"ab-{arm}-{seed}"
    extra = {**env, **({"UR4REC_TRAIN__NUM_THREADS": str(threads)} if threads else {})}
    train, wall = ur4rec(home, "train", "--stage", "all", "--seed", str(seed), "--run", run, env=extra)
    ranks_file = home / f"{run}.ranks.jsonl"
    ev, _ = ur4rec(home, "evaluate", "--run", run, "--output", str(ranks_file), env=extra)
    print(f"{arm} seed {seed}: {wall:.0f} s, test NDCG@10 {ev['metrics']['NDCG@10']:.4f}", flush=True)
    return {
        "arm": arm, "seed": seed, "wall_s": round(wall, 1), "ndcg10": ev["metrics"]["NDCG@10"],
        "stages": {s["stage"]: s["wall_s"] for s in train["stages"]}, "ranks": read_ranks(ranks_file),
        "peak_rss_mb": max((s.get("peak_rss_mb") or 0.0) for s in train["stages"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="*", default=[], help="settings of arm A (default: the defaults)")
    ap.add_argument("--b", nargs="*", default=[], help="settings of arm B")
    ap.add_argument("--a-src", type=Path, default=None, help="arm A runs the code in this src folder (default: the installed code)")
    ap.add_argument("--b-src", type=Path, default=None, help="arm B runs the code in this src folder (default: the installed code)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="runs side by side (one torch thread each when > 1)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = ap.parse_args()
    if not (args.a or args.b or args.a_src or args.b_src):
        ap.error("nothing differs between the arms: give --a/--b settings or --a-src/--b-src code")
    home = Path(tempfile.mkdtemp(prefix="ur4rec-ab-"))
    ur4rec(home, "data", env={})
    ur4rec(home, "llm", "--backend", "template", env={})
    envs = {"A": env_of(args.a), "B": env_of(args.b)}
    for arm, src in (("A", args.a_src), ("B", args.b_src)):
        if src is not None:
            if not (src / "ur4rec_cli" / "__init__.py").is_file():
                raise SystemExit(f"error: {src} holds no ur4rec_cli package")
            envs[arm]["PYTHONPATH"] = str(src.resolve())
    threads = 1 if args.jobs > 1 else None
    jobs = [(arm, seed) for seed in args.seeds for arm in ("A", "B")]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda j: one_run(home, j[0], j[1], envs[j[0]], threads), jobs))
    per = {arm: [r for r in runs if r["arm"] == arm] for arm in ("A", "B")}
    users = sorted(per["A"][0]["ranks"])
    mean_user = {arm: np.mean([ndcg10(np.array([r["ranks"][u] for u in users])) for r in rs], axis=0) for arm, rs in per.items()}
    diff, lo, hi = paired_bootstrap(mean_user["B"] - mean_user["A"])
    out = {
        "command": "python benchmarks/ab.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
        "machine": machine("cpu"),
        "a": args.a, "b": args.b, "a_src": str(args.a_src or ""), "b_src": str(args.b_src or ""), "seeds": args.seeds, "jobs": args.jobs,
        "ndcg10": {arm: [r["ndcg10"] for r in rs] for arm, rs in per.items()},
        "wall_s": {arm: [r["wall_s"] for r in rs] for arm, rs in per.items()},
        "stage_wall_s": {arm: [r["stages"] for r in rs] for arm, rs in per.items()},
        "peak_rss_mb": {arm: [r["peak_rss_mb"] for r in rs] for arm, rs in per.items()},
        "b_minus_a": {"mean": diff, "ci95": [lo, hi]},
    }
    for arm in ("A", "B"):
        src = args.a_src if arm == "A" else args.b_src
        what = " ".join(args.a if arm == "A" else args.b) or "(defaults)"
        print(f"{arm} {what}{f' [code: {src}]' if src else ''}: NDCG@10 {np.mean(out['ndcg10'][arm]):.4f} "
              f"± {np.std(out['ndcg10'][arm]):.4f}, command wall {np.mean(out['wall_s'][arm]):.0f} s, "
              f"peak RSS {max(out['peak_rss_mb'][arm]) / 1024:.2f} GB")
    print(f"B − A NDCG@10 {diff:+.4f} [{lo:+.4f}, {hi:+.4f}] (paired bootstrap over users, seeds averaged)")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
