"""Downloads, the store cache, atomicity, and the real ML-100K (mirror vs GroupLens format)."""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES
from ur4rec_cli.data import sources
from ur4rec_cli.data.dataset import Dataset
from ur4rec_cli.data.grouplens import ML100K_GENRES
from ur4rec_cli.data.prepare import ensure_dataset, load_dataset, prepare_data
from ur4rec_cli.errors import ArtifactMissingError, ChecksumError
from ur4rec_cli.settings import load_settings
from ur4rec_cli.store import sha256_file


def _zip(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"ml-100k/{p.name}")
    return dest


@pytest.fixture
def server(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (base_url, folder, hits)."""
    www = tmp_path / "www"
    www.mkdir()
    hits: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/movielens", www, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def _grouplens_settings(url: str, **data):
    return load_settings(None, {"data": {"source": "grouplens", "grouplens_url": url, **data}})


def test_download_with_wrong_hash_fails_and_caches_nothing(server, isolated_home: Path) -> None:
    url, www, hits = server
    (www / "movielens").mkdir()
    _zip(FIXTURES / "ml-100k", www / "movielens" / "ml-100k.zip")
    with pytest.raises(ChecksumError, match="ml-100k.zip"):
        prepare_data(_grouplens_settings(url))
    assert hits == ["/movielens/ml-100k.zip"]
    downloads = isolated_home / "cache" / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []
    assert not (isolated_home / "datasets").exists() or not any((isolated_home / "datasets").iterdir())


def test_download_verified_then_served_from_cache(server, isolated_home: Path, monkeypatch, cli) -> None:
    url, www, hits = server
    (www / "movielens").mkdir()
    zpath = _zip(FIXTURES / "ml-100k", www / "movielens" / "ml-100k.zip")
    # Pin the fixture zip's hash the way the registry pins the real one.
    monkeypatch.setitem(sources.PINNED, "ml-100k.zip", {"sha256": sha256_file(zpath)})
    monkeypatch.setenv("UR4REC_DATA__GROUPLENS_URL", url)
    r = cli("data", "--source", "grouplens", "--json")
    assert r.code == 0, r
    obj = json.loads(r.stdout)
    assert (obj["users"], obj["items"], obj["interactions"], obj["source"]) == (4, 7, 14, "grouplens")
    assert (isolated_home / "cache" / "downloads" / "ml-100k.zip").is_file()
    r = cli("data", "--source", "grouplens", "--force", "--json")
    assert r.code == 0 and json.loads(r.stdout)["cached"] is False
    assert len(hits) == 1  # the rebuild read the verified cached download


def test_auto_falls_back_to_mirror_and_says_why(server, ml100k_home: Path, isolated_home: Path, cli, monkeypatch) -> None:
    url, _, _ = server  # serves nothing: every GroupLens request is a 404
    cache = isolated_home / "cache" / "downloads"
    cache.mkdir(parents=True)
    shutil.copy(ml100k_home / "cache" / "downloads" / sources.MIRROR_WHEEL, cache)
    monkeypatch.setenv("UR4REC_DATA__GROUPLENS_URL", url)
    r = cli("data", "--json")
    assert r.code == 0, r
    obj = json.loads(r.stdout)
    assert (obj["users"], obj["items"], obj["interactions"], obj["source"]) == (943, 1682, 100000, "mirror")
    assert "source: mirror (grouplens failed:" in r.stderr and "404" in r.stderr


def test_interrupted_write_keeps_previous_artifact(isolated_home: Path, monkeypatch) -> None:
    settings = load_settings(None, {"data": {"source": str(FIXTURES / "ml-100k")}})
    prepare_data(settings)
    _, before = load_dataset(settings)

    def half_save(self: Dataset, folder: Path) -> None:
        (Path(folder) / "interactions.npz").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Dataset, "save", half_save)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(settings, force=True)
    ds, after = load_dataset(settings)
    assert after.digest == before.digest and ds.n_interactions == 14
    assert [p.name for p in (isolated_home / "datasets").iterdir()] == ["ml-100k"]  # no temp folder left


def test_truncated_artifact_is_detected_and_rebuilt(isolated_home: Path) -> None:
    settings = load_settings(None, {"data": {"source": str(FIXTURES / "ml-100k")}})
    prepare_data(settings)
    npz = isolated_home / "datasets" / "ml-100k" / "interactions.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(ArtifactMissingError, match="run `ur4rec data`"):
        load_dataset(settings)
    summary = prepare_data(settings)
    assert summary["cached"] is False and summary["interactions"] == 14
    assert prepare_data(settings)["cached"] is True
    assert load_dataset(settings)[0].n_interactions == 14


def test_changed_local_files_are_rebuilt(tmp_path: Path) -> None:
    folder = shutil.copytree(FIXTURES / "ml-100k", tmp_path / "ml-100k")
    settings = load_settings(None, {"data": {"source": str(folder)}})
    assert prepare_data(settings)["cached"] is False
    assert prepare_data(settings)["cached"] is True
    (folder / "u.info").unlink()
    with open(folder / "u.data", "a") as fh:
        fh.write("4\t1\t3\t1000\n")
    summary = prepare_data(settings)
    assert summary["cached"] is False and summary["interactions"] == 15


def test_ensure_dataset_prepares_when_missing(isolated_home: Path) -> None:
    settings = load_settings(None, {"data": {"source": str(FIXTURES / "atomic-books")}})
    ds, man = ensure_dataset(settings)
    assert ds.n_users == 3 and man.kind == "dataset"


def test_real_ml100k_counts_and_fast_cache(ml100k: Path) -> None:
    settings = load_settings()
    start = time.perf_counter()
    summary = prepare_data(settings)
    elapsed = time.perf_counter() - start
    assert summary["cached"] is True and elapsed < 0.5
    assert (summary["users"], summary["items"], summary["interactions"]) == (943, 1682, 100000)
    ds, man = load_dataset(settings)
    assert man.inputs == {sources.MIRROR_WHEEL: sources.PINNED[sources.MIRROR_WHEEL]["sha256"]}
    assert ds.items[ds.item_ids.index("543")]["title"] == "Misérables, Les"
    assert ds.users[0] == {"age": 24, "gender": "M", "occupation": "technician"}


def test_mirror_equals_grouplens_format_of_same_data(ml100k: Path, tmp_path: Path) -> None:
    """A GroupLens-format folder written from the wheel's files gives the same sequences and items."""
    wheel = ml100k / "cache" / "downloads" / sources.MIRROR_WHEEL
    with zipfile.ZipFile(wheel) as zf:
        read = lambda ext: zf.read(f"{sources.MIRROR_PREFIX}ml-100k.{ext}").decode("utf-8").splitlines()[1:]  # noqa: E731
        inter, item, user = read("inter"), read("item"), read("user")
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("".join(line + "\n" for line in inter))
    rows = []
    for line in item:
        iid, title, year, genres = line.split("\t")
        flags = "|".join("1" if g in genres.split() else "0" for g in ML100K_GENRES)
        rows.append(f"{iid}|{title}{f' ({year})' if year.isdigit() else ''}|||http://x|{flags}\n")
    (folder / "u.item").write_bytes("".join(rows).encode("iso-8859-1"))
    (folder / "u.user").write_text("".join(line.replace("\t", "|") + "\n" for line in user))
    grouplens = load_settings(None, {"data": {"source": str(folder), "name": "gl"}})
    prepare_data(grouplens)
    a, _ = load_dataset(load_settings())
    b, _ = load_dataset(grouplens)
    assert a.item_ids == b.item_ids and a.user_ids == b.user_ids
    assert np.array_equal(a.offsets, b.offsets)
    assert np.array_equal(a.seq_items, b.seq_items) and np.array_equal(a.seq_times, b.seq_times)
    assert np.array_equal(a.seq_ratings, b.seq_ratings)
    assert a.items == b.items and a.users == b.users
