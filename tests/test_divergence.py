"""A model that diverges: the stage stops at the first non-finite step with one line, keeps the last
finite checkpoint, writes no index, and resumes from it at a lowered rate; an index holding
non-finite vectors is refused by the export and by `recommend`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ur4rec_cli.errors import DivergedError  # noqa: E402
from ur4rec_cli.runs import read_checkpoint  # noqa: E402
from ur4rec_cli.store import ArtifactStore  # noqa: E402
from ur4rec_cli.training import stops  # noqa: E402

# A planted rate: the first step's update overflows the model, a later step's loss is not finite.
# (Adam moves every weight by about the rate, so the last epoch before the bad step is the one kept.)
PLANTED = {"UR4REC_TRAIN__LR": "1e30", "UR4REC_TRAIN__BATCH_SIZE": "2"}
ARGS = ["train", "--stage", "pretrain_sasrec", "--run", "div", "--epochs", "5", "--device", "cpu", "--modalities", "item_text"]


def _steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, float, float]]:
    """Record every step's (epoch, step, loss, gradient norm) as check_step sees it, checking nothing."""
    seen: list[tuple[int, int, float, float]] = []

    def record(loss, grad_norm, stage, epoch, step, lrs):
        seen.append((epoch, step, loss, float(grad_norm) if grad_norm is not None else 0.0))

    monkeypatch.setattr(stops, "check_step", record)
    return seen


