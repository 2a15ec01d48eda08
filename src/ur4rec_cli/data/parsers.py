"""Which on-disk format a source is in, and its parser: GroupLens ML-100K and ML-1M
(``grouplens.py``), RecBole atomic files (``atomic.py``); what they share is in ``rawfiles.py``.

Every parser reads from a :class:`FileSet` (a folder, a zip, or a wheel) and returns a
:class:`RawData` in source order. Bad input raises :class:`~ur4rec_cli.errors.DataError` with one
line naming the file and, where it applies, the line number.
"""

from __future__ import annotations

from ur4rec_cli.data.atomic import parse_atomic
from ur4rec_cli.data.grouplens import parse_ml100k, parse_ml1m
from ur4rec_cli.data.rawfiles import FileSet, RawData
from ur4rec_cli.errors import DataError


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
