"""Training stages on tiny synthetic data: order errors, freezing, resume, checkpoints, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ur4rec_cli.data.dataset import build_dataset  # noqa: E402
from ur4rec_cli.errors import ArtifactMissingError, StageOrderError  # noqa: E402
from ur4rec_cli.settings import STAGES, load_settings  # noqa: E402
from ur4rec_cli.store import Manifest  # noqa: E402
from ur4rec_cli import runs  # noqa: E402
from ur4rec_cli.training import stages as st  # noqa: E402

N_USERS, N_ITEMS = 16, 24


def _dataset():
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(1, N_USERS + 1):
        start = int(rng.integers(1, N_ITEMS))
        for t in range(int(rng.integers(6, 14))):
            users.append(str(u))
            items.append(str((start + t) % N_ITEMS + 1))  # a learnable "next item" pattern
            times.append(t)
    n = len(users)
    meta = {str(i): {"title": f"Item {i}", "year": 1990, "genres": ["Drama"]} for i in range(1, N_ITEMS + 1)}
    return build_dataset("toy", "synthetic", np.array(users), np.array(items), np.ones(n), np.array(times), meta, {})


def _settings(content_stage1: bool = False, **train):
    base = {"sasrec_epochs": 3, "retriever_epochs": 2, "joint_epochs": 2, "end_to_end_epochs": 2, "batch_size": 8, "patience": 50, "device": "cpu", "learn_validation": False}
    base.update(train)
    # Stage 1 on item IDs alone: these tests pin the stage mechanics (tests/test_content_stage1.py covers model.content_stage1).
    model = {"hidden": 16, "expert_dim": 8, "max_len": 10, "modalities": ["user_text", "item_text"], "content_stage1": content_stage1}
    return load_settings(None, {"model": model, "train": base})


def _context(settings) -> st.TrainContext:
    ds = _dataset()
    g = np.random.default_rng(1)
    unit = lambda n, d: (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(g.normal(size=(n, d))).astype(np.float32)  # noqa: E731
    feats = {"item_text": unit(N_ITEMS + 1, 384), "user_text": unit(N_USERS + 1, 384)}
    man = Manifest(kind="dataset", files={"x": {"sha256": "0" * 64, "size": 1}})
    return st.TrainContext(
        settings, ds, man, torch.device("cpu"), list(settings.model.modalities), feats, {"dataset": man.digest}, run_dir=runs.run_dir(settings)
    )


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_later_stage_without_predecessor_is_one_clear_error(cli) -> None:
    r = cli("train", "--stage", "joint_finetune", "--device", "cpu")
    assert r.code == StageOrderError.exit_code
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pretrain_retriever" in lines[0] and "ur4rec train" in lines[0]


def test_cuda_without_cuda_is_one_clear_error(cli) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    r = cli("train", "--device", "cuda")
    assert r.code != 0 and "CUDA is not available" in r.stderr and "Traceback" not in r.stderr


def test_stage_freezing_sasrec_moves_only_when_it_should() -> None:
    settings = _settings()
    ctx = _context(settings)
    st.run_stage(ctx, "pretrain_sasrec")
    before = {}
    for stage in STAGES[1:]:
        start = runs.read_checkpoint(ctx.run_dir / STAGES[STAGES.index(stage) - 1] / "best.pt")["state_dict"]
        st.run_stage(ctx, stage)
        last = runs.read_checkpoint(ctx.run_dir / stage / "last.pt")["state_dict"]
        sas = [k for k in last if k.startswith("sasrec.")]
        moe = [k for k in last if k.startswith("moe.") or k.startswith("text_keys.")]
        changed_sas = any(not torch.equal(start[k], last[k]) for k in sas)
        changed_moe = any(not torch.equal(start[k], last[k]) for k in moe)
        before[stage] = (changed_sas, changed_moe)
    assert before["pretrain_retriever"] == (False, True)
    assert before["joint_finetune"] == (True, True)
    assert before["end_to_end"] == (True, True)


@pytest.mark.parametrize("average", [0.0, 0.75])
def test_resume_equals_uninterrupted(isolated_home: Path, average: float) -> None:
    """Also with weight averaging (epochs 2-4 averaged; the interruption falls inside the window)."""
    full = _settings(run="full", sasrec_epochs=4, average_last=average)
    ctx = _context(full)
    st.run_stage(ctx, "pretrain_sasrec")
    want = runs.read_checkpoint(ctx.run_dir / "pretrain_sasrec" / "last.pt")

    # Ctrl-C during epoch 3, then a resume in a fresh context for the remaining epochs.
    part = _settings(run="part", sasrec_epochs=4, average_last=average)
    _run_epochs_then_interrupt(_context(part), after=2)
    ctx2 = _context(part)
    torch.manual_seed(12345)  # the resumed run must not depend on the global RNG state at start
    np.random.seed(7)
    st.run_stage(ctx2, "pretrain_sasrec", resume=True)
    got = runs.read_checkpoint(ctx2.run_dir / "pretrain_sasrec" / "last.pt")
    assert got["epoch"] == want["epoch"] == 4
    for k, v in want["state_dict"].items():
        assert torch.equal(v, got["state_dict"][k]), k
    if average:
        assert got["average"]["count"] == want["average"]["count"] == 3
        for k, v in want["average"]["mean"].items():
            assert torch.equal(v, got["average"]["mean"][k]), k
    best = lambda c: runs.read_checkpoint(c.run_dir / "pretrain_sasrec" / "best.pt")["state_dict"]  # noqa: E731
    for k, v in best(ctx).items():
        assert torch.equal(v, best(ctx2)[k]), k
    hist = lambda r: [json.loads(x) for x in (isolated_home / "runs" / "ml-100k" / r / "pretrain_sasrec" / "history.jsonl").read_text().splitlines()]  # noqa: E731
    assert [h["val_ndcg10"] for h in hist("full")] == [h["val_ndcg10"] for h in hist("part")]


def _run_epochs_then_interrupt(ctx, after: int) -> None:
    """Run the stage and raise KeyboardInterrupt inside epoch ``after + 1`` (as Ctrl-C would)."""
    from ur4rec_cli.training import trainer

    calls = {"n": 0}
    original = trainer.validation_metrics

    def counting(*a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return original(*a, **k)

    trainer.validation_metrics = counting
    try:
        with pytest.raises(KeyboardInterrupt):
            st.run_stage(ctx, "pretrain_sasrec")
    finally:
        trainer.validation_metrics = original
    last = runs.read_checkpoint(ctx.run_dir / "pretrain_sasrec" / "last.pt")
    assert last["epoch"] == after and not last["early_stopping"]["finished"]


def test_weight_averaging_makes_the_stage_model_the_mean_of_its_last_epochs(isolated_home: Path) -> None:
    """Fixed schedule: best.pt is the mean of the last epochs' weights; training itself is unchanged."""
    plain = _context(_settings(run="plain", sasrec_epochs=4, learn_validation=True))
    st.run_stage(plain, "pretrain_sasrec")
    avg = _context(_settings(run="avg", sasrec_epochs=4, learn_validation=True, average_last=0.5))
    st.run_stage(avg, "pretrain_sasrec")
    read = lambda c, f: runs.read_checkpoint(c.run_dir / "pretrain_sasrec" / f)  # noqa: E731
    last_plain, last_avg, best_avg = read(plain, "last.pt"), read(avg, "last.pt"), read(avg, "best.pt")
    for k, v in last_plain["state_dict"].items():
        assert torch.equal(v, last_avg["state_dict"][k]), k  # the trajectory does not depend on averaging
    assert last_avg["average"]["count"] == 2  # epochs 3 and 4
    moved = 0
    for k, mean in last_avg["average"]["mean"].items():
        assert torch.equal(best_avg["state_dict"][k], mean), k
        moved += int(not torch.equal(mean, last_avg["state_dict"][k]))
    assert moved > 0


