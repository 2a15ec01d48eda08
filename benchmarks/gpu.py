#!/usr/bin/env python
"""GPU benchmark, ready to run in one go on a CUDA machine.

1. `ur4rec train --stage all --device cuda` on ML-100K (wall time per stage, peak GPU memory),
   next to the CPU figure recorded in docs/benchmarks.md.
2. Full-ranking evaluation over a synthetic 200,000-item catalog, item-chunked so that memory
   stays bounded: peak GPU memory against the size of the dense [users x items] score matrix.
3. With ``--scale``: instead of 1-2, the cost-at-scale table of benchmarks/scale.py (synthetic 100k,
   1M and 10M interactions) on CUDA, bf16 autocast (``train.amp``), saved as the "cuda" entry of
   docs/benchmarks-scale.json beside the CPU rows; ``--embedding-model`` names a local MiniLM
   folder on a machine without the model hub.

The GPU machine has no internet: pass --home with a prepared dataset + text embeddings
(`ur4rec data && ur4rec llm` on a machine that has them), or let it fail with one line.

    python benchmarks/gpu.py --home /path/to/home [--device cuda] [--out docs/benchmarks-gpu.md]
    python benchmarks/gpu.py --scale [--sizes 100k 1m 10m] [--batch-size 512] [--embedding-model DIR] [--figures F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_cli(home: Path, *args: str) -> dict:
    cmd = [sys.executable, "-m", "ur4rec_cli", "--home", str(home), *args, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["_wall_s"] = wall
    return out


def synthetic_catalog(device: str, n_items: int, n_users: int, dim: int, batch: int, chunk: int) -> dict:
    import numpy as np
    import torch

    from ur4rec_cli.ranking import ranks_from_vectors

    rng = np.random.default_rng(0)
    dev = torch.device(device)
    items = torch.randn(n_items + 1, dim, device=dev)
    items[0] = 0
    histories = [rng.integers(1, n_items + 1, size=int(rng.integers(5, 200))) for _ in range(n_users)]
    targets = torch.from_numpy(rng.integers(1, n_items + 1, size=n_users)).to(dev)
    users = torch.randn(n_users, dim, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    ranks = []
    with torch.inference_mode():
        for s in range(0, n_users, batch):
            ranks.append(ranks_from_vectors(users[s : s + batch], items, targets[s : s + batch], histories[s : s + batch], item_chunk=chunk))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.type == "cuda" else float("nan")
    return {
        "items": n_items,
        "users": n_users,
        "dim": dim,
        "user_batch": batch,
        "item_chunk": chunk,
        "seconds": wall,
        "users_per_s": n_users / wall,
        "peak_extra_mib": peak,
        "dense_matrix_mib": n_users * (n_items + 1) * 4 / 2**20,
        "ranks_checked": int(torch.cat(ranks).numel()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None, help="ur4rec home with the ML-100K dataset and text embeddings")
    ap.add_argument("--scale", action="store_true", help="run the cost-at-scale table (benchmarks/scale.py) on CUDA instead")
    ap.add_argument("--sizes", nargs="+", default=["100k", "1m", "10m"])
    ap.add_argument("--batch-size", type=int, default=None, help="train.batch_size for --scale")
    ap.add_argument("--max-steps", nargs="*", default=[], metavar="SIZE=N", help="--scale: cut these sizes' epoch after N steps")
    ap.add_argument("--embedding-model", default=None)
    ap.add_argument("--figures", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks-scale.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks-gpu.md"))
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here; run this script on a GPU machine")
    if args.scale:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale import run_scale

        steps = {k: int(v) for k, v in (kv.split("=") for kv in args.max_steps)}
        run_scale(args.sizes, args.device, args.figures, batch=args.batch_size, embedding_model=args.embedding_model, embed=args.sizes, max_steps=steps)
        return
    if args.home is None:
        raise SystemExit("error: --home is required (a home with the ML-100K data set and text embeddings), or pass --scale")
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    lines = [f"# GPU benchmark ({card})", "", f"torch {torch.__version__}, command: `python benchmarks/gpu.py --home HOME --device {args.device}`", ""]

    if not args.skip_train:
        res = run_cli(args.home, "train", "--stage", "all", "--device", args.device, "--run", "gpu-bench")
        lines += ["## train --stage all (ML-100K)", "", "| stage | epochs | wall s | best val NDCG@10 |", "| --- | --- | --- | --- |"]
        for st in res.get("stages", []):
            lines.append(f"| {st.get('stage')} | {st.get('epochs')} | {st.get('wall_s', 0):.1f} | {(st.get('best_val') or {}).get('NDCG@10', float('nan')):.4f} |")
        lines += ["", f"whole command wall time: {res['_wall_s']:.1f} s", ""]
        print(json.dumps(res)[:2000])

    syn = synthetic_catalog(args.device, n_items=200_000, n_users=4096, dim=128, batch=1024, chunk=32768)
    lines += [
        "## Full-ranking evaluation, synthetic 200k-item catalog",
        "",
        "| items | users | dim | user batch | item chunk | seconds | users/s | peak extra GPU MiB | dense score matrix MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {syn['items']:,} | {syn['users']:,} | {syn['dim']} | {syn['user_batch']} | {syn['item_chunk']} | {syn['seconds']:.2f} | {syn['users_per_s']:.0f} | {syn['peak_extra_mib']:.0f} | {syn['dense_matrix_mib']:.0f} |",
        "",
    ]
    print(json.dumps(syn))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", "utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
