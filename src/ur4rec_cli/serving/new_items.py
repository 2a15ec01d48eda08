"""`ur4rec items add FILE`: items that arrived after training, scored by the trained model's content path.

FILE is either the data set's item format (ML-100K ``u.item``: ``id|Title (year)|date|video|url|``
then 19 genre flags) or a CSV with a header whose columns take their roles by name as in an
``.item`` file (data/item_fields.py: title (required), year, genres/categories/tags, brand,
description, numbers such as price, any other column as ``column: value``), plus ``item_id`` (or
``id``; default: the next free integer) and ``poster`` (an image file, relative to the CSV's folder;
read when the run's model reads images). A new item starts from the catalogue's keys, so its texts
have the catalogue's lines. Every row is checked first; a bad row is one line naming the file,
line and problem, and then nothing is
written. Each new item's description is made as the run's own item texts were
(features/llm/new_items.py: the template text from every field with the data set's noun, or the same LLM
backend and prompt; ``--text template`` forces the template), encoded with the run's
text-embedding model; its vector is ``UR4RecV2.new_item_vectors``: content alone, exactly as a
catalogue item the model never trained on is scored (models/ur4rec.py), with the content-KNN
weight the index was written with. A model that reads images
gets each new item's CLIP feature from the run's own CLIP model (features/images/new_items.py: the
poster, or without one the title prompt, as for catalogue items without an image).

The vectors are appended to the run's exported index (``item_vecs.npy`` grows by one row per new
item, ``added_items.json`` holds their metadata and the text each was scored from, the manifest records each file and its sha256).
The new index is written aside and renamed in (readers see the old index or the new one), under
the run's writer lock. Adding a file twice adds nothing the second time: an item whose id (or,
without an id, whose title and year) is already added is skipped. `recommend` serves added items
like any other; they cannot be part of a `--history` (the sequence model has no token for them).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.errors import ArtifactMissingError, ConfigError, DataError
from ur4rec_cli.store import sha256_file

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings

ADDED = "added_items.json"


def read_item_file(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, problems): rows {"id" (or None), "title", "year", "genres", "line"}; one problem line per bad row."""
    from ur4rec_cli.data.grouplens import ML100K_GENRES
    from ur4rec_cli.data.rawfiles import split_title

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # u.item is ISO-8859-1
    lines = text.splitlines()
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    first = next((ln for ln in lines if ln.strip()), "")
    if "|" in first and "title" not in first.lower():
        n_cols = 5 + len(ML100K_GENRES)
        for no, ln in enumerate(lines, start=1):
            if not ln.strip():
                continue
            parts = ln.split("|")
            if len(parts) != n_cols:
                problems.append(f"{path.name} line {no}: {len(parts)} '|'-separated fields, the u.item format has {n_cols}")
                continue
            flags = [f.strip() for f in parts[5:]]
            if any(f not in ("0", "1") for f in flags):
                problems.append(f"{path.name} line {no}: genre flags must be 0 or 1")
                continue
            title, year = split_title(parts[1])
            rows.append({"id": parts[0].strip() or None, "title": title, "year": year, "line": no,
                         "genres": [g for g, f in zip(ML100K_GENRES, flags) if f == "1"]})  # fmt: skip
    else:
        _read_csv(path, lines, rows, problems)
    if not rows and not problems:
        problems.append(f"{path.name}: no item rows")
    return rows, problems


