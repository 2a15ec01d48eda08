"""`ur4rec items add`: new items scored by a trained run's content path, then served by `recommend`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_evaluate_protocols import clustered_dataset
from ur4rec_cli.settings import load_settings
from ur4rec_cli.store import ArtifactStore


def two_genre_dataset(n_users: int = 120, n_items: int = 60, length: int = 15):
    """Odd users watch horror films only (items 1..30), even users children's musicals only (31..60)."""
    ds = clustered_dataset(n_users=n_users, n_items=n_items, length=length)  # the same two halves, new titles
    half = n_items // 2
    ds.items = [
        {"title": f"{'Night of the Ghoul' if i <= half else 'The Happy Singing Puppies'} {i}", "year": 1980 + i % 15,
         "genres": ["Horror", "Thriller"] if i <= half else ["Children's", "Musical"]}
        for i in range(1, n_items + 1)
    ]  # fmt: skip
    return ds


def train_two_genre(home: Path, train: dict, model: dict):
    """``two_genre_dataset`` as the `ml-100k` artifact in ``home``, template texts, all four stages trained; its settings."""
    from ur4rec_cli import api

    store = ArtifactStore(home)
    with store.write(store.dataset_dir("ml-100k"), kind="dataset") as tmp:
        two_genre_dataset().save(tmp)
    settings = load_settings(None, {"home": home, "llm": {"backend": "template"}, "train": train, "model": model})
    api.generate_texts(settings)
    api.train(settings)
    return settings


@pytest.fixture(scope="module")
def content_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data set as the `ml-100k` artifact, template texts, all four stages trained on item text with ID dropout."""
    home = tmp_path_factory.mktemp("content-home")
    train_two_genre(home, {"epochs": 8, "device": "cpu", "batch_size": 32, "id_dropout": 0.3},
                    {"modalities": ["item_text"], "max_len": 20, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 1})  # fmt: skip
    return home


@pytest.fixture
def home(content_home: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UR4REC_HOME", str(content_home))
    return content_home


def test_added_item_is_recommended_to_users_whose_history_matches_it(cli, home, tmp_path, monkeypatch) -> None:
    # Unscaled borrowed blocks (the default cold_scale 0.8 ranks an added item under its neighbours,
    # here just after the 15 unseen films of either half: test_cold_neighbours.py covers the scale).
    monkeypatch.setenv("UR4REC_MODEL__COLD_SCALE", "1")
    new = tmp_path / "new.csv"
    new.write_text("title,year,genres\nNight of the Ghoul Returns,1990,Horror|Thriller\n", "utf-8")
    r = cli("items", "add", str(new), "--json")
    assert r.code == 0, r
    added = json.loads(r.stdout)
    assert added["added"] == ["61"] and added["items_in_index"] == 61
    ranks = {}
    for user in ("1", "3", "5", "7", "2", "4", "6", "8"):
        rec = json.loads(cli("recommend", "--user", user, "--top", "61", "--json").stdout)
        ranks[user] = [row["item_id"] for row in rec["items"]].index(61)
    horror, musical = [ranks[u] for u in ("1", "3", "5", "7")], [ranks[u] for u in ("2", "4", "6", "8")]
    assert max(horror) < 15 < min(musical)  # among the 15 unseen horror films for horror fans, after them for the others
    # Twice: nothing more is added; the index says which file added what.
    again = json.loads(cli("items", "add", str(new), "--json").stdout)
    assert again["added"] == [] and again["skipped"] == 1
    man = json.loads((Path(added["index"]) / "manifest.json").read_text())
    assert [f["items"] for f in man["extra"]["added_files"]] == [1]
    # An added item has no token in the sequence model: not part of a --history.
    bad = cli("recommend", "--history", "1,61")
    assert bad.code == 8 and "added after training" in bad.stderr


def test_new_item_vector_is_the_unknown_item_vector(home) -> None:
    """items add scores a new item exactly as the model scores a catalogue item it never trained on."""
    import torch

    from ur4rec_cli.runs import load_stage_model

    settings = load_settings(None, {"home": home})
    model = load_stage_model(settings).model
    m = settings.model
    assert model.neighbours is not None and (model.neighbours.k, model.neighbours.scale) == (m.cold_neighbours, m.cold_scale)  # the scoring settings reach it
    known = model.known.clone()
    known[7] = False
    model.set_known(known)
    with torch.no_grad():
        direct = model.item_vectors()[7]
        new = model.new_item_vectors(model.item_text[7:8].clone())[0]
    assert torch.allclose(direct, new, atol=1e-5)


def test_a_csv_with_more_columns_gives_each_its_role(cli, home, tmp_path) -> None:
    """Brand, a category path, a price and any other column reach the new item's metadata and text."""
    new = tmp_path / "gadgets.csv"
    new.write_text("item_id,title,brand,categories,price,colour,description\n"
                   '701,Ghoul Detector,Acme,"Gadgets,Ghost Detectors",$19.99,green,Beeps near ghouls.\n', "utf-8")  # fmt: skip
    r = cli("items", "add", str(new), "--json")
    assert r.code == 0 and json.loads(r.stdout)["added"] == ["701"], r
    index = next((home / "runs").rglob("index"))
    row = next(a for a in json.loads((index / "added_items.json").read_text("utf-8")) if a["id"] == "701")
    assert {k: row[k] for k in ("title", "year", "genres", "categories", "brand", "description", "fields")} == {
        "title": "Ghoul Detector", "year": None, "genres": [], "categories": ["Gadgets", "Ghost Detectors"], "brand": "Acme",
        "description": "Beeps near ghouls.", "fields": {"price": 19.99, "colour": "green"},
    }  # fmt: skip
    # The catalogue is worded as movies (its noun): the new item's text is too, from every column.
    assert row["text"] == "Ghoul Detector is a movie by Acme. Categories: Gadgets, Ghost Detectors. price: 19.99. colour: green. Beeps near ghouls."
    rec = json.loads(cli("recommend", "--user", "1", "--top", "100", "--json").stdout)
    shown = next(i for i in rec["items"] if i["item_id"] == 701)
    assert shown["brand"] == "Acme" and shown["categories"] == ["Gadgets", "Ghost Detectors"]