def test_checkpoint_loads_weights_only_and_rebuilds_model() -> None:
    settings = _settings(sasrec_epochs=1)
    ctx = _context(settings)
    st.run_stage(ctx, "pretrain_sasrec")
    path = ctx.run_dir / "pretrain_sasrec" / "best.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["model_args"]["hidden"] == 16 and raw["stage"] == "pretrain_sasrec"
    assert "dataset" in raw["digests"] and raw["settings"]["train"]["batch_size"] == 8
    last = torch.load(ctx.run_dir / "pretrain_sasrec" / "last.pt", weights_only=True)
    assert {"optimizer", "scheduler", "rng", "early_stopping"} <= set(last)
    loaded = runs.load_stage_model(settings, "pretrain_sasrec")
    assert loaded.model.item_vectors().shape == (N_ITEMS + 1, 16)  # model.hidden honoured
    assert not loaded.model.training
    assert runs.trained_stages(settings) == ["pretrain_sasrec"]


def test_batch_size_is_honoured() -> None:
    from ur4rec_cli.training.trainer import iterate_batches, training_pairs

    ds = _dataset()
    pairs = training_pairs(ds, 10)
    sizes = [u.shape[0] for u, _, _ in iterate_batches(pairs, 5, np.random.default_rng(0))]
    assert max(sizes) == 5 and sum(sizes) == N_USERS
    for _, x, y in iterate_batches(pairs, 5, np.random.default_rng(0)):
        assert torch.equal(x != 0, y != 0)  # same padding pattern: targets align with inputs


