"""Artifact store: atomic writes, corruption detection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ur4rec_cli.store import ArtifactStore, atomic_write_text, read_manifest


def test_write_then_load(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    target = tmp_path / "a" / "x"
    with store.write(target, kind="demo", inputs={"src": "abc"}, settings={"s": 1}) as tmp:
        (tmp / "f.txt").write_text("hello")
        assert not target.exists()
    man = store.load(target, kind="demo")
    assert man is not None and man.inputs == {"src": "abc"} and "f.txt" in man.files
    assert store.load(target, kind="other") is None
    assert [p.name for p in target.parent.iterdir()] == ["x"]


def test_exception_keeps_previous_artifact(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    target = tmp_path / "x"
    with store.write(target, kind="demo") as tmp:
        (tmp / "f.txt").write_text("v1")
    with pytest.raises(RuntimeError):
        with store.write(target, kind="demo") as tmp:
            (tmp / "f.txt").write_text("v2-partial")
            raise RuntimeError("interrupted")
    assert (target / "f.txt").read_text() == "v1"
    assert store.load(target) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete", "manifest"])
def test_damaged_artifact_is_not_trusted(tmp_path: Path, damage: str) -> None:
    store = ArtifactStore(tmp_path)
    target = tmp_path / "x"
    with store.write(target, kind="demo") as tmp:
        (tmp / "f.bin").write_bytes(b"0123456789" * 100)
    f = target / "f.bin"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:500])
    elif damage == "edit":
        f.write_bytes(b"X" + f.read_bytes()[1:])
    elif damage == "delete":
        f.unlink()
    else:
        (target / "manifest.json").write_text("{not json")
    assert store.load(target) is None


def test_killed_writer_leaves_no_artifact(tmp_path: Path) -> None:
    """A process killed in the middle of a write leaves only a temp folder, never a valid-looking artifact."""
    script = (
        "import sys, time; from pathlib import Path; from ur4rec_cli.store import ArtifactStore\n"
        "s = ArtifactStore(Path(sys.argv[1]))\n"
        "with s.write(Path(sys.argv[1]) / 'x', kind='demo') as tmp:\n"
        "    (tmp / 'f').write_text('partial'); print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(tmp_path)
    assert not (tmp_path / "x").exists() and store.load(tmp_path / "x") is None
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers
    old = time.time() - 7200
    for p in leftovers:
        os.utime(p, (old, old))
    assert store.clean_stale() == len(leftovers)


def test_atomic_write_text_replaces(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    atomic_write_text(p, json.dumps({"a": 1}))
    atomic_write_text(p, json.dumps({"a": 2}))
    assert json.loads(p.read_text()) == {"a": 2}
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"]


def test_manifest_records_version_and_hashes(tmp_path: Path) -> None:
    from ur4rec_cli import __version__

    store = ArtifactStore(tmp_path)
    with store.write(tmp_path / "x", kind="demo") as tmp:
        (tmp / "f").write_text("abc")
    raw = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert raw["version"] == __version__ and raw["created"]
    assert raw["files"]["f"]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert read_manifest(tmp_path / "x").digest == read_manifest(tmp_path / "x").digest
