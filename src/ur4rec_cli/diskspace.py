"""A full disk is a resource problem, not a bug: every writer turns ENOSPC, EDQUOT and EFBIG into one
DiskFullError naming the path it was writing, the space left there, and what to do.

The writers (``store.atomic_write_bytes``, ``ArtifactStore.write``, the append-only caches, downloads)
remove their temporary files before raising, so the free space named is what the user really has;
``cli.main`` words any disk-full OSError that escaped them the same way (naming the home).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import IO, Iterator

from ur4rec_cli.errors import DiskFullError

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
RERUN = "rerun the same command"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is a write refused for want of space."""
    return any(isinstance(e, DiskFullError) or _refused(e) for e in _chain(exc))


def _refused(exc: BaseException) -> bool:
    # numpy's ndarray.tofile (np.save) reports a full disk as a short write without an errno:
    # "OSError: 115584 requested and 52192 written".
    short = exc.__class__ is OSError and exc.errno is None and " requested and " in str(exc) and str(exc).endswith(" written")
    return isinstance(exc, OSError) and (exc.errno in DISK_FULL or short)


def free_bytes(path: Path) -> int | None:
    """Bytes free to this user on the filesystem of ``path`` (its nearest existing folder), or None."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def human(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def disk_full(exc: BaseException, path: Path | str, then: str = RERUN) -> DiskFullError:
    """The one-line error for a write of ``path`` that ``exc`` refused for want of space."""
    code = next((e.errno for e in _chain(exc) if isinstance(e, OSError) and e.errno in DISK_FULL), errno.ENOSPC)
    why = {errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large for that filesystem"}.get(code, "no space left on device")
    return DiskFullError(
        f"disk full: cannot write {path} ({why}; {human(free_bytes(Path(path)))} free there): free space on that disk, "
        f"or point --home (UR4REC_HOME) at a disk with room; then {then}",
        str(path),
    )


def append_line(fh: IO[str], path: Path, line: str) -> None:
    """Append ``line`` to an open text file and fsync it; on a full disk the file is cut back to what it
    held before (no torn line is left), ``fh`` is closed, and a DiskFullError names ``path``."""
    size = os.fstat(fh.fileno()).st_size  # what is on disk: earlier lines were flushed by their own call
    try:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as exc:
        if not _refused(exc):
            raise
        try:
            fh.close()  # may flush part of the buffer, or fail to: the descriptor is closed either way
        except OSError:
            pass
        os.truncate(path, size)
        raise disk_full(exc, path) from None


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    for _ in range(5):
        if exc is None:
            return
        yield exc
        exc = exc.__cause__ or exc.__context__
