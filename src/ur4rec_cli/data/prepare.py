"""`ur4rec data`: pick a source, verify and parse it, build the split, write the dataset artifact.

A valid artifact made from the same source, filter and ``data.noun`` is served from the store
without parsing anything (manifest check + summary.json), unless ``force``. The data set records
its noun (``data.noun``, else the parser's: data/item_fields.py), whether it has ratings and which
item column took which role (summary.json), so every text made from it uses the same words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ur4rec_cli.console import info, warn
from ur4rec_cli.data import sources
from ur4rec_cli.data.current import record_current
from ur4rec_cli.data.dataset import Dataset, build_dataset
from ur4rec_cli.data.parsers import detect_format, parse
from ur4rec_cli.data.rawfiles import FileSet, RawData
from ur4rec_cli.errors import ArtifactMissingError, ConfigError, DataError, DownloadError
from ur4rec_cli.settings import DataConfig, Settings
from ur4rec_cli.store import ArtifactStore, Manifest, sha256_file

KEYWORDS = ("auto", "grouplens", "mirror")
# Files each format may read, in the order they are parsed; only those present are hashed.
_FORMAT_FILES = {
    "ml-100k": ("u.data", "u.item", "u.user", "u.info"),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
}


def dataset_name(data_cfg: DataConfig) -> str:
    """Store name of the dataset: ``name`` if set, else derived from the source (+ ``-rR`` with min_rating,
    + ``-coldP`` for a cold-item variant)."""
    if data_cfg.name:
        name = data_cfg.name.strip()
        if not name or name in {".", ".."} or re.search(r"[/\\]", name):
            raise ConfigError(f"invalid dataset name {data_cfg.name!r}: use letters, digits, '.', '_' or '-'")
        return name
    source = data_cfg.source.strip()
    if source in KEYWORDS:
        base = "ml-100k" if source == "mirror" else data_cfg.dataset
    else:
        p = Path(source).expanduser()
        base = p.stem if p.suffix.lower() in {".zip", ".inter"} or p.is_file() else p.name
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip(".-") or "dataset"
    if data_cfg.min_rating is not None:
        base += f"-r{data_cfg.min_rating:g}"
    if data_cfg.cold_items:
        from ur4rec_cli.data.cold import cold_suffix

        base += cold_suffix(data_cfg.cold_items, data_cfg.cold_seed)
    return base


@dataclass
class _Served:
    label: str  # "grouplens", "mirror" or "path:<resolved path>"
    fs: FileSet
    fmt: str
    stem: str | None
    inputs: dict[str, str]  # file name -> sha256
    warning: str | None = None  # shown once the content has parsed (a corrupt file gets only its error)


def prepare_data(settings: Settings, force: bool = False) -> dict[str, Any]:
    """Fetch, verify, parse and split the data set into the store; returns the summary dict."""
    name = dataset_name(settings.data)
    store = ArtifactStore(settings.home)
    folder = store.dataset_dir(name)
    source = settings.data.source.strip()
    local = _open_path(source) if source not in KEYWORDS else None
    if not force:
        hit = _from_store(store, folder, settings, local)
        if hit is not None:
            if local is not None:
                local.fs.close()
            info(f"dataset {name} served from the store ({folder}); --force rebuilds it")
            record_current(settings.home, name)
            return hit
    served = local if local is not None else _fetch(settings)
    try:
        raw = parse(served.fs, served.fmt, served.stem)
    finally:
        served.fs.close()
    if served.warning:
        warn(served.warning)
    dataset = _build(name, served.label, raw, settings.data.min_rating, settings.data.noun)
    cold = _cold_key(settings)
    if cold is not None:
        from ur4rec_cli.data.cold import split_cold

        dataset = split_cold(dataset, *cold)
        c = dataset.cold
        info(f"cold-item protocol: {len(c.items):,} cold items ({cold[0]:g} of the interacted ones, seed {cold[1]}), "
             f"{len(c.targets):,} cold test cases ({c.dropped:,} without an earlier warm item left out)")  # fmt: skip
    extra = {"source": served.label, "format": served.fmt, "min_rating": settings.data.min_rating, "cold": cold}
    with store.write(folder, kind="dataset", inputs=served.inputs, settings=settings.slice("data"), extra=extra) as tmp:
        dataset.save(tmp)
    info(f"dataset {name} written to {folder}")
    record_current(settings.home, name)
    return {**dataset.summary(), "name": name, "source": served.label, "cached": False, "path": str(folder)}


def load_dataset(settings: Settings) -> tuple[Dataset, Manifest]:
    """The dataset artifact of the configured data settings; ArtifactMissingError when missing or corrupt."""
    name = dataset_name(settings.data)
    folder = ArtifactStore(settings.home).dataset_dir(name)
    man = ArtifactStore(settings.home).load(folder, kind="dataset")
    if man is None:
        raise ArtifactMissingError(f"no dataset artifact {name!r} in {folder.parent} (missing or corrupt): run `ur4rec data` first")
    try:
        dataset = Dataset.load(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactMissingError(f"dataset artifact {folder} is unreadable ({exc}): run `ur4rec data --force`") from None
    if settings.data.noun is not None and settings.data.noun != dataset.noun:
        raise ArtifactMissingError(f"the data set {name} was prepared with the noun {dataset.noun!r}, not data.noun {settings.data.noun!r}: "
                                   "run `ur4rec data` to remake it")  # fmt: skip
    return dataset, man


def ensure_dataset(settings: Settings) -> tuple[Dataset, Manifest]:
    """Load the dataset artifact, preparing it with the configured data settings when missing."""
    try:
        return load_dataset(settings)
    except ArtifactMissingError:
        prepare_data(settings)
        return load_dataset(settings)


# Store -----------------------------------------------------------------------------------------
def _from_store(store: ArtifactStore, folder: Path, settings: Settings, local: _Served | None) -> dict[str, Any] | None:
    man = store.load(folder, kind="dataset")
    if man is None:
        return None
    recorded = man.extra.get("source", "")
    if man.extra.get("min_rating") != settings.data.min_rating:
        return None
    if (man.settings.get("data") or {}).get("noun") != settings.data.noun:
        return None  # another noun is other texts: the data set is remade with it
    cold = _cold_key(settings)
    if (list(cold) if cold else None) != man.extra.get("cold"):
        return None
    source = settings.data.source.strip()
    if local is not None:
        if recorded != local.label or man.inputs != local.inputs:
            return None
    elif source != "auto" and recorded != source:
        return None
    try:
        summary = json.loads((folder / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if man.extra.get("format") == "atomic" and "item_columns" not in summary and recorded != "mirror":
        warn(f"{folder.name} was prepared by an older version that read only the title, year and genres of its items "
             "and worded every text for movies: `ur4rec data --force` reads every item column")  # fmt: skip
    return {**summary, "name": folder.name, "source": recorded, "cached": True, "path": str(folder)}


def _cold_key(settings: Settings) -> tuple[float, int] | None:
    """(share, seed) of the cold-item variant the settings ask for, or None."""
    return (float(settings.data.cold_items), int(settings.data.cold_seed)) if settings.data.cold_items else None


# Sources ---------------------------------------------------------------------------------------
def _fetch(settings: Settings) -> _Served:
    source = settings.data.source.strip()
    tries = [source] if source != "auto" else ["grouplens", "mirror"]
    if source == "auto" and settings.data.dataset != "ml-100k":
        tries = ["grouplens"]  # the mirror ships ML-100K only
    failures: list[str] = []
    for kind in tries:
        try:
            path = sources.fetch_grouplens(settings) if kind == "grouplens" else sources.fetch_mirror(settings)
        except DataError as exc:
            if len(tries) == 1:
                raise
            failures.append(f"{kind} failed: {exc}")
            continue
        why = f" ({'; '.join(failures)})" if failures else ""
        info(f"source: {kind}{why}")
        prefix = sources.MIRROR_PREFIX if kind == "mirror" else ""
        fs = FileSet(path, prefix=prefix)
        fmt = "atomic" if kind == "mirror" else detect_format(fs)
        stem = sources.MIRROR_STEM if kind == "mirror" else None
        return _Served(kind, fs, fmt, stem, {path.name: sha256_file(path)})
    raise DownloadError(f"no source could serve {settings.data.dataset}: {'; '.join(failures)}")


def _open_path(source: str) -> _Served:
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise DataError(f"data source not found: {path} (expected auto, grouplens, mirror, or a path)")
    stem = None
    if path.is_file() and path.suffix == ".inter":
        fs, fmt, stem = FileSet(path.parent), "atomic", path.stem
    else:
        fs = FileSet(path)
        try:
            fmt = detect_format(fs)
        except DataError:
            fs.close()
            raise
    warning = None
    if path.is_file() and path.suffix != ".inter":
        digest = sha256_file(path)
        pinned = sources.PINNED.get(path.name)
        if pinned is not None and digest != pinned["sha256"]:
            # A local copy is validated by content; the official hash is only a hint.
            warning = f"{path.name}: sha256 differs from the official GroupLens file; its content checked out"
        inputs = {path.name: digest}
    else:
        if fmt == "atomic":
            stem = stem or next(n for n in fs.names() if n.endswith(".inter"))[: -len(".inter")]
            names = [f"{stem}.{ext}" for ext in ("inter", "item", "user")]
        else:
            names = list(_FORMAT_FILES[fmt])
        inputs = {n: sha256_file(fs.root / n) for n in names if fs.has(n)}
    return _Served(f"path:{path}", fs, fmt, stem, inputs, warning)


# Build -----------------------------------------------------------------------------------------
def _build(name: str, label: str, raw: RawData, min_rating: float | None, noun: str | None = None) -> Dataset:
    main_file = raw.files[0]
    users = np.asarray(raw.users, dtype=object)
    items = np.asarray(raw.items, dtype=object)
    ratings, times = raw.ratings, raw.times
    if min_rating is not None:
        if not raw.has_rating:
            raise DataError(f"{main_file}: no rating column, so --min-rating cannot apply")
        keep = ratings >= min_rating
        if not keep.any():
            raise DataError(f"{main_file}: no interaction has a rating >= {min_rating:g}")
        users, items, ratings, times = users[keep], items[keep], ratings[keep], times[keep]
        info(f"--min-rating {min_rating:g}: kept {int(keep.sum()):,} of {len(keep):,} interactions")

    present_users = set(users.tolist())
    present_items = set(items.tolist())
    if raw.item_meta:
        missing = present_items - raw.item_meta.keys()
        if missing:
            warn(f"{main_file}: {len(missing):,} item ids have no metadata in {raw.files[1]} (empty title and genres)")
    user_file = next((f for f in raw.files if f.endswith(("u.user", "users.dat", ".user"))), None)
    if raw.user_meta:
        missing = present_users - raw.user_meta.keys()
        if missing:
            warn(f"{main_file}: {len(missing):,} user ids have no row in {user_file} (empty profile)")
    # A user without interactions has no sequence to learn from or evaluate: left out.
    user_meta = {u: m for u, m in raw.user_meta.items() if u in present_users}
    if len(user_meta) < len(raw.user_meta):
        info(f"{len(raw.user_meta) - len(user_meta):,} users in {user_file} have no interactions; left out")
    dataset = build_dataset(name, label, users, items, ratings, times, raw.item_meta, user_meta,
                            noun=noun or raw.noun, has_rating=raw.has_rating, item_columns=raw.item_columns)  # fmt: skip
    if not dataset.eval_users().size:
        raise DataError(
            f"{main_file}: no user has the 3 interactions leave-one-out needs (train, validation, test); "
            f"{dataset.n_users:,} users, {dataset.n_interactions:,} interactions: nothing could be evaluated"
        )
    return dataset
