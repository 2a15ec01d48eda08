"""Which item column plays which role, recognised by name, and one item row read into metadata.

Used for RecBole ``.item`` files (``data/atomic.py``) and the CSV of `items add`
(``serving/new_items.py``). Names are compared lower-cased, without a RecBole ``:type``; the first
column of a role takes it, a later one is kept as a plain field:

=============  ====================================================================================
role           column names
=============  ====================================================================================
title          title, name, or ``<word>_title`` / ``<word>_name`` (movie_title, book_title, ...)
year           year, date, or ``<word>_year`` / ``<word>_date``: the first four-digit year in the value
genres         genre, genres, class: a list (words before the noun in the template text)
categories     category, categories: a list (a category path such as ``A,B,C`` is one)
tags           tag, tags, keywords: a list
brand          brand, brand_name, manufacturer, maker
description    description, desc, summary, text, overview, plot
number         price, ``<word>_price``, or any RecBole ``float`` column: must be a number
field          every other column: kept as ``column: value`` (a column whose values are all links is
               left out)
=============  ====================================================================================

A list column is split on the separator its values use: of ``|``, ``;`` and ``,`` the one that
occurs in the most values; when none occurs at all, on white space (RecBole's ML-100K ``class``).

Item metadata is a dict with ``title`` and ``year`` always, then only the roles the catalogue has:
``genres``, ``categories``, ``tags`` (lists), ``brand``, ``description`` (str or None) and
``fields`` ({column: number or text}, column order). GroupLens items keep their three keys, so
their metadata (and every text made from it) is what it always was.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ur4rec_cli.data.rawfiles import split_title
from ur4rec_cli.errors import DataError

LIST_ROLES = ("genres", "categories", "tags")
_EXACT = {
    "title": ("title", "name"),
    "year": ("year", "date"),
    "genres": ("genre", "genres", "class"),
    "categories": ("category", "categories"),
    "tags": ("tag", "tags", "keywords"),
    "brand": ("brand", "brand_name", "manufacturer", "maker"),
    "description": ("description", "desc", "summary", "text", "overview", "plot"),
    "number": ("price",),
}
# Checked in this order, so brand_name is a brand before it could be a ``*_name`` title.
_ORDER = ("brand", "genres", "categories", "tags", "description", "number", "title", "year")
_SUFFIXES = {"title": ("_title", "_name"), "year": ("_year", "_date"), "number": ("_price",)}
_SEPARATORS = ("|", ";", ",")
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_READ = {"title", "year", *LIST_ROLES, "brand", "description", "number", "field"}  # id, links, special: not metadata
_LINK = re.compile(r"^(https?|ftp)://\S+$", re.IGNORECASE)


def base_name(column: str) -> str:
    """``"movie_title:token_seq"`` -> ``"movie_title"`` (lower-cased, type dropped)."""
    return column.split(":", 1)[0].strip().lower()


def role_by_name(column: str, rtype: str = "") -> str:
    """The role a column name asks for (``field`` when none; ``rtype``: a RecBole type)."""
    name = base_name(column)
    for role in _ORDER:
        suffixes = _SUFFIXES.get(role, ())
        if name in _EXACT[role] or (suffixes and name.endswith(suffixes)):
            return role
    return "number" if rtype.strip().lower() == "float" else "field"


@dataclass
class ItemColumns:
    """The columns of one item table and the role each took (``id`` for the id column)."""

    names: list[str]  # as written in the header, type dropped
    roles: list[str]  # per column: id, title, year, genres, ..., number, field, links
    separators: dict[int, str | None] = field(default_factory=dict)  # list column -> separator (None: white space)

    def index(self, role: str) -> int | None:
        return self.roles.index(role) if role in self.roles else None

    def described(self) -> dict[str, str]:
        """{column: what it became}, for the data summary (the id column left out)."""
        out = {}
        for k, (name, role) in enumerate(zip(self.names, self.roles)):
            if role == "id":
                continue
            if role in LIST_ROLES:
                sep = self.separators.get(k)
                role = f"{role} (a list split on {repr(sep) if sep else 'white space'})"
            elif role == "field":
                role = "field (kept as 'column: value')"
            elif role == "links":
                role = "left out (links)"
            out[name] = role
        return out


def detect_columns(
    file: str,
    header: list[str],
    types: list[str],
    rows: list[list[str]],
    id_names: tuple[str, ...],
    *,
    id_required: bool = True,
    special: tuple[str, ...] = (),
) -> ItemColumns:
    """Roles of the columns of ``file`` from the header names and, for lists and links, the values;
    a column named in ``special`` (e.g. `items add`'s poster) takes that name as its role.

    DataError (one line) for a column named twice, no id column (when ``id_required``), or a title
    column empty in every row.
    """
    names = [h.split(":", 1)[0].strip() for h in header]
    seen: dict[str, str] = {}
    for name in names:
        if name.lower() in seen:
            raise DataError(f"{file} line 1: column {name!r} appears twice in the header")
        seen[name.lower()] = name
    ids = [k for k, n in enumerate(names) if n.lower() in id_names][:1]
    if not ids and id_required:
        raise DataError(f"{file} line 1: no {' or '.join(id_names)} column in the header")
    roles: list[str] = []
    for k, name in enumerate(names):
        if k in ids:
            role = "id"
        elif name.lower() in special:
            role = name.lower()
        else:
            role = role_by_name(name, types[k] if k < len(types) else "")
        if role not in ("id", "number", "field", *special) and role in roles:
            role = "field"  # a second title, brand, ...: kept as a plain field
        roles.append(role)
    values = [[r[k].strip() for r in rows if k < len(r) and r[k].strip()] for k in range(len(names))]
    cols = ItemColumns(names, roles)
    for k, role in enumerate(roles):
        if role in LIST_ROLES:
            cols.separators[k] = list_separator(values[k])
        elif role == "field" and values[k] and all(_LINK.match(v) for v in values[k]):
            cols.roles[k] = "links"
    t = cols.index("title")
    if t is not None and rows and not values[t]:
        raise DataError(f"{file}: the title column {names[t]!r} is empty in every row")
    return cols


def list_separator(values: list[str]) -> str | None:
    """Of ``|``, ``;`` and ``,`` the one in the most values (ties: that order); None (white space) when none occurs."""
    counts = [sum(sep in v for v in values) for sep in _SEPARATORS]
    best = max(range(len(_SEPARATORS)), key=lambda k: (counts[k], -k))
    return _SEPARATORS[best] if counts[best] else None


def split_list(value: str, sep: str | None) -> list[str]:
    """The list's entries, stripped, empty ones and repeats dropped, order kept."""
    parts = value.split(sep) if sep else value.split()
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def read_item_row(file: str, line: int, cols: ItemColumns, parts: list[str]) -> dict[str, Any]:
    """One row's metadata (module doc); DataError for a value that is not a number in a number column."""
    meta: dict[str, Any] = {"title": None, "year": None}
    for role in ("genres", "categories", "tags"):
        if role in cols.roles:
            meta[role] = []
    for role in ("brand", "description"):
        if role in cols.roles:
            meta[role] = None
    fields: dict[str, Any] = {}
    year_from_column = None
    for k, (name, role) in enumerate(zip(cols.names, cols.roles)):
        value = parts[k].strip() if k < len(parts) else ""
        if role not in _READ or not value:
            continue
        if role == "title":
            meta["title"], meta["year"] = split_title(value)
        elif role == "year":
            m = _YEAR.search(value)
            year_from_column = int(m.group(1)) if m else None
        elif role in LIST_ROLES:
            meta[role] = split_list(value, cols.separators.get(k))
        elif role in ("brand", "description"):
            meta[role] = value
        elif role == "number":
            fields[name] = _number(file, line, name, value)
        else:
            fields[name] = value
    if year_from_column is not None:
        meta["year"] = year_from_column
    meta["title"] = meta["title"] or None
    if any(r in ("number", "field") for r in cols.roles):
        meta["fields"] = fields
    return meta


def _number(file: str, line: int, name: str, value: str) -> float:
    # "$1,299.00" is a price too: a currency sign and thousands commas are read, nothing else.
    text = value[1:] if value[:1] in "$€£" else value
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    try:
        x = float(text)
    except ValueError:
        raise DataError(f"{file} line {line}: non-numeric {name} {value!r}") from None
    if not math.isfinite(x):
        raise DataError(f"{file} line {line}: {name} is not a finite number ({value!r})")
    return x


def format_number(x: float) -> str:
    """12.99 -> ``12.99``, 3.0 -> ``3``: as short as the value is."""
    return format(x, ".15g")


def infer_noun(cols: ItemColumns) -> str:
    """The domain noun of an atomic catalogue: the word before ``_title``/``_name`` of its title column
    (RecBole names MovieLens' ``movie_title``, Book-Crossing's ``book_title``), else ``product`` when it
    has a brand column, else ``item``."""
    t = cols.index("title")
    if t is not None:
        m = re.fullmatch(r"([a-z]+)_(title|name)", cols.names[t].lower())
        if m:
            return m.group(1)
    return "product" if "brand" in cols.roles else "item"


def item_labels(meta: dict[str, Any]) -> list[str]:
    """An item's genres (but "unknown"), categories and tags, each once: what a user's shares count."""
    out = [g for g in (meta.get("genres") or []) if g and g.lower() != "unknown"]
    out += [c for role in ("categories", "tags") for c in (meta.get(role) or []) if c]
    return list(dict.fromkeys(out))


def common_labels(items: list[dict[str, Any]]) -> list[str]:
    """Labels every labelled item carries (a category path's root): they say nothing about a user."""
    sets = [set(item_labels(meta)) for meta in items]
    sets = [s for s in sets if s]
    return sorted(set.intersection(*sets)) if len(sets) > 1 else []


def empty_item(item_meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Metadata of an interacted item the item table lacks: the catalogue's keys, all empty
    (no table at all: title, year and genres, as before)."""
    first = next(iter(item_meta.values()), None)
    if first is None:
        return {"title": None, "year": None, "genres": []}
    return {k: ([] if isinstance(v, list) else {} if isinstance(v, dict) else None) for k, v in first.items()}
