"""A full disk is one line and exit 12 wherever ur4rec writes; nothing half-written; the rerun succeeds.

Two ways in: an OSError(ENOSPC) injected half-way through the write of each writer's file, and a
real small filesystem (a tmpfs) that fills during `train`, freed, then resumed.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ur4rec_cli.diskspace import DISK_FULL  # noqa: E402
from ur4rec_cli.errors import DiskFullError  # noqa: E402
from ur4rec_cli.store import ArtifactStore, read_manifest  # noqa: E402

TRAIN = ["train", "--stage", "pretrain_sasrec", "--epochs", "2", "--device", "cpu", "--modalities", "item_text"]


class _Filling:
    """A file on a disk that fills: a write stores half its bytes, then fails with ENOSPC."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


@pytest.fixture
def fill_disk(monkeypatch: pytest.MonkeyPatch):
    """fill_disk(name, after=0): from the (after+1)-th opening for writing of a file whose name contains
    ``name`` (its temp file's too), every write to it fails half-way with ENOSPC."""
    real = builtins.open
    armed: dict = {}

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real(file, mode, *args, **kwargs)
        if armed and isinstance(file, (str, os.PathLike)) and armed["name"] in Path(file).name and set(mode) & set("wax"):
            armed["seen"] += 1
            if armed["seen"] > armed["after"]:
                return _Filling(fh)
        return fh

    def arm(name: str, after: int = 0) -> None:
        armed.update(name=name, after=after, seen=0)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    return arm


def _sound(home: Path) -> None:
    """Nothing half-written: no temp file left, every artifact's manifest verifies, every checkpoint loads."""
    from ur4rec_cli.runs import read_checkpoint

    assert not [p for p in home.rglob(".tmp-*")], "temp files of the failed write are left"
    for man in home.rglob("manifest.json"):
        assert read_manifest(man.parent) is not None, man.parent
    for pt in home.rglob("*.pt"):
        read_checkpoint(pt)


# (writer, file whose write fails, the command, what the line must name, how many openings succeed first)
WRITERS = [
    ("data set", "interactions.npz", ["data", "--force"], "datasets/toy", 0),
    ("texts", "items.jsonl", ["llm", "--backend", "template", "--no-embed", "--force"], "features/toy/texts", 0),
    ("embeddings", "item_text.npy", ["llm", "--backend", "template", "--force"], "features/toy/text_emb", 0),
    ("checkpoint", "last.pt", TRAIN, "runs/toy/main/pretrain_sasrec/last.pt", 1),
    ("history", "history.jsonl", TRAIN, "runs/toy/main/pretrain_sasrec/history.jsonl", 1),
    ("index", "item_vecs.npy", TRAIN, "runs/toy/main/index", 0),
    ("items add", "item_vecs.npy", ["items", "add", "NEW"], "runs/toy/main/index", 0),
    ("recommend --all", "recs.jsonl", ["recommend", "--all", "--output", "OUT"], "recs.jsonl", 0),
]


@pytest.mark.parametrize("writer, name, args, named, after", WRITERS, ids=[w[0] for w in WRITERS])
def test_injected_enospc_at_each_writer(cli, toy_home: Path, fill_disk, tmp_path: Path, writer: str, name: str, args: list[str], named: str, after: int) -> None:
    home = toy_home
    new = Path(os.environ["UR4REC_DATA__SOURCE"]).with_name("new.csv")
    args = [str(new) if a == "NEW" else str(tmp_path / "recs.jsonl") if a == "OUT" else a for a in args]
    before = {m.parent: read_manifest(m.parent).digest for m in home.rglob("manifest.json")}
    fill_disk(name, after)
    r = cli(*args)
    assert r.code == DiskFullError.exit_code == 12, r
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: disk full: cannot write ") and named in line and "free there" in line, line
    assert "--home" in line and "Traceback" not in r.stderr
    assert ("--resume`" in line) == (args[0] == "train"), line
    _sound(home)
    # What was complete before is unchanged, the failed artifact included (train retrains its stage: its own).
    run = home / "runs" / "toy" / "main"
    kept = {f: d for f, d in before.items() if not (args[0] == "train" and f.parent == run and f.name != "index")}
    assert {f: read_manifest(f).digest for f in kept} == kept
    # Space freed: the same command (train: the printed resume command) succeeds.
    fill_disk("\0never")
    again = line.split("resume with `", 1)[1].split("`", 1)[0].split()[1:] if args[0] == "train" else args
    r = cli(*again)
    assert r.code == 0, r
    _sound(home)


