"""The data set is chosen once: `ur4rec data --source X` makes X current for every later command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _write_atomic(folder: Path, users: int = 40, items: int = 30, per_user: int = 8) -> Path:
    """RecBole atomic files of a small synthetic shop (timestamps increase per user)."""
    folder.mkdir(parents=True)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(users):
        for j in range(per_user):
            rows.append(f"u{u}\tp{(u * 3 + j * 7) % items}\t{1 + (u + j) % 5}\t{1000 + 10 * j}")
    (folder / "shop.inter").write_text("\n".join(rows) + "\n", "utf-8")
    lines = ["item_id:token\ttitle:token_seq\tgenre:token_seq"]
    lines += [f"p{i}\tProduct {i}\tkind{i % 4}" for i in range(items)]
    (folder / "shop.item").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


@pytest.mark.slow
def test_chosen_data_set_flows_through_train_evaluate_recommend(cli, ml100k: Path, tmp_path: Path) -> None:
    shop = _write_atomic(tmp_path / "shop")
    r = cli("data", "--source", str(shop), "--json")
    assert r.code == 0, r
    assert json.loads(r.stdout)["name"] == "shop"

    r = cli("train", "--stage", "pretrain_sasrec", "--epochs", "1", "--device", "cpu", "--json")
    assert r.code == 0, r
    trained = json.loads(r.stdout)
    assert trained["dataset"] == "shop"
    assert "/runs/shop/" in json.dumps(trained)

    r = cli("evaluate", "--json")
    assert r.code == 0, r
    ev = json.loads(r.stdout)
    assert ev["dataset"] == "shop" and ev["users"] == 40  # every shop user has 8 interactions
    r = cli("evaluate")
    assert r.code == 0 and "dataset     shop" in r.stdout, r

    r = cli("recommend", "--user", "u3", "--json")
    assert r.code == 0, r
    rec = json.loads(r.stdout)
    assert rec["dataset"] == "shop" and all(str(row["item_id"]).startswith("p") for row in rec["items"])
    r = cli("recommend", "--user", "u3")
    assert r.code == 0 and "of shop" in r.stdout, r

    # Plain `ur4rec data` goes back to the default; the shop stays reachable by name.
    r = cli("data", "--json")
    assert r.code == 0 and json.loads(r.stdout)["name"] == "ml-100k", r
    r = cli("recommend", "--user", "42", "--json")
    assert r.code != 0 and "ml-100k" in r.stderr, r  # nothing trained on ML-100K in this home
    r = cli("evaluate", "--dataset", "shop", "--json")
    assert r.code == 0 and json.loads(r.stdout)["dataset"] == "shop", r

    r = cli("data", "--list", "--json")
    listing = json.loads(r.stdout)
    assert listing["current"] == "ml-100k"
    assert {row["name"]: row["current"] for row in listing["datasets"]} == {"ml-100k": True, "shop": False}
    r = cli("data", "--list")
    assert r.code == 0 and "shop" in r.stdout and "* = current" in r.stdout


def test_unknown_dataset_name_is_one_line_listing_the_prepared(cli, tmp_path: Path) -> None:
    shop = _write_atomic(tmp_path / "shop", users=5)
    assert cli("data", "--source", str(shop)).code == 0
    for command in (["train", "--epochs", "1"], ["evaluate"], ["recommend", "--user", "u1"], ["llm", "--dry-run"], ["clip"]):
        r = cli(*command, "--dataset", "nope")
        assert r.code == 2, (command, r)
        assert r.stderr.count("\n") == 1 and "no prepared data set 'nope'" in r.stderr and "prepared: shop" in r.stderr, r


def test_env_data_settings_beat_the_home_record(tmp_path: Path, monkeypatch, isolated_home: Path) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.settings import load_settings

    shop = _write_atomic(tmp_path / "shop", users=5)
    api.prepare_data(load_settings(None, {"data": {"source": str(shop)}}))
    assert api.dataset_name(api.select_dataset(load_settings())) == "shop"
    monkeypatch.setenv("UR4REC_DATA__NAME", "other")
    assert api.dataset_name(api.select_dataset(load_settings())) == "other"
    # A config value equal to the default (e.g. a file written by `ur4rec config`) is not a choice.
    monkeypatch.delenv("UR4REC_DATA__NAME")
    monkeypatch.setenv("UR4REC_DATA__SOURCE", "auto")
    assert api.dataset_name(api.select_dataset(load_settings())) == "shop"


def test_the_noun_alone_reads_the_current_data_set_and_is_checked_against_it(cli, tmp_path: Path, monkeypatch, isolated_home: Path) -> None:
    """data.noun describes a data set without choosing one: set alone, the home's current data set is
    still read (not the ML-100K default), with the noun kept for the commands to honour or refuse."""
    from ur4rec_cli import api
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import load_settings

    shop = _write_atomic(tmp_path / "shop", users=5)
    api.prepare_data(load_settings(None, {"data": {"source": str(shop), "noun": "gadget"}}))
    monkeypatch.setenv("UR4REC_DATA__NOUN", "gadget")
    chosen = api.select_dataset(load_settings())
    assert api.dataset_name(chosen) == "shop" and chosen.data.noun == "gadget"
    assert load_dataset(chosen)[0].noun == "gadget"
    monkeypatch.setenv("UR4REC_DATA__NOUN", "book")
    for requested in (None, "shop"):  # from the home's record and from --dataset: the noun is kept, not dropped
        assert api.select_dataset(load_settings(), requested).data.noun == "book"
    # train remakes the current data set in the new noun (data/prepare.py: another noun is other texts);
    # before, a noun set alone sent every command to the ML-100K default instead.
    r = cli("train", "--stage", "pretrain_sasrec", "--epochs", "1", "--device", "cpu", "--json")
    assert r.code == 0, r
    assert json.loads(r.stdout)["dataset"] == "shop"
    assert load_dataset(api.select_dataset(load_settings()))[0].noun == "book"
    # evaluate reads, and never remakes: a noun the data set was not prepared with is one line.
    monkeypatch.setenv("UR4REC_DATA__NOUN", "gadget")
    r = cli("evaluate", "--k", "10")
    assert r.code != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'gadget'" in lines[0] and "'book'" in lines[0] and "shop" in lines[0], r.stderr


def test_no_evaluable_user_is_an_error_at_data(cli, tmp_path: Path, isolated_home: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "tiny.inter").write_text("user_id:token\titem_id:token\na\tx\nb\ty\nb\tx\n", "utf-8")
    r = cli("data", "--source", str(folder))
    assert r.code == 3 and r.stderr.count("\n") == 1, r
    assert "no user has the 3 interactions leave-one-out needs" in r.stderr
    assert not (isolated_home / "datasets" / "tiny").exists()


def test_short_users_are_train_only_and_counted(cli, tmp_path: Path) -> None:
    folder = _write_atomic(tmp_path / "mixed", users=6)
    with open(folder / "shop.inter", "a", encoding="utf-8") as fh:
        fh.write("lonely\tp1\t3\t5\nshort\tp2\t4\t5\nshort\tp3\t4\t6\n")
    r = cli("data", "--source", str(folder), "--json")
    assert r.code == 0, r
    s = json.loads(r.stdout)
    assert (s["users"], s["valid_users"], s["train_only_users"]) == (8, 6, 2)
    r = cli("data", "--source", str(folder))
    assert "train-only users (< 3 interactions)" in r.stdout


def test_llm_and_clip_results_name_the_current_data_set(cli, tmp_path: Path) -> None:
    shop = _write_atomic(tmp_path / "shop", users=6, items=8)
    assert cli("data", "--source", str(shop)).code == 0
    r = cli("llm", "--backend", "template", "--dry-run", "--json")
    assert r.code == 0 and json.loads(r.stdout)["dataset"] == "shop", r
    r = cli("clip", "--pretrained", "none", "--device", "cpu", "--json")
    assert r.code == 0, r
    report = json.loads(r.stdout)
    assert report["dataset"] == "shop" and report["items"] == 8 and "/features/shop/" in report["path"]
