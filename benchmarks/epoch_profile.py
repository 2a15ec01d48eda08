#!/usr/bin/env python
"""Where one stage-1 (SASRec) training epoch on ML-100K spends its time, part by part.

    python benchmarks/epoch_profile.py --home H [--epochs 3] [--ops] [--bf16]

H is a home where `ur4rec data` ran. The loop is stage 1's own pieces (``training_pairs`` with a
fresh tie order, ``iterate_batches``, ``SASRec.sequence_loss_inputs``, ``softmax_loss`` as a sum
over a constant, backward, AdamW), timed per part and averaged over the epochs after a warm-up
epoch; ``--bf16`` multiplies the softmax in bfloat16 (``train.bf16_logits = on``); ``--ops`` adds torch's profiler table (self CPU time per operator) of one epoch. It is
what docs/model.md's "CPU epoch profile" quotes; run it alone (2 cores here).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.models.sasrec import SASRec
    from ur4rec_cli.settings import ModelConfig, TrainConfig
    from ur4rec_cli.training.trainer import iterate_batches, positions_per_step, softmax_loss, training_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--ops", action="store_true", help="also print torch.profiler's operator table for one epoch")
    ap.add_argument("--bf16", action="store_true", help="the softmax's matrix products in bfloat16 (train.bf16_logits = on)")
    args = ap.parse_args()
    name = json.loads((args.home / "current-dataset.json").read_text("utf-8"))["dataset"]
    ds = Dataset.load(args.home / "datasets" / name)
    m, t = ModelConfig(), TrainConfig()
    torch.manual_seed(0)
    model = SASRec(ds.n_items, m.max_len, m.hidden, m.layers, m.heads, m.dropout, m.init_std)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=(0.9, 0.98))
    rng = np.random.default_rng(0)

    def epoch(times: dict[str, float]) -> None:
        t0 = time.perf_counter()
        pairs = training_pairs(ds, m.max_len, learn_validation=True, tie_rng=rng)
        per_step = positions_per_step(pairs, -(-len(pairs[0]) // t.batch_size))
        times["data"] += time.perf_counter() - t0
        model.train()
        for users, inputs, targets in iterate_batches(pairs, t.batch_size, rng):
            a = time.perf_counter()
            vecs, items, _ = model.sequence_loss_inputs(inputs, users)
            b = time.perf_counter()
            # bf16 passed only when asked: an older src run through PYTHONPATH has no such argument.
            loss = softmax_loss(vecs, items, targets[inputs != 0], reduction="sum", **({"bf16": True} if args.bf16 else {})) / per_step
            c = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            d = time.perf_counter()
            opt.step()
            e = time.perf_counter()
            for k, v in (("encoder forward", b - a), ("loss forward", c - b), ("backward", d - c), ("optimizer", e - d)):
                times[k] += v
        times["epoch"] += time.perf_counter() - t0

    epoch({k: 0.0 for k in ("data", "encoder forward", "loss forward", "backward", "optimizer", "epoch")})  # warm-up
    times = {k: 0.0 for k in ("data", "encoder forward", "loss forward", "backward", "optimizer", "epoch")}
    for _ in range(args.epochs):
        epoch(times)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seconds per epoch, mean of {args.epochs}:")
    for k, v in times.items():
        print(f"  {k:16s} {v / args.epochs:.3f}")
    if args.ops:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            epoch({k: 0.0 for k in times})
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
