#!/usr/bin/env python
"""Paired comparison of two `ur4rec evaluate --output` rank files (same users): NDCG@10 of each and
the paired bootstrap 95% CI of A − B over users, as the benchmark pages report it.

    python benchmarks/paired.py A.jsonl B.jsonl [--seeds-a A2.jsonl ...] [--seeds-b B2.jsonl ...]

With several files per side (one per seed), each user's NDCG@10 is averaged over that side's files first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml100k import ndcg10, paired_bootstrap, read_ranks  # noqa: E402


def per_user(files: list[Path]) -> tuple[list[str], np.ndarray]:
    ranks = [read_ranks(f) for f in files]
    users = sorted(ranks[0])
    return users, np.mean([ndcg10(np.array([r[u] for u in users])) for r in ranks], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--seeds-a", nargs="*", type=Path, default=[], help="more files of side A (other seeds)")
    ap.add_argument("--seeds-b", nargs="*", type=Path, default=[], help="more files of side B (other seeds)")
    args = ap.parse_args()
    users_a, a = per_user([args.a, *args.seeds_a])
    users_b, b = per_user([args.b, *args.seeds_b])
    if users_a != users_b:
        raise SystemExit("the two sides rank different users")
    mean, lo, hi = paired_bootstrap(a - b)
    print(f"A NDCG@10 {a.mean():.4f}  B NDCG@10 {b.mean():.4f}  A/B x{a.mean() / max(b.mean(), 1e-12):.3f}  "
          f"A - B {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] (paired bootstrap 95% CI, 10,000 resamples of {len(a):,} users)")  # fmt: skip


if __name__ == "__main__":
    main()
