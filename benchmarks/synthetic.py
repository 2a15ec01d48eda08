#!/usr/bin/env python
"""Seeded synthetic data sets in RecBole's atomic format, for the cost benchmarks (benchmarks/scale.py).

    python benchmarks/synthetic.py OUT_DIR --interactions 1000000 --items 20000 [--users N] [--seed 0]

Writes OUT_DIR/<name>.inter (user_id, item_id, rating, timestamp), <name>.item (title, year,
genres) and <name>.user (age, gender, occupation), which `ur4rec data --source OUT_DIR` reads like
any atomic data set. The shape is ML-100K's scaled up, not a copy of its content:

- item popularity is Zipf-like (exponent 0.9): a head of popular items, a long tail;
- each user has 1-3 favourite genres out of 18; 70% of their items come from those genres, the
  rest from the whole catalogue, both weighted by popularity;
- history lengths are log-normal (median ~0.6 x the mean, at least 5), scaled so that the total is
  exactly ``--interactions``; a user never repeats an item;
- timestamps increase along each history, with ~1 in 4 consecutive pairs sharing a second (as
  ML-100K's same-second ratings do), so the tie-order machinery has work to do.

Everything comes from one numpy Generator seeded by ``--seed``: same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

GENRES = 18
GENRE_NAMES = [f"genre{g:02d}" for g in range(GENRES)]


def generate(out: Path, interactions: int, items: int, users: int | None = None, seed: int = 0, name: str | None = None) -> dict:
    """Write the three atomic files; returns {"name", "users", "items", "interactions", "folder"}."""
    rng = np.random.default_rng(seed)
    users = users or max(10, interactions // 100)
    name = name or out.name
    lengths = _lengths(rng, users, interactions, items)
    item_genre = rng.integers(0, GENRES, items)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity = popularity[rng.permutation(items)]  # popular items spread over ids and genres
    by_genre = [np.flatnonzero(item_genre == g) for g in range(GENRES)]
    genre_cdf = [np.cumsum(popularity[ix]) for ix in by_genre]
    all_cdf = np.cumsum(popularity)

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.inter.tmp"
    t0 = 880_000_000
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for u in range(users):
            n = int(lengths[u])
            favourite = rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False)
            seq = _history(rng, n, favourite, by_genre, genre_cdf, all_cdf)
            steps = np.where(rng.random(n) < 0.25, 0, rng.integers(1, 5000, n))
            times = t0 + int(rng.integers(0, 10**7)) + np.cumsum(steps)
            ratings = rng.integers(1, 6, n)
            f.write("".join(f"{u + 1}\t{i + 1}\t{r}\t{t}\n" for i, r, t in zip(seq.tolist(), ratings.tolist(), times.tolist())))
    os.replace(tmp, out / f"{name}.inter")
    _write(out / f"{name}.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n",
           (f"{i + 1}\tSynthetic item {i + 1}\t{1950 + int(y)}\t{GENRE_NAMES[g]}\n" for i, (g, y) in enumerate(zip(item_genre, rng.integers(0, 70, items)))))
    occupations = ["artist", "doctor", "engineer", "student", "writer", "other"]
    _write(out / f"{name}.user", "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n",
           (f"{u + 1}\t{int(a)}\t{'MF'[int(s)]}\t{occupations[int(o)]}\t00000\n" for u, (a, s, o) in enumerate(zip(rng.integers(15, 70, users), rng.integers(0, 2, users), rng.integers(0, 6, users)))))
    return {"name": name, "users": users, "items": items, "interactions": int(lengths.sum()), "folder": str(out)}


def _lengths(rng: np.random.Generator, users: int, interactions: int, items: int) -> np.ndarray:
    """Log-normal history lengths, >= 5 and < items / 2, summing to exactly ``interactions``."""
    cap = max(5, items // 2)
    raw = rng.lognormal(0.0, 1.0, users)
    lengths = np.clip(np.round(raw / raw.sum() * interactions), 5, cap).astype(np.int64)
    diff = interactions - int(lengths.sum())
    while diff:
        pick = rng.integers(0, users, abs(diff))
        np.add.at(lengths, pick, 1 if diff > 0 else -1)
        lengths = np.clip(lengths, 5, cap)
        diff = interactions - int(lengths.sum())
    return lengths


def _history(rng, n: int, favourite, by_genre, genre_cdf, all_cdf) -> np.ndarray:
    """n distinct items: ~70% from the favourite genres, the rest from anywhere, popularity-weighted."""
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < n:
        want = n - len(chosen) + 2
        fav = rng.random(want) < 0.7
        draws = np.searchsorted(all_cdf, rng.random(want) * all_cdf[-1])
        genres = rng.choice(favourite, size=want)
        for k in np.flatnonzero(fav).tolist():
            g = int(genres[k])
            draws[k] = by_genre[g][np.searchsorted(genre_cdf[g], rng.random() * genre_cdf[g][-1])]
        for i in np.minimum(draws, len(all_cdf) - 1).tolist():
            if i not in seen:
                seen.add(i)
                chosen.append(i)
                if len(chosen) == n:
                    break
    return np.asarray(chosen)


def _write(path: Path, header: str, rows) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header)
        f.writelines(rows)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--interactions", type=int, required=True)
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--users", type=int, default=None, help="default: interactions / 100")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(generate(args.out, args.interactions, args.items, args.users, args.seed))


if __name__ == "__main__":
    main()
