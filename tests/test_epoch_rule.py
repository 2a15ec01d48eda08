"""`train.epoch_rule`: the fixed schedule on the data set it was tuned on, epochs chosen on validation elsewhere."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from test_evaluate_protocols import clustered_dataset
from ur4rec_cli.settings import load_settings
from ur4rec_cli.store import ArtifactStore
from ur4rec_cli.training.epoch_rule import CAP_FACTOR, chosen_epochs, chosen_rule, refit_settings, selection_settings


def _shape(users: int, items: int) -> SimpleNamespace:
    return SimpleNamespace(n_users=users, n_items=items)


def test_the_rule_keeps_ml100k_fixed_and_chooses_elsewhere() -> None:
    s = load_settings(None, {})
    assert chosen_rule(s, _shape(943, 1682)) == "fixed"  # ML-100K (and its cold variants): the tuned schedule
    assert chosen_rule(s, _shape(8317, 4344)) == "validation"
    # A schedule the user asked for is kept: an epoch count, --learn-validation, --select-on-validation.
    for overrides in ({"train": {"epochs": 3}}, {"train": {"sasrec_epochs": 50}}, {"train": {"learn_validation": True}}, {"train": {"learn_validation": False}}):
        assert chosen_rule(load_settings(None, overrides), _shape(8317, 4344)) == "fixed", overrides
    assert chosen_rule(load_settings(None, {"train": {"epoch_rule": "fixed"}}), _shape(8317, 4344)) == "fixed"
    assert chosen_rule(load_settings(None, {"train": {"epoch_rule": "validation"}}), _shape(943, 1682)) == "validation"


def test_selection_and_refit_settings() -> None:
    s = load_settings(None, {"train": {"run": "main", "epochs": 7}})
    sel = selection_settings(s)
    t = sel.train
    assert t.run == "main-select" and not t.learn_validation and t.epochs is None and t.start_from == "best" and t.patience == 10
    assert (t.sasrec_epochs, t.retriever_epochs, t.joint_epochs, t.end_to_end_epochs) == (CAP_FACTOR * 80, CAP_FACTOR * 20, CAP_FACTOR * 6, CAP_FACTOR * 4)
    summaries = [{"stage": "pretrain_sasrec", "best_epoch": 31}, {"stage": "pretrain_retriever", "best_epoch": 0},
                 {"stage": "joint_finetune", "best_epoch": 4}, {"stage": "end_to_end", "best_epoch": 2}]  # fmt: skip
    # Up to the stage validation chose as final; a stage that never beat its start still runs one epoch.
    assert chosen_epochs(summaries, "joint_finetune") == {"pretrain_sasrec": 31, "pretrain_retriever": 1, "joint_finetune": 4}
    assert chosen_epochs(summaries, "pretrain_sasrec") == {"pretrain_sasrec": 31}
    fit = refit_settings(s, {"pretrain_sasrec": 31, "pretrain_retriever": 1}).train
    assert fit.learn_validation and fit.run == "main" and fit.epochs is None and (fit.sasrec_epochs, fit.retriever_epochs) == (31, 1)


def test_train_on_another_data_set_selects_then_refits(tmp_path: Path) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.runs import read_checkpoint

    home = tmp_path / "home"
    store = ArtifactStore(home)
    with store.write(store.dataset_dir("shop"), kind="dataset") as tmp:
        clustered_dataset(n_users=60, n_items=30, length=10).save(tmp)
    overrides = {
        "home": home,
        "data": {"name": "shop"},
        "train": {"device": "cpu", "batch_size": 32, "epoch_rule": "validation", "sasrec_epochs": 3, "retriever_epochs": 2, "joint_epochs": 1, "end_to_end_epochs": 1},
        "model": {"modalities": [], "max_len": 12, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 1},
    }
    result = api.train(load_settings(None, overrides))
    rule = result["epoch_rule"]
    assert rule["rule"] == "validation" and rule["selection_run"] == "main-select"
    # The selection pass held validation out, early-stopping each stage under twice its count.
    sel = {s["stage"]: s for s in rule["selection_stages"]}
    assert sel["pretrain_sasrec"]["epochs"] <= 6 and all(s["best_val"] for s in rule["selection_stages"])
    # The refit runs exactly the chosen counts up to the chosen final stage, validation items trained on.
    assert [s["stage"] for s in result["stages"]] == list(rule["epochs"])
    for s in result["stages"]:
        assert s["epochs"] == rule["epochs"][s["stage"]] == max(1, sel[s["stage"]]["best_epoch"])
        assert read_checkpoint(Path(s["path"]))["settings"]["train"]["learn_validation"] is True
    final = json.loads((home / "runs" / "shop" / "main" / "final.json").read_text())
    assert final["stage"] == rule["selection_final"] == list(rule["epochs"])[-1] and final["selected_by"] == "last stage"


@pytest.mark.parametrize("stage", ["pretrain_sasrec"])
def test_a_single_stage_is_never_rescheduled(tmp_path: Path, stage: str) -> None:
    from ur4rec_cli import api

    home = tmp_path / "home"
    store = ArtifactStore(home)
    with store.write(store.dataset_dir("shop"), kind="dataset") as tmp:
        clustered_dataset(n_users=30, n_items=20, length=8).save(tmp)
    overrides = {"home": home, "data": {"name": "shop"}, "train": {"device": "cpu", "batch_size": 32, "epoch_rule": "validation", "sasrec_epochs": 2},
                 "model": {"modalities": [], "max_len": 10, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 1}}  # fmt: skip
    result = api.train(load_settings(None, overrides), stage=stage)
    assert "epoch_rule" not in result and result["stages"][0]["epochs"] == 2
    assert not (home / "runs" / "shop" / "main-select").exists()


def test_a_resume_of_a_run_begun_on_the_fixed_schedule_stays_on_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ur4rec_cli.training import epoch_rule, stages

    calls = []
    monkeypatch.setattr(stages, "train", lambda settings, **kw: calls.append((settings.train.run, kw)) or {"stages": []})
    monkeypatch.setattr(epoch_rule, "chosen_rule", lambda settings, dataset: "validation")
    s = load_settings(None, {"home": tmp_path, "data": {"name": "shop"}})
    (tmp_path / "runs" / "shop" / "main" / "pretrain_sasrec").mkdir(parents=True)
    epoch_rule.train(s, stage="all", resume=True)
    assert calls == [("main", {"stage": "all", "resume": True})]  # straight to the stages, no selection pass