def _read_csv(path: Path, lines: list[str], rows: list[dict[str, Any]], problems: list[str]) -> None:
    """The CSV's rows into ``rows`` (metadata as data/item_fields.py reads an ``.item`` row, plus "id",
    "poster" and "line"); a bad row is one line in ``problems``. DataError for a bad header."""
    from ur4rec_cli.data.item_fields import detect_columns, read_item_row

    records = [(no, rec) for no, rec in enumerate(csv.reader(lines), start=1) if any(v.strip() for v in rec)]
    if not records:
        return
    (_, header), body = records[0], records[1:]
    cols = detect_columns(path.name, header, [], [rec for _, rec in body], ("item_id", "id"), id_required=False, special=("poster",))
    if cols.index("title") is None:
        raise DataError(f"{path}: neither the u.item format nor a CSV with a title column "
                        f"(title, name or <word>_title; columns: {', '.join(cols.names)})")  # fmt: skip
    at = {role: cols.index(role) for role in ("id", "title", "year", "poster")}

    def cell(rec: list[str], role: str) -> str:
        k = at[role]
        return rec[k].strip() if k is not None and k < len(rec) else ""

    for no, rec in body:
        if not cell(rec, "title"):
            problems.append(f"{path.name} line {no}: empty title")
            continue
        if cell(rec, "year") and not re.search(r"(?<!\d)\d{4}(?!\d)", cell(rec, "year")):
            problems.append(f"{path.name} line {no}: year {cell(rec, 'year')!r} is not a four-digit year")
            continue
        try:
            meta = read_item_row(path.name, no, cols, rec)
        except DataError as exc:  # a number column that holds no number
            problems.append(str(exc))
            continue
        poster, why = _poster(path, cell(rec, "poster"))
        if why:
            problems.append(f"{path.name} line {no}: {why}")
            continue
        rows.append({"id": cell(rec, "id") or None, **meta, "poster": poster, "line": no})


def _poster(csv_path: Path, value: str) -> tuple[str | None, str | None]:
    """(the poster's absolute path or None, why it is unusable or None); relative paths are read from the CSV's folder."""
    if not value:
        return None, None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else csv_path.parent / path
    if not path.is_file():
        return None, f"poster {value!r} not found ({path})"
    try:
        from ur4rec_cli.features.images.clip import open_rgb

        open_rgb(path)
    except Exception as exc:  # PIL raises many kinds for a bad image
        return None, f"poster {value!r} is not a readable image ({type(exc).__name__})"
    return str(path.resolve()), None


def _plan(
    rows: list[dict[str, Any]], catalogue: list[str], added: list[dict[str, Any]], path: Path, schema: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], int, list[str]]:
    """(new items with their ids, how many were already added, problems); ``schema``: the catalogue's
    empty item, whose keys every new item gets first (its prompt then has the catalogue's lines)."""
    in_data = set(catalogue)
    by_id = {a["id"]: a for a in added}
    by_title = {(a["title"], a["year"]) for a in added}
    numeric = [int(i) for i in [*catalogue, *by_id] if i.isdigit()]
    next_id = max(numeric, default=0) + 1
    new, skipped, problems, seen = [], 0, [], set()
    for r in rows:
        meta = {**(schema or {}), **{k: v for k, v in r.items() if k not in ("id", "line", "poster")}}
        if r["id"] is None and (r["title"], r["year"]) in by_title:
            skipped += 1
            continue
        if r["id"] is not None:
            if r["id"] in in_data:
                problems.append(f"{path.name} line {r['line']}: item id {r['id']} is already in the data set's catalogue")
                continue
            if r["id"] in by_id:
                old = {k: by_id[r["id"]].get(k) for k in meta}
                if old == meta:
                    skipped += 1
                else:
                    problems.append(f"{path.name} line {r['line']}: item id {r['id']} was added before as {old['title']!r}")
                continue
            iid = r["id"]
        else:
            while str(next_id) in in_data or str(next_id) in by_id or str(next_id) in seen:
                next_id += 1
            iid = str(next_id)
        if iid in seen:
            problems.append(f"{path.name} line {r['line']}: item id {iid} appears twice in the file")
            continue
        seen.add(iid)
        new.append({"id": iid, **meta, **({"poster": r["poster"]} if r.get("poster") else {})})
    return new, skipped, problems


