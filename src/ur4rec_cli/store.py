"""Artifact store: folders with a manifest, written to a temp folder and renamed into place.

A folder counts as an artifact only when its ``manifest.json`` parses and every file it lists has
the recorded size and sha256. Anything else (interrupted write, truncated file, hand edit) is
treated as missing and rebuilt. A write refused for want of disk space leaves no temporary file
behind and raises the DiskFullError of ``diskspace.py`` naming the file or artifact folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ur4rec_cli import __version__
from ur4rec_cli.diskspace import disk_full, is_disk_full
from ur4rec_cli.termination import deferred

MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file through a temp file and ``os.replace``: readers see old or new, never half."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        tmp.unlink(missing_ok=True)  # before measuring: the space it held is free again
        raise disk_full(exc, path) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@dataclass
class Manifest:
    """What an artifact is made of and from."""

    kind: str
    files: dict[str, dict[str, Any]]
    inputs: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    created: str = ""

    @property
    def digest(self) -> str:
        """Identity of the artifact's content: downstream artifacts record it as an input."""
        return sha256_json({"kind": self.kind, "files": {k: v["sha256"] for k, v in self.files.items()}})

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "created": self.created,
            "inputs": self.inputs,
            "settings": self.settings,
            "files": self.files,
            "extra": self.extra,
        }


def read_manifest(folder: Path, *, verify: bool = True) -> Manifest | None:
    """The folder's manifest, or ``None`` when it is missing, unreadable or its files don't match."""
    try:
        raw = json.loads((folder / MANIFEST).read_text("utf-8"))
        man = Manifest(
            kind=raw["kind"],
            files=dict(raw["files"]),
            inputs=dict(raw.get("inputs", {})),
            settings=dict(raw.get("settings", {})),
            extra=dict(raw.get("extra", {})),
            version=str(raw.get("version", "")),
            created=str(raw.get("created", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if verify:
        for rel, meta in man.files.items():
            p = folder / rel
            try:
                if p.stat().st_size != meta["size"] or sha256_file(p) != meta["sha256"]:
                    return None
            except (OSError, KeyError, TypeError):
                return None
    return man


class ArtifactStore:
    """The artifact root (``--home``) and its layout."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).expanduser()

    # Layout -------------------------------------------------------------------------------
    def dataset_dir(self, name: str) -> Path:
        return self.home / "datasets" / name

    def features_dir(self, name: str, kind: str) -> Path:
        """kind: ``texts``, ``text_emb`` or ``clip``."""
        return self.home / "features" / name / kind

    def run_dir(self, name: str, run: str) -> Path:
        return self.home / "runs" / name / run

    def cache_dir(self, *parts: str) -> Path:
        """Resumable, append-only caches (LLM answers, posters); not artifacts themselves."""
        return self.home.joinpath("cache", *parts)

    # Artifacts ----------------------------------------------------------------------------
    def load(self, folder: Path, *, kind: str | None = None, verify: bool = True) -> Manifest | None:
        """A valid artifact's manifest (of ``kind`` if given), else ``None``."""
        man = read_manifest(folder, verify=verify)
        if man is None or (kind is not None and man.kind != kind):
            return None
        return man

    @contextmanager
    def write(
        self,
        folder: Path,
        *,
        kind: str,
        inputs: dict[str, str] | None = None,
        settings: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Iterator[Path]:
        """Yield an empty temp folder; on normal exit, write the manifest and rename it into place.

        On an exception the temp folder is removed and any earlier artifact stays as it was. The
        yielded folder may hold an ``extra.json`` (merged into the manifest's ``extra``) instead of
        passing ``extra`` up front.
        """
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f"{_TMP_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            files: dict[str, dict[str, Any]] = {}
            for p in sorted(tmp.rglob("*")):
                if p.is_file() and p.name != MANIFEST:
                    files[p.relative_to(tmp).as_posix()] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
            man = Manifest(
                kind=kind,
                files=files,
                inputs=dict(inputs or {}),
                settings=dict(settings or {}),
                extra=dict(extra or {}),
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            atomic_write_json(tmp / MANIFEST, man.to_json())
            _swap_into_place(tmp, folder)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            # Named by the artifact, not by its temp folder (now removed); another path's error stays as it is.
            if is_disk_full(exc) and str(getattr(exc, "path", tmp)).startswith(str(tmp)):
                raise disk_full(exc, folder) from None
            raise

    def clean_stale(self, older_than_s: float = 3600.0) -> int:
        """Remove temp folders left by killed writers; returns how many."""
        removed = 0
        if not self.home.exists():
            return 0
        now = time.time()
        for p in self.home.rglob(f"{_TMP_PREFIX}*"):
            try:
                if now - p.stat().st_mtime > older_than_s:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                    removed += 1
            except OSError:
                pass
        return removed


def _swap_into_place(tmp: Path, folder: Path) -> None:
    old = None
    with deferred():  # a SIGTERM between the two renames would leave no artifact at all
        if folder.exists():
            old = folder.parent / f"{_TMP_PREFIX}old-{folder.name}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