@pytest.mark.parametrize(
    "text, says",
    [
        ("title,year\n,1990\nB,1991\n", "line 2: empty title"),
        ("title,year\n,1990\n", "title column 'title' is empty in every row"),
        ("title,year\nA Film,19x0\n", "not a four-digit year"),
        ("item_id,title\n5,Already There\n", "item id 5 is already in the data set's catalogue"),
        ("item_id,title\n900,One\n900,Two\n", "item id 900 appears twice"),
        ("label,year\nA,1990\n", "neither the u.item format nor a CSV"),
        ("title,price\nA,9.5\nB,cheap\n", "line 3: non-numeric price 'cheap'"),
        ("title,Title\nA,B\n", "column 'Title' appears twice"),
        ("1|Bad Row (1990)|x\n", "the u.item format has 24"),
    ],
)
def test_bad_item_files_are_one_line_each_and_write_nothing(cli, home, tmp_path, text: str, says: str) -> None:
    index = next((home / "runs").rglob("index"))
    before = (index / "item_vecs.npy").read_bytes()
    path = tmp_path / "items.csv"
    path.write_text(text, "utf-8")
    r = cli("items", "add", str(path))
    assert r.code != 0 and says in r.stderr and "Traceback" not in r.stderr, r
    assert (index / "item_vecs.npy").read_bytes() == before


def test_items_add_without_a_trained_run_is_one_line(cli, ml100k, tmp_path) -> None:
    path = tmp_path / "new.csv"
    path.write_text("title\nSome Film\n", "utf-8")
    r = cli("items", "add", str(path))
    assert r.code != 0 and "run `ur4rec train` first" in r.stderr and "Traceback" not in r.stderr, r
    missing = cli("items", "add", str(tmp_path / "nope.csv"))
    assert missing.code == 2 and "no such file" in missing.stderr
