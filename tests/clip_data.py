"""A small synthetic dataset and generated posters for the CLIP tests, written through the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# ML-100K style titles (articles last, alternate titles in parentheses) for the first items.
TITLES = [
    ("Toy Story", 1995, ["Animation", "Children's", "Comedy"]),
    ("GoldenEye", 1995, ["Action", "Adventure", "Thriller"]),
    ("Usual Suspects, The", 1995, ["Crime", "Thriller"]),
    ("Shanghai Triad (Yao a yao yao dao waipo qiao)", 1995, ["Drama"]),
    ("Nowhere Film Nobody Knows", 1994, ["Drama"]),
]


def item_meta(n_items: int) -> dict[str, dict]:
    meta = {}
    for i in range(1, n_items + 1):
        if i <= len(TITLES):
            title, year, genres = TITLES[i - 1]
        else:
            title, year, genres = f"Synthetic Movie {i}", 1980 + i, ["Comedy", "Drama"][: 1 + i % 2]
        meta[str(i)] = {"title": title, "year": year, "genres": genres}
    return meta


def write_dataset(home: Path, name: str = "ml-100k", n_items: int = 20, n_users: int = 6, seed: int = 0):
    """Build a Dataset with build_dataset and store it as the artifact ``name``; returns (dataset, manifest)."""
    from ur4rec_cli.data.dataset import build_dataset
    from ur4rec_cli.store import ArtifactStore

    rng = np.random.default_rng(seed)
    users = [str(u) for u in range(1, n_users + 1) for _ in range(8)]
    items = [str(int(rng.integers(1, n_items + 1))) for _ in users]
    ds = build_dataset(name, "synthetic", users, items, np.full(len(users), 4.0), np.arange(len(users)), item_meta(n_items), {})
    store = ArtifactStore(home)
    with store.write(store.dataset_dir(name), kind="dataset", extra={"source": "synthetic"}) as tmp:
        ds.save(tmp)
    return ds, store.load(store.dataset_dir(name), kind="dataset")


def write_image(path: Path, seed: int, size: tuple[int, int] = (48, 64)) -> Path:
    """A random RGB picture in the format the suffix names."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path
