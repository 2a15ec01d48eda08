#!/usr/bin/env python
"""How much of the 8 tie orders' encoder work an exact method could share (ML-100K, test histories).

    python benchmarks/tie_prefix.py [--home H] [--orders 8]

`model.tie_orders` averages a user vector over orders of the history's same-second items. SASRec's
attention is causal and its positions count from the newest item, so the orders share exactly the
states of the positions before the first run of same-second items in the window the encoder
reads (the newest `model.max_len` items); every later position differs between orders. This
script reads the prepared data set and prints, over the test users: how many have at least two
distinct windows, where the first same-second run starts (as a share of the window), and the
positions an exact prefix-sharing encoder would compute for all orders, as a multiple of one
order's (attention cost aside). Needs `ur4rec data` in the home; no model, no training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None, help="ur4rec home (default: UR4REC_HOME or the user data folder)")
    ap.add_argument("--orders", type=int, default=8)
    args = ap.parse_args()
    if args.home is not None:
        os.environ["UR4REC_HOME"] = str(args.home)
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import Settings

    settings = Settings()
    dataset, _ = load_dataset(settings)
    width = settings.model.max_len
    starts, windows, tied = [], [], 0
    for u in dataset.eval_users():
        fed = dataset.history(int(u), "test")
        times = dataset.times(int(u))[: len(fed)][-width:]
        same = np.flatnonzero(times[1:] == times[:-1])  # position i ties with i + 1
        starts.append(int(same[0]) if len(same) else len(times))
        windows.append(len(times))
        tied += bool(len(same))
    starts_a, windows_a = np.array(starts), np.array(windows)
    shared = starts_a.sum() + args.orders * (windows_a - starts_a).sum()
    print(f"{dataset.name}: {len(windows)} test users, {tied} with a same-second run in their window (so more than one order)")
    print(f"first same-second run: mean {np.mean(starts_a / windows_a):.3f}, median {np.median(starts_a / windows_a):.3f} of the window")
    print(f"positions computed for {args.orders} orders with exact prefix sharing: {shared / windows_a.sum():.2f}x one order's")


if __name__ == "__main__":
    main()
