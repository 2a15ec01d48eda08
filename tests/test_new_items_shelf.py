"""The new-items shelf: `recommend --new` (only items the model never trained on) and its evaluation,
the cold cases ranked among the cold items alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_cold_items import cold_home  # noqa: F401 - module-scoped fixtures, shared
from test_items_add import content_home  # noqa: F401
from ur4rec_cli.data.dataset import Dataset


@pytest.fixture
def shelf(cold_home: Path, isolated_home, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A cold-item variant (20% of 60 items cold), all stages trained (test_cold_items.py)."""
    monkeypatch.setenv("UR4REC_HOME", str(cold_home))
    return cold_home


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
    for stage, name in ((None, "model"), ("popularity", "popularity")):
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
        if stage == "popularity":  # no cold item was ever seen: all tie at zero, every rank the worst
            assert set(shelf_ranks.tolist()) == {len(ds.cold.items) - 1}
        assert shelf_block["metrics"]["NDCG@10"] >= res["cold"]["metrics"]["NDCG@10"]
    text = cli("evaluate", "--k", "10")
    assert text.code == 0 and "new-items shelf" in text.stdout


def test_one_pass_ranks_the_cold_cases_as_two_separate_passes_do(shelf: Path) -> None:
    """evaluate ranks the cold cases and the shelf from one pass of user vectors
    (ranking.full_ranking_ranks_among): the same ranks as a pass per candidate set."""
    torch = pytest.importorskip("torch")
    from ur4rec_cli.data.cold import ColdView, OwnerScorer
    from ur4rec_cli.evaluation.cold_cases import rank_cold_cases
    from ur4rec_cli.ranking import full_ranking_ranks, with_tie_orders

    ds = Dataset.load(shelf / "datasets" / "ml-100k")
    g = torch.Generator().manual_seed(0)
    items, people = torch.randn(ds.n_items + 1, 8, generator=g), torch.randn(ds.n_users + 1, 8, generator=g)

    class HistoryScorer:  # user vector = the history's mean item vector + the user's own: order-free, history-dependent
        def user_vectors(self, histories, users):
            return items[histories].sum(1) / (histories != 0).sum(1, keepdim=True).clamp(min=1) + people[users]

        def item_vectors(self):
            return items

    cold, on_shelf = rank_cold_cases(HistoryScorer(), ds, tie_orders=3, max_len=10)
    for view, ranked in ((ColdView(ds), cold), (ColdView(ds, shelf=True), on_shelf)):
        scorer = with_tie_orders(OwnerScorer(HistoryScorer(), view.owners), view, "test", 3)
        cases, targets, ranks = full_ranking_ranks(scorer, view, "test", max_len=10)
        assert np.array_equal(cases, ranked.users) and np.array_equal(targets, ranked.targets)
        assert np.array_equal(ranks, ranked.ranks)
    assert (on_shelf.ranks <= cold.ranks).all() and (on_shelf.ranks < cold.ranks).any()