def add_items(settings: "Settings", path: Path, text: str = "auto") -> dict[str, Any]:
    """Append the items of ``path`` to the run's exported index; returns what was added and skipped."""
    from ur4rec_cli.console import warn
    from ur4rec_cli.data.item_fields import empty_item
    from ur4rec_cli.runlock import command_line, run_lock
    from ur4rec_cli.serving.index import index_folder, load_index, load_serving_data

    if text not in ("auto", "template"):
        raise ConfigError(f"--text must be auto or template, not {text!r}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    rows, problems = read_item_file(path)
    folder = index_folder(settings)
    with run_lock(folder.parent, command_line(), f"run {settings.train.run} ({folder.parent})"):
        data = load_serving_data(settings)
        index = load_index(settings, data)
        schema = empty_item({"first": {k: v for k, v in data.items[0].items() if k != "id"}}) if data.items else None
        new, skipped, more = _plan(rows, data.item_ids[: index.n_trained], index.added, path, schema)
        problems += more
        if problems:
            for line in problems:
                warn(line)
            raise DataError(f"{path}: {len(problems)} bad row{'s' if len(problems) > 1 else ''} (listed above); nothing was added")
        result = {"file": str(path), "added": [a["id"] for a in new], "skipped": skipped, "index": str(folder),
                  "items_in_index": len(data.item_ids) + len(new)}  # fmt: skip
        if not new:
            return result
        vecs, how = _vectors(settings, index, new, text, data.noun)
        _write(settings, folder, index, vecs, index.added + new, {"file": path.name, "sha256": sha256_file(path), "items": len(new)})
        return {**result, "text": how}


def _vectors(settings: "Settings", index: Any, new: list[dict[str, Any]], text: str, noun: str) -> tuple[np.ndarray, str]:
    """Content-only vectors [M, D] of the new items from the run's model and text encoder."""
    import torch

    from ur4rec_cli.data.prepare import dataset_name
    from ur4rec_cli.features import embeddings as E
    from ur4rec_cli.features.llm.new_items import describe_new_items, run_text_spec
    from ur4rec_cli.runs import load_stage_model

    loaded = load_stage_model(settings, index.stage, knn_weight=float(index.extra.get("knn_weight", 0.0)))  # the block as the index was written
    model = loaded.model
    if not hasattr(model, "new_item_vectors"):
        raise ConfigError(f"the run's final stage {loaded.stage} is SASRec alone (IDs only): it has no content path to score new items; train the later stages")
    name, digests = dataset_name(settings.data), loaded.info.get("digests") or {}
    texts, how = describe_new_items(settings, name, run_text_spec(settings, name, digests), new, text, noun=noun)
    for row, description in zip(new, texts):
        row["text"] = description  # kept in added_items.json: what the item was scored from
    encoder, _ = E.load_encoder(settings.llm.embedding_model, settings.llm.device)
    feats = torch.from_numpy(E.encode(encoder, texts, settings.llm.embedding_batch_size).astype(np.float32))
    if feats.shape[1] != model.item_text.shape[1]:
        raise ConfigError(f"the text encoder {settings.llm.embedding_model} gives {feats.shape[1]}-d vectors; the model was trained on {model.item_text.shape[1]}-d ones")
    how, image = f"{how} encoded with {settings.llm.embedding_model}", None
    if bool(model.present[2]):  # the run reads images: the same CLIP model reads the new posters (or title prompts)
        from ur4rec_cli.features.images.new_items import new_item_image_features

        img, img_how = new_item_image_features(settings, name, digests, new)
        image, how = torch.from_numpy(img), f"{how}; images: {img_how}"
    with torch.inference_mode():
        vecs = model.new_item_vectors(feats, image).float().numpy()
    if vecs.shape[1] != index.item_vecs.shape[1]:
        raise ConfigError(f"the index in {index.folder} does not match stage {loaded.stage} of run {settings.train.run}; rerun `ur4rec train`")
    return vecs, how


def _write(settings: "Settings", folder: Path, index: Any, vecs: np.ndarray, added: list[dict[str, Any]], record: dict[str, Any]) -> None:
    """The index with the new rows, written aside and renamed in (store.write)."""
    import shutil

    from ur4rec_cli.store import ArtifactStore

    store = ArtifactStore(settings.home)
    man = store.load(folder, kind="index")
    if man is None:  # pragma: no cover - load_index just read it
        raise ArtifactMissingError(f"the index at {folder} changed while adding items; run the command again")
    extra = {**man.extra, "added_files": [*man.extra.get("added_files", []), record]}
    with store.write(folder, kind="index", inputs=man.inputs, settings=man.settings, extra=extra) as tmp:
        for name in man.files:
            if name not in ("item_vecs.npy", ADDED):
                shutil.copy2(folder / name, tmp / name)
        np.save(tmp / "item_vecs.npy", np.concatenate([index.item_vecs, vecs.astype(np.float32)]))
        (tmp / ADDED).write_text(json.dumps(added, ensure_ascii=False), "utf-8")

