"""The new-items shelf: `recommend --new` (only items the model never trained on) and its evaluation,
the cold cases ranked among the cold items alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_evaluate_protocols import clustered_dataset
from test_items_add import content_home  # noqa: F401 - the module-scoped fixture, shared
from ur4rec_cli.data.cold import split_cold
from ur4rec_cli.data.dataset import Dataset
from ur4rec_cli.settings import load_settings
from ur4rec_cli.store import ArtifactStore


@pytest.fixture(scope="module")
def shelf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cold-item variant (20% of 60 items cold) as the `ml-100k` artifact, template texts, all stages trained on item text."""
    from ur4rec_cli import api

    home = tmp_path_factory.mktemp("shelf-home")
    ds = split_cold(clustered_dataset(n_users=120, n_items=60, length=15), 0.2, 0)
    store = ArtifactStore(home)
    with store.write(store.dataset_dir("ml-100k"), kind="dataset") as tmp:
        ds.save(tmp)
    overrides = {
        "home": home,
        "llm": {"backend": "template"},
        "train": {"epochs": 2, "device": "cpu", "batch_size": 32},
        "model": {"modalities": ["item_text"], "max_len": 20, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 1},
    }
    settings = load_settings(None, overrides)
    api.generate_texts(settings)
    api.train(settings)
    return home


@pytest.fixture
def shelf(shelf_home: Path, isolated_home, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UR4REC_HOME", str(shelf_home))
    return shelf_home


def _cold_ids(home: Path) -> set:
    ds = Dataset.load(home / "datasets" / "ml-100k")
    return {int(ds.item_ids[i - 1]) for i in ds.cold.items}


def test_recommend_new_returns_only_cold_items(cli, shelf: Path, tmp_path: Path) -> None:
    cold = _cold_ids(shelf)
    r = cli("recommend", "--user", "1", "--new", "--top", "100", "--json")
    assert r.code == 0, r
    got = [row["item_id"] for row in json.loads(r.stdout)["items"]]
    assert set(got) == cold  # every cold item, and nothing else, however long the list asked for
    plain = [row["item_id"] for row in json.loads(cli("recommend", "--user", "1", "--top", "100", "--json").stdout)["items"]]
    assert not set(plain) <= cold  # without --new the warm items come too
    # In the order of the full list: the shelf is the full ranking cut to the new items.
    assert got[: len(cold)] == [i for i in plain if i in cold][: len(cold)]
    out = tmp_path / "all.jsonl"
    assert cli("recommend", "--all", "--new", "--top", "3", "--output", str(out)).code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 120 and all(len(row["items"]) == 3 and {int(i) for i in row["items"]} <= cold for row in rows)
    hist = cli("recommend", "--history", "1,2,3", "--new", "--top", "5", "--json")
    assert hist.code == 0, hist
    assert {row["item_id"] for row in json.loads(hist.stdout)["items"]} <= cold


def test_recommend_new_returns_only_added_items(cli, content_home: Path, isolated_home, monkeypatch, tmp_path: Path) -> None:  # noqa: F811
    import shutil

    home = tmp_path / "home"
    shutil.copytree(content_home, home)  # items add writes into the run: a copy, the shared fixture stays as it is
    monkeypatch.setenv("UR4REC_HOME", str(home))
    none_yet = cli("recommend", "--user", "1", "--new")
    assert none_yet.code != 0 and "no new items" in none_yet.stderr and "Traceback" not in none_yet.stderr
    new = tmp_path / "new.csv"
    new.write_text("title,year,genres\nNight of the Ghoul Returns,1990,Horror|Thriller\nThe Puppies Sing Again,1991,Musical\n", "utf-8")
    assert cli("items", "add", str(new)).code == 0
    r = cli("recommend", "--user", "1", "--new", "--top", "10", "--json")
    assert r.code == 0, r
    assert sorted(row["item_id"] for row in json.loads(r.stdout)["items"]) == [61, 62]


def test_evaluate_ranks_the_cold_cases_on_the_new_items_shelf(cli, shelf: Path, tmp_path: Path) -> None:
    ds = Dataset.load(shelf / "datasets" / "ml-100k")
    for stage, name in ((None, "model"), ("content_knn", "knn")):
        out = tmp_path / f"{name}.jsonl"
        r = cli("evaluate", "--json", "--k", "10", "--output", str(out), *(["--stage", stage] if stage else []))
        assert r.code == 0, r
        res = json.loads(r.stdout)
        shelf_block = res["cold"]["shelf"]
        assert shelf_block["cases"] == res["cold"]["cases"] == len(ds.cold.targets)
        assert "new-items shelf" in shelf_block["description"]
        cold_rows = [json.loads(x) for x in (tmp_path / f"{name}.cold.jsonl").read_text().splitlines()]
        shelf_rows = [json.loads(x) for x in (tmp_path / f"{name}.shelf.jsonl").read_text().splitlines()]
        assert [x["case"] for x in shelf_rows] == [x["case"] for x in cold_rows]
        # A case's history holds warm items only, so its candidates are every cold item.
        assert {x["candidates"] for x in shelf_rows} == {len(ds.cold.items)}
        # Cutting the candidates to the cold items can only lift the target: never a worse rank.
        cold_ranks, shelf_ranks = np.array([x["rank"] for x in cold_rows]), np.array([x["rank"] for x in shelf_rows])
        assert (shelf_ranks <= cold_ranks).all() and (shelf_ranks < cold_ranks).any()
        assert shelf_block["metrics"]["NDCG@10"] >= res["cold"]["metrics"]["NDCG@10"]
    text = cli("evaluate", "--k", "10")
    assert text.code == 0 and "new-items shelf" in text.stdout
