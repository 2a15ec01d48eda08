"""Each on-disk format parses to the expected ids, titles, years, genres and splits."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES
from ur4rec_cli.data.prepare import dataset_name, load_dataset, prepare_data
from ur4rec_cli.settings import DataConfig, load_settings


def _settings(source: Path | str, **data):
    return load_settings(None, {"data": {"source": str(source), **data}})


def _raw_sequences(ds) -> dict[str, list[str]]:
    return {uid: [ds.item_ids[i - 1] for i in ds.sequence(u)] for u, uid in enumerate(ds.user_ids, start=1)}


def _zip_folder(folder: Path, dest: Path, top: str) -> Path:
    # The GroupLens zip keeps its files under a top folder (ml-100k/u.data ...).
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"{top}/{p.name}")
    return dest


ML100K_SEQS = {"1": ["1", "2", "3", "4"], "2": ["6", "3", "5", "1"], "3": ["1", "2", "4", "6"], "4": ["6", "5"]}


@pytest.mark.parametrize("as_zip", [False, True])
def test_ml100k_folder_and_zip(tmp_path: Path, as_zip: bool) -> None:
    source = FIXTURES / "ml-100k"
    if as_zip:
        source = _zip_folder(source, tmp_path / "ml-100k.zip", "ml-100k")
    summary = prepare_data(_settings(source))
    assert (summary["users"], summary["items"], summary["interactions"]) == (4, 7, 14)
    assert summary["source"] == f"path:{source.resolve()}" and summary["cached"] is False
    ds, man = load_dataset(_settings(source))
    assert ds.name == "ml-100k"
    assert _raw_sequences(ds) == ML100K_SEQS  # user 1: items 2 and 3 share t=200, file order kept
    items = dict(zip(ds.item_ids, ds.items))
    assert items["3"] == {"title": "Misérables, Les", "year": 1995, "genres": ["Drama", "Musical"]}
    assert items["6"]["title"] == "Nénette et Boni" and items["6"]["year"] == 1996
    assert items["5"] == {"title": "unknown", "year": None, "genres": ["unknown"]}
    assert items["7"]["title"] == "Jean de Florette"  # in the catalog though never rated
    assert items["1"]["genres"] == ["Animation", "Children's", "Comedy"]
    users = dict(zip(ds.user_ids, ds.users))
    assert users["2"] == {"age": 53, "gender": "F", "occupation": "other"}
    assert set(man.inputs) == ({"ml-100k.zip"} if as_zip else {"u.data", "u.item", "u.user", "u.info"})


def test_leave_one_out_split_on_fixture() -> None:
    prepare_data(_settings(FIXTURES / "ml-100k"))
    ds, _ = load_dataset(_settings(FIXTURES / "ml-100k"))
    u1 = ds.find_user("1")
    assert ds.item_ids[ds.target(u1, "test") - 1] == "4"
    assert ds.item_ids[ds.target(u1, "valid") - 1] == "3"
    assert [ds.item_ids[i - 1] for i in ds.history(u1, "valid")] == ["1", "2"]
    assert [ds.item_ids[i - 1] for i in ds.history(u1, "test")] == ["1", "2", "3"]
    u4 = ds.find_user("4")
    assert not ds.is_evaluable(u4)  # two interactions: train only
    s = ds.summary()
    assert (s["valid_users"], s["test_users"], s["train_interactions"]) == (3, 3, 14 - 6)
    assert np.array_equal(ds.seq_times[ds.offsets[u1 - 1] : ds.offsets[u1]], [100, 200, 200, 300])


def test_min_rating_keeps_ratings_at_or_above() -> None:
    settings = _settings(FIXTURES / "ml-100k", min_rating=4)
    assert dataset_name(settings.data) == "ml-100k-r4"
    summary = prepare_data(settings)
    ds, man = load_dataset(settings)
    assert summary["interactions"] == 9
    assert _raw_sequences(ds) == {"1": ["1", "3"], "2": ["6", "3", "5"], "3": ["1", "2", "4"], "4": ["6"]}
    assert float(ds.seq_ratings.min()) >= 4
    assert man.extra["min_rating"] == 4


def test_ml1m_folder_and_zip(tmp_path: Path) -> None:
    for source in (FIXTURES / "ml-1m", _zip_folder(FIXTURES / "ml-1m", tmp_path / "ml-1m.zip", "ml-1m")):
        summary = prepare_data(_settings(source), force=True)
        assert (summary["users"], summary["items"], summary["interactions"]) == (3, 5, 10)
        ds, _ = load_dataset(_settings(source))
        assert ds.name == "ml-1m"
        seqs = _raw_sequences(ds)
        assert seqs["1"] == ["3408", "1193", "914", "661"]
        assert seqs["3"] == ["914", "661", "3408"]  # 661 and 3408 tie: file order
        items = dict(zip(ds.item_ids, ds.items))
        assert items["73"] == {"title": "Misérables, Les", "year": 1995, "genres": ["Drama", "War"]}
        assert items["661"]["genres"] == ["Animation", "Children's", "Musical"]
        users = dict(zip(ds.user_ids, ds.users))
        assert users["1"] == {"age": 1, "gender": "F", "occupation": "K-12 student"}


def test_atomic_files_of_another_dataset() -> None:
    source = FIXTURES / "atomic-books"
    summary = prepare_data(_settings(source))
    assert (summary["users"], summary["items"], summary["interactions"]) == (3, 4, 8)
    ds, _ = load_dataset(_settings(source))
    assert ds.name == "atomic-books"
    # No timestamp column: each user's order is the file's order.
    assert _raw_sequences(ds) == {
        "alice": ["b-003", "b-001", "b-002", "b-004"],
        "bob": ["b-002", "b-004", "b-001"],
        "carol": ["b-001"],
    }
    items = dict(zip(ds.item_ids, ds.items))
    assert items["b-001"] == {"title": "Les Misérables", "year": 1862, "genres": ["Novel", "Historical"]}
    assert items["b-002"]["year"] == 1965
    users = dict(zip(ds.user_ids, ds.users))
    assert users["bob"]["age"] == "18-24" and users["alice"]["age"] == 34
    assert users["carol"] == {"age": None, "gender": None, "occupation": None}


def test_atomic_single_inter_file_path(tmp_path: Path) -> None:
    folder = shutil.copytree(FIXTURES / "atomic-books", tmp_path / "logs")
    (folder / "other.inter").write_text("user_id:token\titem_id:token\nx\ty\n")
    summary = prepare_data(_settings(folder / "books.inter"))
    assert summary["name"] == "books" and summary["interactions"] == 8


def test_dataset_name_rules() -> None:
    assert dataset_name(DataConfig()) == "ml-100k"
    assert dataset_name(DataConfig(dataset="ml-1m")) == "ml-1m"
    assert dataset_name(DataConfig(source="mirror", dataset="ml-1m")) == "ml-100k"
    assert dataset_name(DataConfig(source="/x/y/ml-100k.zip")) == "ml-100k"
    assert dataset_name(DataConfig(source="/x/y/ml-100k.zip", min_rating=3.5)) == "ml-100k-r3.5"
    assert dataset_name(DataConfig(name="mine", min_rating=4)) == "mine"


def test_cli_table_and_json(cli) -> None:
    r = cli("data", "--source", str(FIXTURES / "ml-100k"))
    assert r.code == 0, r
    assert "interactions" in r.stdout and "14" in r.stdout and "density" in r.stdout
    r = cli("data", "--source", str(FIXTURES / "ml-100k"), "--json")
    assert r.code == 0, r
    import json

    obj = json.loads(r.stdout)
    assert obj["users"] == 4 and obj["items"] == 7 and obj["interactions"] == 14 and obj["cached"] is True
    assert obj["source"].startswith("path:")
