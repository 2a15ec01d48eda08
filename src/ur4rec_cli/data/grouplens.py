"""The GroupLens formats: ML-100K (``u.data``, ``u.item``, ``u.user``, ``u.info``) and ML-1M
(``ratings.dat``, ``movies.dat``, ``users.dat``), ISO-8859-1 text."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ur4rec_cli.data.rawfiles import FileSet, RawData, parse_int, parse_num, read_lines, split_fields, split_title
from ur4rec_cli.errors import DataError

# u.genre order of the 19 flags at the end of every u.item line.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
# ML-1M users.dat codes its occupation as a number (see the ML-1M README).
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
_DATE_YEAR_RE = re.compile(r"(\d{4})\s*$")


def _ratings_times(
    name: str, rows: list[tuple[int, list[str]]], cols: tuple[int, int, int, int]
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Numeric user/item ids, rating and timestamp out of split rows (GroupLens formats)."""
    cu, ci, cr, ct = cols
    users, items = [], []
    ratings = np.empty(len(rows), dtype=np.float32)
    times = np.empty(len(rows), dtype=np.int64)
    for k, (line, parts) in enumerate(rows):
        users.append(str(parse_int(name, line, "user id", parts[cu])))
        items.append(str(parse_int(name, line, "item id", parts[ci])))
        ratings[k] = parse_num(name, line, "rating", parts[cr])
        times[k] = parse_int(name, line, "timestamp", parts[ct])
    return users, items, ratings, times


def parse_ml100k(fs: FileSet) -> RawData:
    """u.data (tab), u.item (pipe, ISO-8859-1), u.user (pipe); u.info counts are checked if present."""
    rows = []
    for line, text in read_lines(fs, "u.data", "latin-1"):
        parts = text.split("\t")
        if len(parts) == 1:  # tolerate space-separated copies of u.data
            parts = text.split()
        if len(parts) < 4:
            raise DataError(f"u.data line {line}: expected 4 tab-separated columns (user, item, rating, timestamp), found {len(parts)}")
        rows.append((line, parts))
    users, items, ratings, times = _ratings_times("u.data", rows, (0, 1, 2, 3))
    files = ["u.data"]

    item_meta: dict[str, dict[str, Any]] = {}
    if fs.has("u.item"):
        files.append("u.item")
        n_cols = 5 + len(ML100K_GENRES)
        for line, text in read_lines(fs, "u.item", "latin-1"):
            parts = split_fields("u.item", line, text, "|", n_cols, "'|'")
            iid = str(parse_int("u.item", line, "item id", parts[0]))
            if iid in item_meta:
                raise DataError(f"u.item line {line}: duplicate item id {iid}")
            title, year = split_title(parts[1])
            if year is None and (m := _DATE_YEAR_RE.search(parts[2].strip())):
                year = int(m.group(1))
            flags = parts[5 : 5 + len(ML100K_GENRES)]
            if any(f.strip() not in ("0", "1") for f in flags):
                raise DataError(f"u.item line {line}: genre flags must be 0 or 1")
            genres = [g for g, f in zip(ML100K_GENRES, flags) if f.strip() == "1"]
            item_meta[iid] = {"title": title, "year": year, "genres": genres}

    user_meta: dict[str, dict[str, Any]] = {}
    if fs.has("u.user"):
        files.append("u.user")
        for line, text in read_lines(fs, "u.user", "latin-1"):
            parts = split_fields("u.user", line, text, "|", 4, "'|'")
            uid = str(parse_int("u.user", line, "user id", parts[0]))
            if uid in user_meta:
                raise DataError(f"u.user line {line}: duplicate user id {uid}")
            user_meta[uid] = {
                "age": parse_int("u.user", line, "age", parts[1]),
                "gender": parts[2].strip() or None,
                "occupation": parts[3].strip() or None,
            }

    if fs.has("u.info"):
        _check_info(fs, users, items)
    columns = {"movie title": "title (a year in brackets: year)", "release date": "year", "19 genre flags": "genres"} if item_meta else {}
    return RawData(users, items, ratings, times, item_meta, user_meta, files, True, "ml-100k", "movie", columns)


def _check_info(fs: FileSet, users: list[str], items: list[str]) -> None:
    # u.info states the release's counts: a u.data cut at a line boundary is caught here.
    stated = {}
    for _, text in read_lines(fs, "u.info", "latin-1"):
        parts = text.split()
        if len(parts) == 2 and parts[0].isdigit():
            stated[parts[1]] = int(parts[0])
    if "ratings" in stated and stated["ratings"] != len(users):
        raise DataError(f"u.data: {len(users):,} interactions but u.info says {stated['ratings']:,} (truncated file?)")
    if "users" in stated and stated["users"] < len(set(users)):
        raise DataError(f"u.data: {len(set(users)):,} users but u.info says {stated['users']:,}")
    if "items" in stated and stated["items"] < len(set(items)):
        raise DataError(f"u.data: {len(set(items)):,} items but u.info says {stated['items']:,}")


def parse_ml1m(fs: FileSet) -> RawData:
    """ratings.dat, movies.dat, users.dat: ``::``-separated, ISO-8859-1."""
    rows = [(line, split_fields("ratings.dat", line, text, "::", 4, "'::'")) for line, text in read_lines(fs, "ratings.dat", "latin-1")]
    users, items, ratings, times = _ratings_times("ratings.dat", rows, (0, 1, 2, 3))
    files = ["ratings.dat"]

    item_meta: dict[str, dict[str, Any]] = {}
    if fs.has("movies.dat"):
        files.append("movies.dat")
        for line, text in read_lines(fs, "movies.dat", "latin-1"):
            parts = split_fields("movies.dat", line, text, "::", 3, "'::'")
            iid = str(parse_int("movies.dat", line, "item id", parts[0]))
            if iid in item_meta:
                raise DataError(f"movies.dat line {line}: duplicate item id {iid}")
            title, year = split_title(parts[1])
            genres = [g for g in parts[2].strip().split("|") if g and g != "(no genres listed)"]
            item_meta[iid] = {"title": title, "year": year, "genres": genres}

    user_meta: dict[str, dict[str, Any]] = {}
    if fs.has("users.dat"):
        files.append("users.dat")
        for line, text in read_lines(fs, "users.dat", "latin-1"):
            parts = split_fields("users.dat", line, text, "::", 4, "'::'")
            uid = str(parse_int("users.dat", line, "user id", parts[0]))
            occ = parts[3].strip()
            if occ.isdigit() and int(occ) < len(ML1M_OCCUPATIONS):
                occ = ML1M_OCCUPATIONS[int(occ)]
            user_meta[uid] = {
                "age": parse_int("users.dat", line, "age", parts[2]),  # ML-1M age is a bucket: 1, 18, 25, ...
                "gender": parts[1].strip() or None,
                "occupation": occ or None,
            }
    columns = {"title": "title (a year in brackets: year)", "genres": "genres (a list split on '|')"} if item_meta else {}
    return RawData(users, items, ratings, times, item_meta, user_meta, files, True, "ml-1m", "movie", columns)