def test_a_non_finite_loss_stops_the_stage_at_its_first_bad_step_and_resume_continues(cli, toy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in PLANTED.items():
        monkeypatch.setenv(k, v)
    run = toy_home / "runs" / "toy" / "div"
    # Where the planted rate first makes a step non-finite: the same run with the check recording only.
    check = stops.check_step
    seen = _steps(monkeypatch)
    cli(*ARGS[:4], "probe", *ARGS[5:])  # unchecked, it trains on (and its export refuses the vectors)
    bad = next((e, s) for e, s, loss, norm in seen if not (math.isfinite(loss) and math.isfinite(norm)))
    assert bad > (1, 1) and seen[0][2] > 0, seen  # finite steps come first
    monkeypatch.setattr(stops, "check_step", check)

    r = cli(*ARGS)
    assert r.code == DivergedError.exit_code == 13, r
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: pretrain_sasrec diverged at epoch {bad[0]}, step {bad[1]}: the "), line
    assert "at learning rate " in line and "lower train.lr (UR4REC_TRAIN__LR)" in line and "no index was written" in line
    assert f"continues from epoch {bad[0] - 1} in {run / 'pretrain_sasrec' / 'last.pt'}" in line
    # The last finite checkpoint is kept, whole and finite; nothing of the bad epoch; no index, no final.json.
    last = read_checkpoint(run / "pretrain_sasrec" / "last.pt")
    assert last["epoch"] == bad[0] - 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    history = run / "pretrain_sasrec" / "history.jsonl"
    assert [json.loads(x)["epoch"] for x in history.read_text().splitlines()] == list(range(1, bad[0])) if history.exists() else bad[0] == 1
    assert not (run / "index").exists() and not (run / "final.json").exists()
    assert json.loads((run / "pretrain_sasrec" / "diverged.json").read_text())["step"] == bad[1]

    hint = line.split("resume with `", 1)[1].split("`", 1)[0]
    assert hint.endswith("--resume") and "--run div" in hint
    # Lowered: the printed command continues from the kept epoch and finishes the stage.
    monkeypatch.setenv("UR4REC_TRAIN__LR", "1e-3")
    r = cli(*hint.split()[1:], "--json")
    assert r.code == 0, r
    assert "resuming after epoch " + str(bad[0] - 1) in r.stderr
    rows = [json.loads(x) for x in history.read_text().splitlines()]
    assert [x["epoch"] for x in rows] == [1, 2, 3, 4, 5] and all(math.isfinite(x["loss"]) for x in rows)
    assert max(rows[-1]["lr"]) <= 1e-3  # the lowered rate is the one in force
    assert not (run / "pretrain_sasrec" / "diverged.json").exists()
    assert np.isfinite(np.load(run / "index" / "item_vecs.npy")).all()


def test_a_changed_rate_is_still_refused_on_a_stage_that_did_not_diverge(cli, toy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ur4rec_cli.training.state import check_resume_settings

    with pytest.raises(Exception, match="train.lr"):
        check_resume_settings("pretrain_sasrec", {"train": {"lr": 1.0}}, {"train": {"lr": 0.5}}, "hint")
    check_resume_settings("pretrain_sasrec", {"train": {"lr": 1.0}}, {"train": {"lr": 0.5}}, "hint", frozenset(stops.RATE_SETTINGS["pretrain_sasrec"]))


def test_a_non_finite_gradient_norm_is_caught_even_when_the_loss_is_finite() -> None:
    with pytest.raises(stops.StepDiverged, match="epoch 3, step 7: the gradient norm is inf"):
        stops.check_step(1.25, torch.tensor(float("inf")), "pretrain_sasrec", 3, 7, [1e-3])
    stops.check_step(1.25, torch.tensor(2.0), "pretrain_sasrec", 3, 7, [1e-3])
    with pytest.raises(stops.StepDiverged, match="the training loss is nan"):
        stops.check_step(float("nan"), None, "pretrain_sasrec", 1, 1, [1e-3])


def test_the_export_refuses_non_finite_vectors(toy_home: Path) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.settings import load_settings
    from ur4rec_cli.runs import load_stage_model
    from ur4rec_cli.training.export import export_index

    settings = api.select_dataset(load_settings(None, {"model": {"modalities": ["item_text"]}}), None)
    loaded = load_stage_model(settings, "pretrain_sasrec")
    with torch.no_grad():
        next(p for p in loaded.model.parameters() if p.dim() == 2).view(-1)[5] = float("nan")
    folder = toy_home / "runs" / "toy" / "nan" / "index"
    with pytest.raises(DivergedError, match="non-finite vectors"):
        export_index(loaded.model, Dataset.load(ArtifactStore(toy_home).dataset_dir("toy")), folder, home=toy_home, extra={"stage": "pretrain_sasrec"})
    assert not folder.exists() and not list(toy_home.rglob(".tmp-*"))


@pytest.mark.parametrize("json_out", [False, True])
def test_recommend_on_an_index_with_a_nan_vector_is_an_error_not_an_empty_list(cli, toy_home: Path, json_out: bool) -> None:
    """An index exported before the export refused them (an old diverged run)."""
    folder = toy_home / "runs" / "toy" / "main" / "index"
    store = ArtifactStore(toy_home)
    man = store.load(folder, kind="index")
    vecs = np.load(folder / "item_vecs.npy")
    vecs[3, 0] = np.nan
    with store.write(folder, kind="index", inputs=man.inputs, settings=man.settings, extra=man.extra) as tmp:
        for f in folder.iterdir():
            if f.name != "manifest.json":
                (tmp / f.name).write_bytes(f.read_bytes())
        np.save(tmp / "item_vecs.npy", vecs)
    r = cli("recommend", "--user", "5", *(["--json"] if json_out else []))
    assert r.code == 13, r
    assert r.stdout == ""
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: the index at {folder} holds non-finite vectors (0 users, 1 items): the run diverged"), line


def test_the_finite_check_changes_no_training_result(cli, toy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same seed gives the same checkpoint bit for bit with the check and without it (no extra RNG
    draw, no change to any step). Checked once by hand against the code before the check (CHANGELOG)."""
    args = ["train", "--stage", "pretrain_sasrec", "--epochs", "2", "--device", "cpu", "--modalities", "item_text", "--seed", "3"]
    assert cli(*args, "--run", "checked").code == 0
    monkeypatch.setattr(stops, "check_step", lambda *a, **k: None)
    monkeypatch.setattr(stops, "gradient_norm", lambda optimizer: None)
    assert cli(*args, "--run", "unchecked").code == 0
    runs = toy_home / "runs" / "toy"
    for name in ("best.pt", "last.pt"):
        got, want = (read_checkpoint(runs / r / "pretrain_sasrec" / name) for r in ("checked", "unchecked"))
        assert got["state_dict"].keys() == want["state_dict"].keys()
        assert all(torch.equal(got["state_dict"][k], want["state_dict"][k]) for k in want["state_dict"])
    assert torch.equal(got["rng"]["torch"], want["rng"]["torch"]) and got["rng"]["numpy"] == want["rng"]["numpy"]