def test_all_stages_final_and_export(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings()
    ctx = _context(settings)
    summaries = [st.run_stage(ctx, s) for s in STAGES]
    assert [s["stage"] for s in summaries] == list(STAGES)
    final = st.choose_final(ctx)
    vals = {s["stage"]: s["best_val"]["NDCG@10"] for s in summaries}
    assert final["stage"] == max(vals, key=lambda k: (vals[k], -STAGES.index(k)))
    folder = Path(st.export_final(ctx, final["stage"]))
    assert "exporting user vectors" not in capsys.readouterr().err  # a quick export: no progress line
    man = json.loads((folder / "manifest.json").read_text())
    assert man["kind"] == "index" and man["extra"]["stage"] == final["stage"]
    users = np.load(folder / "user_vecs.npy")
    items = np.load(folder / "item_vecs.npy")
    assert users.shape[0] == N_USERS + 1 and items.shape[0] == N_ITEMS + 1
    assert not users[0].any() and not items[0].any()
    blocks = json.loads((folder / "blocks.json").read_text())
    assert blocks["bounds"][-1][1] == items.shape[1]
    gates = np.load(folder / "gates.npz")
    assert gates["modality"].shape[0] == N_USERS + 1
    # Export row u == the model's vector from the FULL history.
    loaded = runs.load_stage_model(settings)
    from ur4rec_cli.data.sequences import pad_left

    # Every row, though the export pads each length-sorted batch only to its longest history and
    # takes vectors and gate weights from one pass.
    everyone = torch.arange(1, N_USERS + 1)
    full = torch.from_numpy(pad_left([ctx.dataset.history(int(u), "full") for u in everyone], 10))
    with torch.no_grad():
        v = loaded.model.user_vectors(full, everyone)
        g, w = loaded.model.gate_weights(full, everyone)
    assert np.allclose(users[1:], v.numpy(), atol=1e-5)
    assert np.allclose(gates["modality"][1:], g.numpy(), atol=1e-5) and np.allclose(gates["experts"][1:], w.numpy(), atol=1e-5)


def test_missing_model_is_artifact_missing() -> None:
    with pytest.raises(ArtifactMissingError, match="ur4rec train"):
        runs.load_stage_model(_settings())


def _atomic_files(folder: Path) -> Path:
    """A tiny RecBole-style data set (the format of the ML-100K mirror)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, 13):
        start = int(rng.integers(1, 20))
        rows += [f"{u}\t{(start + t) % 20 + 1}\t{1 + t % 5}\t{1000 + t}" for t in range(int(rng.integers(5, 10)))]
    (folder / "toy.inter").write_text("\n".join(rows) + "\n")
    genres = ["Comedy", "Drama", "Action Thriller"]
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    items += [f"{i}\tMovie {i}\t{1980 + i}\t{genres[i % 3]}" for i in range(1, 21)]
    (folder / "toy.item").write_text("\n".join(items) + "\n")
    users = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    users += [f"{u}\t{20 + u}\t{'MF'[u % 2]}\tstudent\t00000" for u in range(1, 13)]
    (folder / "toy.user").write_text("\n".join(users) + "\n")
    return folder / "toy.inter"


def test_train_all_from_a_fresh_home_prepares_everything(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR4REC_DATA__SOURCE", str(_atomic_files(tmp_path / "src")))
    monkeypatch.setenv("UR4REC_MODEL__HIDDEN", "16")
    monkeypatch.setenv("UR4REC_MODEL__MAX_LEN", "8")
    r = cli("train", "--stage", "all", "--epochs", "1", "--device", "cpu", "--modalities", "item_text,image", "--json")
    assert r.code == 0, r
    out = json.loads(r.stdout)
    assert [s["stage"] for s in out["stages"]] == list(STAGES)
    assert out["modalities"] == ["item_text"]  # no CLIP weights offline: image is off, and said so
    assert any("image modality off" in n for n in out["notes"]) and "image modality off" in r.stderr
    assert out["final"]["stage"] in STAGES
    index = Path(out["index"])
    assert (index / "item_vecs.npy").is_file() and (index / "gates.npz").is_file()
    gates = np.load(index / "gates.npz")
    assert np.all(gates["modality"][1:, 2] == 0) or out["final"]["stage"] == "pretrain_sasrec"
    # A second call with --resume keeps every finished stage.
    again = cli("train", "--stage", "all", "--resume", "--device", "cpu", "--modalities", "item_text", "--json")
    assert again.code == 0, again
    assert all(s["skipped"] for s in json.loads(again.stdout)["stages"])


def test_long_train_sequences_become_windows_covering_every_transition() -> None:
    from ur4rec_cli.training.trainer import training_pairs

    ds = _dataset()
    max_len = 4  # shorter than every train sequence: several windows per user
    users, inputs, targets = training_pairs(ds, max_len)
    assert all(1 <= len(x) <= max_len and len(x) == len(y) for x, y in zip(inputs, targets))
    for u in range(1, N_USERS + 1):
        seq = ds.history(u, "train")
        rows = [i for i in range(len(users)) if users[i] == u]
        assert len(rows) == -(-(len(seq) - 1) // max_len)
        # Every (input -> next item) transition of the train sequence is a target exactly once, in order.
        got = sorted((int(x), int(y)) for i in rows for x, y in zip(inputs[i], targets[i]))
        assert got == sorted(zip(seq[:-1].tolist(), seq[1:].tolist()))
        assert np.array_equal(np.concatenate([targets[i] for i in reversed(rows)]), seq[1:])


def test_every_target_position_weighs_the_same_whatever_its_batch() -> None:
    """Length-sorted batches hold 2x-10x different position counts; an epoch's summed step losses
    (summed CE / positions_per_step) must equal steps x the mean CE over all positions."""
    from ur4rec_cli.models.sasrec import SASRec
    from ur4rec_cli.training.trainer import iterate_batches, n_batches, positions_per_step, softmax_loss, training_pairs

    torch.manual_seed(0)
    ds = _dataset()
    pairs = training_pairs(ds, 10)
    model = SASRec(N_ITEMS, 10, 16, 1, 1, 0.0, 0.02).eval()
    steps = n_batches(pairs, 3)
    per_step = positions_per_step(pairs, steps)
    assert per_step == pytest.approx(sum(len(x) for x in pairs[1]) / steps)
    epoch, all_ce, counts = 0.0, [], []
    with torch.no_grad():
        for users, x, y in iterate_batches(pairs, 3, np.random.default_rng(0)):
            vecs, items, _ = model.sequence_loss_inputs(x, users)
            flat = y[x != 0]
            summed = softmax_loss(vecs, items, flat, reduction="sum")
            assert torch.allclose(summed / flat.numel(), softmax_loss(vecs, items, flat))
            epoch += float(summed / per_step)
            all_ce.append(float(summed))
            counts.append(flat.numel())
    assert len(set(counts)) > 1  # the batches really differ in size
    assert epoch == pytest.approx(steps * sum(all_ce) / sum(counts), rel=1e-5)


def test_ctrl_c_hint_resumes_the_same_run_and_a_changed_setting_is_refused(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ur4rec_cli.training import trainer

    monkeypatch.setenv("UR4REC_DATA__SOURCE", str(_atomic_files(tmp_path / "src")))
    monkeypatch.setenv("UR4REC_MODEL__HIDDEN", "16")
    monkeypatch.setenv("UR4REC_MODEL__MAX_LEN", "8")
    args = ["train", "--stage", "pretrain_sasrec", "--run", "sig2", "--epochs", "4", "--seed", "5", "--modalities", "item_text", "--device", "cpu", "--select-on-validation"]
    uninterrupted = cli(*[a if a != "sig2" else "whole" for a in args], "--json")
    assert uninterrupted.code == 0, uninterrupted

    calls = {"n": 0}
    original = trainer.validation_metrics

    def ctrl_c_in_epoch_3(*a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(trainer, "validation_metrics", ctrl_c_in_epoch_3)
    r = cli(*args)
    assert r.code == 130
    hint = r.stderr.split("resume with `", 1)[1].split("`", 1)[0]
    assert hint == "ur4rec train --stage pretrain_sasrec --run sig2 --epochs 4 --seed 5 --modalities item_text --select-on-validation --device cpu --resume"
    monkeypatch.setattr(trainer, "validation_metrics", original)

    # Resuming with the default epoch cap would change the run: refused in one line, nothing touched.
    last = tmp_path / "home" / "runs" / "toy" / "sig2" / "pretrain_sasrec" / "last.pt"
    before = last.read_bytes()
    r = cli("train", "--stage", "pretrain_sasrec", "--run", "sig2", "--seed", "5", "--modalities", "item_text", "--device", "cpu", "--resume")
    assert r.code == 2 and r.stderr.splitlines()[-1].startswith("error: --resume: pretrain_sasrec was started with train.epochs = 4, not None"), r
    assert last.read_bytes() == before

    # The hint, run as printed, finishes the run exactly as the uninterrupted one.
    r = cli(*hint.split()[1:], "--json")
    assert r.code == 0, r
    want = [s["best_val"] for s in json.loads(uninterrupted.stdout)["stages"]]
    assert [s["best_val"] for s in json.loads(r.stdout)["stages"]] == want
    got = runs.read_checkpoint(last)["state_dict"]
    ref = runs.read_checkpoint(tmp_path / "home" / "runs" / "toy" / "whole" / "pretrain_sasrec" / "last.pt")["state_dict"]
    assert all(torch.equal(got[k], ref[k]) for k in ref)


@pytest.mark.parametrize("width", [80, 120])
def test_train_summary_reads_at_80_columns(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from ur4rec_cli import console as console_mod
    from ur4rec_cli.cli import train as train_cli

    stages = [
        {"stage": stage, "epochs": 43, "best_epoch": 23, "best_val": {"NDCG@10": 0.1115, "HR@10": 0.2068}, "wall_s": 312.4,
         "peak_rss_mb": 2274.0, "curve": "▁▂▃▄▅▆▇█" * 6, "skipped": stage == "pretrain_sasrec"}
        for stage in STAGES
    ]
    result = {"dataset": "ml-100k", "run": "main", "device": "cpu", "stages": stages, "modalities": ["user_text"], "notes": [],
              "final": {"stage": "joint_finetune"}, "index": "/x/index", "protocol": "leave-one-out"}
    buf = io.StringIO()
    monkeypatch.setattr(console_mod, "out", Console(file=buf, width=width, no_color=True))
    train_cli._print(result)
    text = buf.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    header = next(line for line in text.splitlines() if "stage" in line and "epochs" in line)
    for col in ("epochs", "best", "NDCG@10", "HR@10", "wall s", "RSS MB"):
        assert col in header
    assert "pretrain_sasrec (kept)" in text and "0.1115" in text and "ml-100k" in text


def test_each_epoch_and_the_stage_end_are_reported(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One line per epoch (cap, patience left, val NDCG@10, best so far) and one saying why the stage ended."""
    import re

    from ur4rec_cli.training import trainer

    ctx = _context(_settings(sasrec_epochs=6, patience=2))
    scores = iter([0.10, 0.30, 0.20, 0.25, 0.90, 0.95])
    fake = lambda *a, **k: {"NDCG@10": next(scores), "HR@10": 0.5, "MRR": 0.1}  # noqa: E731
    original = trainer.validation_metrics
    monkeypatch.setattr(trainer, "validation_metrics", fake)
    capsys.readouterr()
    summary = st.run_stage(ctx, "pretrain_sasrec")
    monkeypatch.setattr(trainer, "validation_metrics", original)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pretrain_sasrec")]
    epochs = [line for line in lines if " epoch " in line and "done" not in line]
    assert len(epochs) == 4 and summary["epochs"] == 4 and summary["stopped"] == "early"
    assert re.match(r"pretrain_sasrec epoch 1 \(cap 6, patience 2 left\): loss [\d.]+, val NDCG@10 0\.1000 \(new best\)", epochs[0])
    assert "epoch 3 (cap 6, patience 1 left)" in epochs[2] and "val NDCG@10 0.2000 (best 0.3000 at epoch 2)" in epochs[2]
    assert "epoch 4 (cap 6, patience 0 left)" in epochs[3]
    assert lines[-1] == (
        "pretrain_sasrec done after 4 epochs (stopped early: no better validation NDCG@10 for 2 epochs); best epoch 2, val NDCG@10 0.3000"
    )

    ctx = _context(_settings(sasrec_epochs=2, patience=5))
    capsys.readouterr()
    st.run_stage(ctx, "pretrain_sasrec")
    last = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pretrain_sasrec")][-1]
    assert re.fullmatch(r"pretrain_sasrec done after 2 epochs \(reached its cap of 2 epochs\); best epoch \d, val NDCG@10 [\d.]+", last)


def test_learn_validation_adds_the_validation_item_as_a_target_and_never_the_test_item() -> None:
    from ur4rec_cli.training.trainer import training_pairs

    ds = _dataset()
    max_len = 4  # several windows per user: the windowing must still cover every transition once
    for learn, end in ((False, -2), (True, -1)):
        users, inputs, targets = training_pairs(ds, max_len, learn_validation=learn)
        assert all(len(x) == len(y) for x, y in zip(inputs, targets))
        for u in range(1, N_USERS + 1):
            seq = ds.sequence(u)
            rows = [i for i in range(len(users)) if users[i] == u]
            # In order, the targets are seq[1:-2] (train) or seq[1:-1] (train + the validation item).
            assert np.array_equal(np.concatenate([targets[i] for i in reversed(rows)]), seq[1:end])
            assert np.array_equal(np.concatenate([inputs[i] for i in reversed(rows)]), seq[: end - 1])
            assert (int(targets[rows[0]][-1]) == ds.target(u, "valid")) is learn
            assert ds.target(u, "test") not in {int(t) for i in rows for t in targets[i][-1:]}


def test_learn_validation_runs_a_fixed_schedule_without_validating_and_ends_on_the_last_stage(isolated_home: Path) -> None:
    from ur4rec_cli.errors import ConfigError
    from ur4rec_cli.evaluation.run import _load_scorer

    settings = _settings(learn_validation=True, patience=1)  # patience would stop a selecting run after epoch 2
    ctx = _context(settings)
    summaries = [st.run_stage(ctx, s) for s in STAGES]
    plan = {"pretrain_sasrec": 3, "pretrain_retriever": 2, "joint_finetune": 2, "end_to_end": 2}
    for s in summaries:
        assert s["epochs"] == plan[s["stage"]] and s["best_epoch"] == s["epochs"] and s["best_val"] == {}
        rows = [json.loads(x) for x in (ctx.run_dir / s["stage"] / "history.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, plan[s["stage"]] + 1))  # no epoch-0 validation either
        assert not any("val_ndcg10" in r for r in rows)
    final = st.choose_final(ctx)
    assert final["stage"] == "end_to_end" and final["selected_by"] == "last stage"
    # best.pt is the last epoch's weights
    best = torch.load(ctx.run_dir / "end_to_end" / "best.pt", weights_only=True)["state_dict"]
    last = torch.load(ctx.run_dir / "end_to_end" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(best[k], last[k]) for k in best)
    # Its validation figures would be leaked: evaluate refuses them, test is fine.
    with pytest.raises(ConfigError, match="leaked"):
        _load_scorer(settings, ctx.dataset, None, "valid", "cpu")
    _load_scorer(settings, ctx.dataset, None, "test", "cpu")
    # A selecting stage cannot start from a predecessor that trained on the validation items.
    selecting = _settings(learn_validation=False)
    with pytest.raises(StageOrderError, match="learn_validation"):
        st.run_stage(_context(selecting), "pretrain_retriever")


def test_newest_window_keeps_only_each_users_newest_transitions() -> None:
    from ur4rec_cli.training.trainer import training_pairs

    ds = _dataset()
    users, inputs, targets = training_pairs(ds, 4, newest_only=True)
    assert sorted(users.tolist()) == list(range(1, N_USERS + 1))  # one row per user
    for u, x, y in zip(users, inputs, targets):
        seq = ds.history(int(u), "train")
        assert np.array_equal(y, seq[1:][-4:]) and np.array_equal(x, seq[:-1][-4:])


def test_shuffle_ties_reorders_only_same_timestamp_items_of_the_trained_part() -> None:
    from ur4rec_cli.training.trainer import training_pairs

    # One user: times 0 0 0 1 2 2 | valid at 3 | test at 3: the groups {1,2,3} and {5,6} may move, 4 may not.
    users, items, times = ["1"] * 8, [str(i) for i in range(1, 9)], [0, 0, 0, 1, 2, 2, 3, 3]
    meta = {str(i): {"title": f"Item {i}", "year": 1990, "genres": ["Drama"]} for i in range(1, 9)}
    ds = build_dataset("ties", "synthetic", np.array(users), np.array(items), np.ones(8), np.array(times), meta, {})
    raw = lambda seq: [int(ds.item_ids[i - 1]) for i in seq]  # noqa: E731
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(40):
        for learn in (False, True):
            _, inputs, targets = training_pairs(ds, 50, learn_validation=learn, tie_rng=rng)
            seq = raw(np.concatenate([inputs[0][:1], targets[0]]))
            want_len = 7 if learn else 6
            assert len(seq) == want_len and 8 not in seq  # the test item never enters
            assert sorted(seq[:3]) == [1, 2, 3] and seq[3] == 4 and sorted(seq[4:6]) == [5, 6]
            if learn:
                assert seq[6] == 7  # the validation item is alone in its trained timestamp group
            seen.add(tuple(seq[:6]))
    assert len(seen) == 12  # every order of the two groups (3! x 2!) turned up
    # Without a generator the source order stays.
    _, inputs, targets = training_pairs(ds, 50)
    assert raw(np.concatenate([inputs[0][:1], targets[0]])) == [1, 2, 3, 4, 5, 6]


def test_finetune_recent_supervises_only_each_users_newest_transitions() -> None:
    from ur4rec_cli.training.trainer import positions_per_step, training_pairs

    ds = _dataset()
    users, inputs, targets = training_pairs(ds, 4, recent=3)
    for u in range(1, N_USERS + 1):
        train = ds.history(u, "train")
        rows = [i for i in range(len(users)) if users[i] == u]
        got = np.concatenate([targets[i] for i in reversed(rows)])
        fed = np.concatenate([inputs[i] for i in reversed(rows)])
        # Context: the windows that hold the 3 newest targets; supervised: exactly those 3.
        assert np.array_equal(got[got != 0], train[-3:])
        assert np.array_equal(fed, train[len(train) - 1 - len(fed) : -1])
    assert positions_per_step((users, inputs, targets), 1) == 3 * N_USERS
    # Stages 1-2 always supervise every transition; the setting reaches stages 3-4 only.
    plans = {s: st.stage_plan(_settings(finetune_recent=3), s).recent for s in STAGES}
    assert plans == {"pretrain_sasrec": 0, "pretrain_retriever": 0, "joint_finetune": 3, "end_to_end": 3}


def test_finetune_recent_stages_train_and_skip_unsupervised_positions(isolated_home: Path) -> None:
    ctx = _context(_settings(finetune_recent=2, learn_validation=True))
    for s in STAGES:
        summary = st.run_stage(ctx, s)
        assert summary["epochs"] >= 1
    rows = [json.loads(x) for x in (ctx.run_dir / "end_to_end" / "history.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows)


@pytest.mark.parametrize("start_from", ["best", "last"])
def test_start_from_chains_the_predecessors_best_or_last_epoch(isolated_home: Path, monkeypatch: pytest.MonkeyPatch, start_from: str) -> None:
    from ur4rec_cli.training import trainer

    ctx = _context(_settings(sasrec_epochs=3, start_from=start_from))
    scores = iter([0.30, 0.10, 0.20])  # stage 1: best epoch 1, last epoch 3
    monkeypatch.setattr(trainer, "validation_metrics", lambda *a, **k: {"NDCG@10": next(scores), "HR@10": 0.5, "MRR": 0.1})
    st.run_stage(ctx, "pretrain_sasrec")
    monkeypatch.undo()
    st.run_stage(ctx, "pretrain_retriever")  # SASRec is frozen here: it keeps the weights it started from
    read = lambda stage, f: runs.read_checkpoint(ctx.run_dir / stage / f)["state_dict"]  # noqa: E731
    want, other = read("pretrain_sasrec", f"{start_from}.pt"), read("pretrain_sasrec", "last.pt" if start_from == "best" else "best.pt")
    got = read("pretrain_retriever", "best.pt")
    sasrec = [k for k in want if k.startswith("sasrec.")]
    assert all(torch.equal(got[k], want[k]) for k in sasrec)
    assert not all(torch.equal(got[k], other[k]) for k in sasrec)


def test_a_second_writer_of_a_run_is_refused_naming_the_holder(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `train` of one run would write the same checkpoints: the second gets one line and exit 11,
    and the lock goes with its holder (here a child process that holds it, then exits)."""
    import subprocess
    import sys

    from ur4rec_cli.errors import BusyError
    from ur4rec_cli.runlock import run_lock

    monkeypatch.setenv("UR4REC_DATA__SOURCE", str(_atomic_files(tmp_path / "src")))
    folder = runs.run_dir(load_settings(None, {}))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from ur4rec_cli.runlock import run_lock\n"
         f"with run_lock(Path({str(folder)!r}), 'ur4rec train --stage all', 'run main'):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = cli("train", "--stage", "pretrain_sasrec", "--epochs", "1", "--device", "cpu")
        assert r.code == BusyError.exit_code == 11, r
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1 and f"pid {holder.pid}" in line and "ur4rec train --stage all" in line and "Traceback" not in line
    finally:
        holder.kill()
        holder.wait()
    with run_lock(folder, "test", "run main"):  # released with its holder's death: free again
        pass
