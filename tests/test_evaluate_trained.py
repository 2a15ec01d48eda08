"""End to end on a tiny real UR4Rec V2 trained by `api.train`: evaluate (every form) and recommend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_evaluate_protocols import clustered_dataset
from ur4rec_cli.settings import STAGES, load_settings
from ur4rec_cli.store import ArtifactStore


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a synthetic dataset (as the default `ml-100k` artifact) and all four stages trained."""
    from ur4rec_cli import api

    home = tmp_path_factory.mktemp("trained-home")
    ds = clustered_dataset(n_users=120, n_items=60, length=15)
    store = ArtifactStore(home)
    with store.write(store.dataset_dir("ml-100k"), kind="dataset") as tmp:
        ds.save(tmp)
    overrides = {
        "home": home,
        "train": {"epochs": 3, "device": "cpu", "batch_size": 32, "learn_validation": False},
        "model": {"modalities": [], "max_len": 20, "hidden": 16, "expert_dim": 8, "layers": 1},
    }
    result = api.train(load_settings(None, overrides))
    (home / "train.json").write_text(json.dumps(result, default=str))
    return home


@pytest.fixture
def home(trained_home: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UR4REC_HOME", str(trained_home))
    return trained_home


def test_valid_split_reproduces_training_validation(cli, home) -> None:
    # Training's validation and `evaluate --split valid` are the same evaluator on the same model.
    train = json.loads((home / "train.json").read_text())
    r = cli("evaluate", "--split", "valid", "--k", "10", "--json")
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert res["stage"] == train["final"]["stage"]
    assert res["metrics"]["NDCG@10"] == pytest.approx(train["final"]["val_ndcg10"], abs=1e-9)
    assert res["checkpoint"].endswith(f"{res['stage']}/best.pt") and res["users"] == 120


def test_compare_lists_popularity_and_every_stage(cli, home, tmp_path) -> None:
    r = cli("evaluate", "--compare", "--json", "--k", "5", "10", "20", "--output", str(tmp_path / "r.jsonl"))
    assert r.code == 0, r
    res = json.loads(r.stdout)
    rows = res["compare"]
    assert [row["name"] for row in rows] == ["popularity", *STAGES]
    final = next(row for row in rows if row["name"] == res["stage"])
    assert final["metrics"] == res["metrics"]
    assert all("vs_popularity" in row for row in rows[1:]) and "vs_popularity" not in rows[0]
    # Each later stage against the one before it, paired over the same users.
    assert "vs_previous" not in rows[1] and [row["vs_previous"]["previous"] for row in rows[2:]] == list(STAGES[:-1])
    for row in rows[2:]:
        v = row["vs_previous"]
        prev = next(r for r in rows if r["name"] == v["previous"])
        assert v["mean_diff"] == pytest.approx(row["metrics"]["NDCG@10"] - prev["metrics"]["NDCG@10"], abs=1e-9)
        assert v["low"] <= v["mean_diff"] <= v["high"]
    # --output holds the selected (final) stage's ranks.
    from ur4rec_cli.ranking import metrics_from_ranks

    ranks = [json.loads(line)["rank"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert metrics_from_ranks(ranks, [5, 10, 20]) == res["metrics"]

    table = cli("evaluate", "--compare")
    assert table.code == 0, table
    for name in ("popularity", *STAGES):
        assert name in table.stdout
    assert "pessimistic ties" in table.stdout and "checkpoint" in table.stdout
    assert "stage over the stage before it, one run (NDCG@10, paired 95% CI over users):" in table.stdout
    assert f"{STAGES[1]} - {STAGES[0]}: " in table.stdout


def test_each_stage_and_sampled(cli, home) -> None:
    r = cli("evaluate", "--stage", STAGES[0], "--protocol", "sampled", "--negatives", "20", "--json")
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert res["stage"] == STAGES[0] and res["candidates"] == {"min": 21, "median": 21, "max": 21}
    assert res["checkpoint"].endswith(f"{STAGES[0]}/best.pt")


def test_recommend_from_the_exported_index(cli, home) -> None:
    from ur4rec_cli.data.dataset import Dataset

    r = cli("recommend", "--user", "3", "--top", "5", "--json", "--explain")
    assert r.code == 0, r
    res = json.loads(r.stdout)
    ds = Dataset.load(home / "datasets" / "ml-100k")
    seen = {int(ds.item_ids[i - 1]) for i in ds.sequence(ds.find_user("3"))}
    ids = [row["item_id"] for row in res["items"]]
    assert res["user"] == 3 and len(ids) == 5 and not seen & set(ids)
    assert res["stage"] == json.loads((home / "train.json").read_text())["final"]["stage"]
    # No modality was trained: the sequence model's part and the frozen stage-1 SASRec's (model.sasrec_anchor) make the score.
    assert all(list(row["contributions"]) == ["sequence", "stage-1 sequence"] for row in res["items"])
    assert all(sum(row["contributions"].values()) == pytest.approx(row["score"], rel=1e-5, abs=1e-5) for row in res["items"])
    assert res["explain"]["modality"] == {}


def test_recommend_history_of_a_known_user_is_their_recommend_user_list(cli, home) -> None:
    """No user-text modality and no same-second items: the encoder on the user's own history gives
    the vector the export wrote for them."""
    from ur4rec_cli.data.dataset import Dataset

    ds = Dataset.load(home / "datasets" / "ml-100k")
    own = [str(ds.item_ids[i - 1]) for i in ds.sequence(ds.find_user("3"))]
    known = json.loads(cli("recommend", "--user", "3", "--top", "8", "--json").stdout)
    r = cli("recommend", "--history", ",".join(own), "--top", "8", "--json")
    assert r.code == 0, r
    new = json.loads(r.stdout)
    assert [row["item_id"] for row in new["items"]] == [row["item_id"] for row in known["items"]]
    assert [row["score"] for row in new["items"]] == pytest.approx([row["score"] for row in known["items"]], rel=1e-4, abs=1e-5)
    assert new["history"] == len(own) and new["stage"] == known["stage"]
    # A short history never gets its own items back.
    short = json.loads(cli("recommend", "--history", f"{own[0]},{own[1]}", "--top", "50", "--json").stdout)
    assert len(short["items"]) == 50 and not {own[0], own[1]} & {str(row["item_id"]) for row in short["items"]}


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--history", "1,999999"], 8, "unknown item id(s) in --history: 999999"),
        (["--history", " , "], 2, "--history needs at least one item id"),
        (["--history", "1,2", "--user", "3"], 2, "--history stands alone"),
    ],
)
def test_recommend_history_bad_input_is_one_line(cli, home, args: list[str], code: int, says: str) -> None:
    r = cli("recommend", *args)
    assert r.code == code, r
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_ranking_says_where_it_is_off_a_terminal(cli, home, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long evaluation prints plain progress lines on stderr (every 30 s; here every batch)."""
    from ur4rec_cli import console

    monkeypatch.setattr(console, "HEARTBEAT_S", 0.0)
    r = cli("evaluate", "--json")
    assert r.code == 0, r
    lines = [line for line in r.stderr.splitlines() if line.startswith("ranking test users: ")]
    assert lines and lines[-1].startswith("ranking test users: 120/120")
    json.loads(r.stdout)  # stdout stays the JSON alone


def test_nan_model_is_one_line_error(cli, trained_home, isolated_home, monkeypatch) -> None:
    import shutil

    import torch

    home = isolated_home.parent / "nan-home"
    shutil.copytree(trained_home, home)
    monkeypatch.setenv("UR4REC_HOME", str(home))
    path = next(home.glob(f"runs/*/main/{STAGES[0]}/best.pt"))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    key = next(k for k in ckpt["state_dict"] if k.endswith("item_emb.weight"))
    ckpt["state_dict"][key][5] = float("nan")
    torch.save(ckpt, path)
    r = cli("evaluate", "--stage", STAGES[0])
    assert r.code == 9 and r.stderr.startswith("error: NaN score") and r.stderr.count("\n") == 1, r


def test_slices_partition_the_cases_and_match_their_ranks(cli, home, tmp_path, monkeypatch) -> None:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.ranking import metrics_from_ranks

    ds = Dataset.load(home / "datasets" / "ml-100k")
    counts = ds.item_popularity("train")
    monkeypatch.setenv("UR4REC_EVAL__POPULARITY_CUTS", "[24, 28]")  # the synthetic items hold ~26 train interactions each
    monkeypatch.setenv("UR4REC_EVAL__SHORT_HISTORY", "13")
    r = cli("evaluate", "--json", "--k", "5", "10", "--output", str(tmp_path / "r.jsonl"))
    assert r.code == 0, r
    res = json.loads(r.stdout)
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    ids = {raw: i for i, raw in enumerate(ds.item_ids, start=1)}
    n = [int(counts[ids[str(row["target"])]]) for row in rows]
    want = {"cold (0)": lambda c: c == 0, "tail (1-24)": lambda c: 1 <= c <= 24, "torso (25-28)": lambda c: 25 <= c <= 28, "head (>28)": lambda c: c > 28}
    got = res["slices"]["target_popularity"]
    assert [s["slice"] for s in got] == list(want)
    assert sum(s["cases"] for s in got) == res["users"] == len(rows)
    for s in got:
        ranks = [row["rank"] for row, c in zip(rows, n) if want[s["slice"]](c)]
        assert s["cases"] == len(ranks)
        assert s["metrics"] == (pytest.approx(metrics_from_ranks(ranks, [5, 10])) if ranks else None)
    assert sum(1 for s in got if s["cases"]) >= 2  # the cuts split these cases
    hist = res["slices"]["history_length"]
    assert [s["slice"] for s in hist] == ["short (<=13)", "long (>13)"] and sum(s["cases"] for s in hist) == len(rows)
    table = cli("evaluate", "--k", "5", "10")
    assert "by the target item's training interactions" in table.stdout and "torso (25-28)" in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines() if line.startswith("  "))
    monkeypatch.setenv("UR4REC_EVAL__POPULARITY_CUTS", "[200, 50]")
    bad = cli("evaluate")
    assert bad.code == 2 and "popularity_cuts" in bad.stderr


def test_content_knn_needs_text_embeddings(cli, home) -> None:
    r = cli("evaluate", "--stage", "content_knn")
    assert r.code == 4 and r.stderr.strip() == "error: content_knn needs the item-text embeddings: run `ur4rec llm` first"
    bad = cli("evaluate", "--stage", "knn")
    assert bad.code == 2 and "popularity, content_knn or late_fusion" in bad.stderr


def test_content_knn_scores_the_mean_of_the_newest_items() -> None:
    import numpy as np

    from ur4rec_cli.evaluation.content_knn import RECENT, ContentKNNScorer
    from ur4rec_cli.evaluation.run import rank_scorer

    ds = clustered_dataset(n_users=30, n_items=40, length=15)
    rng = np.random.default_rng(0)
    text = rng.normal(size=(41, 6)).astype(np.float32)
    scorer = ContentKNNScorer(text)
    ranked = rank_scorer(scorer, ds, split="test", protocol="full", max_len=scorer.max_len)
    for u, target, rank in zip(ranked.users[:10], ranked.targets[:10], ranked.ranks[:10]):
        fed = ds.history(int(u), "test")
        q = text[fed[-RECENT:]].mean(0)
        scores = text @ q
        others = np.setdiff1d(np.arange(1, 41), np.append(fed, target))
        assert rank == int((scores[others] >= scores[target]).sum())  # pessimistic ties, history excluded