def test_answer_cache_leaves_no_torn_line_and_takes_the_next_answer(tmp_path: Path, fill_disk) -> None:
    """The LLM answer cache (append-only): the failed line is cut back off, and once space is freed appending resumes."""
    from ur4rec_cli.features.llm.cache import AnswerCache

    path = tmp_path / "answers.jsonl"
    cache = AnswerCache(path)
    cache.append({"key": "a", "kind": "item", "text": "first"})
    cache.close()
    before = path.read_bytes()
    cache = AnswerCache(path)
    fill_disk("answers.jsonl")
    with pytest.raises(DiskFullError, match=f"cannot write {path}"):
        cache.append({"key": "b", "kind": "item", "text": "second " * 50})
    assert path.read_bytes() == before
    fill_disk("\0never")
    cache.append({"key": "c", "kind": "item", "text": "third"})
    cache.close()
    assert [json.loads(x)["key"] for x in path.read_text().splitlines()] == ["a", "c"]


@pytest.mark.parametrize("code", sorted(DISK_FULL))
def test_quota_and_file_size_errors_are_disk_full_too(tmp_path: Path, code: int) -> None:
    from ur4rec_cli.diskspace import disk_full

    err = disk_full(OSError(code, os.strerror(code)), tmp_path / "x.pt")
    assert err.exit_code == 12 and str(tmp_path / "x.pt") in str(err) and "free there" in str(err)


def test_numpys_short_write_is_a_full_disk_and_other_oserrors_are_not() -> None:
    """np.save reports a full disk as "N requested and M written", without an errno."""
    from ur4rec_cli.diskspace import is_disk_full

    assert is_disk_full(OSError("115584 requested and 52192 written"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied")) and not is_disk_full(ValueError("1 requested and 0 written"))


def test_an_unnamed_disk_full_oserror_is_named_by_the_home(cli, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    """A writer that does not name its path (the last line of defence in cli.main): the home, exit 12, never exit 70."""
    from ur4rec_cli import api

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(api, "prepare_data", full)
    r = cli("data")
    assert r.code == 12 and f"cannot write {isolated_home} (no space left on device" in r.stderr, r


def _mount_tmpfs(where: Path, size: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_train_on_a_real_small_filesystem_stops_then_resumes(cli, toy_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The home on a tmpfs: the ballast leaves room for one checkpoint and a half; training stops at a
    checkpoint write with one line and exit 12; the ballast removed, the printed command finishes the run."""
    small = tmp_path / "small"
    if not _mount_tmpfs(small, 16 << 20):
        pytest.skip("cannot mount a tmpfs here (needs root and mount): the injected ENOSPC tests cover the writers")
    home = toy_home
    try:
        shutil.copytree(home / "datasets", small / "home" / "datasets")
        shutil.copytree(home / "features", small / "home" / "features")
        shutil.copy(home / "current-dataset.json", small / "home" / "current-dataset.json")
        monkeypatch.setenv("UR4REC_HOME", str(small / "home"))
        checkpoint = (home / "runs" / "toy" / "main" / "pretrain_sasrec" / "last.pt").stat().st_size
        free = shutil.disk_usage(small).free
        ballast = small / "ballast"
        with open(ballast, "wb") as fh:
            fh.write(b"\0" * (free - int(checkpoint * 1.5)))
        args = [*TRAIN[:4], "4", *TRAIN[5:], "--run", "small"]
        r = cli(*args)
        assert r.code == 12, r
        line = r.stderr.strip().splitlines()[-1]
        assert "error: disk full: cannot write " + str(small / "home" / "runs" / "toy" / "small") in line and "free there" in line, line
        _sound(small / "home")
        assert not (small / "home" / "runs" / "toy" / "small" / "index").exists()
        ballast.unlink()  # space freed
        hint = line.split("resume with `", 1)[1].split("`", 1)[0]
        r = cli(*hint.split()[1:], "--json")
        assert r.code == 0, r
        assert json.loads(r.stdout)["stages"][0]["epochs"] == 4
        _sound(small / "home")
        assert np.isfinite(np.load(small / "home" / "runs" / "toy" / "small" / "index" / "item_vecs.npy")).all()
        assert ArtifactStore(small / "home").load(small / "home" / "runs" / "toy" / "small" / "index", kind="index") is not None
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
