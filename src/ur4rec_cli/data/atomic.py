"""RecBole atomic files: ``<stem>.inter`` (user_id, item_id, optional rating and timestamp) plus
optional ``.item`` and ``.user`` tables with typed headers (``name:token``), tab-separated UTF-8.

An ``.item`` table may carry any columns: ``data/item_fields.py`` says which role each takes and
reads every row; the catalogue's noun comes from its columns there too. A column named twice in
any header is an error."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ur4rec_cli.data.item_fields import detect_columns, infer_noun, read_item_row
from ur4rec_cli.data.rawfiles import FileSet, RawData, parse_num, read_lines
from ur4rec_cli.errors import DataError


def _atomic_table(fs: FileSet, name: str) -> tuple[list[str], list[str], list[tuple[int, list[str]]]]:
    """Header names, header types and split data rows of one atomic file."""
    lines = read_lines(fs, name, "utf-8")
    head_line, head = lines[0]
    names, types = [], []
    for tok in head.split("\t"):
        if ":" not in tok:
            raise DataError(f"{name} line {head_line}: header column {tok!r} is not name:type (RecBole atomic format)")
        n, t = tok.rsplit(":", 1)
        if n.strip() in names:
            raise DataError(f"{name} line {head_line}: column {n.strip()!r} appears twice in the header")
        names.append(n.strip())
        types.append(t.strip())
    rows = []
    for line, text in lines[1:]:
        parts = text.split("\t")
        if len(parts) < len(names):
            raise DataError(f"{name} line {line}: expected {len(names)} tab-separated columns, found {len(parts)} (missing column?)")
        rows.append((line, parts))
    return names, types, rows


def parse_atomic(fs: FileSet, stem: str | None = None) -> RawData:
    """``<stem>.inter`` (user_id, item_id, optional rating and timestamp) plus optional .item/.user."""
    inters = [n for n in fs.names() if n.endswith(".inter")]
    if stem is None:
        if len(inters) > 1:
            raise DataError(f"{fs.root}: several .inter files ({', '.join(sorted(inters))}); give the path of one")
        stem = inters[0][: -len(".inter")]
    inter = f"{stem}.inter"
    names, _, rows = _atomic_table(fs, inter)
    for col in ("user_id", "item_id"):
        if col not in names:
            raise DataError(f"{inter} line 1: no {col} column in the header")
    if not rows:
        raise DataError(f"{inter}: no interactions (header only)")
    cu, ci = names.index("user_id"), names.index("item_id")
    cr = names.index("rating") if "rating" in names else None
    ct = names.index("timestamp") if "timestamp" in names else None
    users, items = [], []
    ratings = np.ones(len(rows), dtype=np.float32)
    times = np.zeros(len(rows), dtype=np.int64)
    for k, (line, parts) in enumerate(rows):
        u, i = parts[cu].strip(), parts[ci].strip()
        if not u or not i:
            raise DataError(f"{inter} line {line}: empty {'user' if not u else 'item'} id")
        users.append(u)
        items.append(i)
        if cr is not None:
            ratings[k] = parse_num(inter, line, "rating", parts[cr])
        if ct is not None:
            times[k] = int(parse_num(inter, line, "timestamp", parts[ct]))
    files = [inter]

    item_meta: dict[str, dict[str, Any]] = {}
    noun, columns = "item", {}
    if fs.has(f"{stem}.item"):
        files.append(f"{stem}.item")
        item_meta, noun, columns = _atomic_items(fs, f"{stem}.item")
    user_meta: dict[str, dict[str, Any]] = {}
    if fs.has(f"{stem}.user"):
        files.append(f"{stem}.user")
        user_meta = _atomic_meta(fs, f"{stem}.user", "user_id", _user_row)
    return RawData(users, items, ratings, times, item_meta, user_meta, files, cr is not None, "atomic", noun, columns)


def _atomic_items(fs: FileSet, name: str) -> tuple[dict[str, dict[str, Any]], str, dict[str, str]]:
    """(item metadata by raw id, the catalogue's noun, {column: role}) of an ``.item`` table."""
    names, types, rows = _atomic_table(fs, name)
    cols = detect_columns(name, names, types, [parts for _, parts in rows], ("item_id",))
    meta = _rows_by_id(name, "item_id", cols.index("id"), rows, lambda line, parts: read_item_row(name, line, cols, parts))
    return meta, infer_noun(cols), cols.described()


def _atomic_meta(
    fs: FileSet, name: str, key: str, convert: Callable[[str, list[str], list[str], int], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    names, types, rows = _atomic_table(fs, name)
    if key not in names:
        raise DataError(f"{name} line 1: no {key} column in the header")
    return _rows_by_id(name, key, names.index(key), rows, lambda line, parts: convert(name, names, parts, line))


def _rows_by_id(
    name: str, key: str, ck: int, rows: list[tuple[int, list[str]]], read: Callable[[int, list[str]], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each row read into metadata under its id (column ``ck``); an empty id is a one-line error."""
    meta: dict[str, dict[str, Any]] = {}
    for line, parts in rows:
        rid = parts[ck].strip()
        if not rid:
            raise DataError(f"{name} line {line}: empty {key}")
        meta[rid] = read(line, parts)
    return meta


def _user_row(name: str, names: list[str], parts: list[str], line: int) -> dict[str, Any]:
    def col(c: str) -> str | None:
        return parts[names.index(c)].strip() or None if c in names else None

    age = col("age")
    return {
        # Other data sets bucket ages ("18-24"): keep those as text.
        "age": int(age) if age is not None and age.isdigit() else age,
        "gender": col("gender"),
        "occupation": col("occupation"),
    }
