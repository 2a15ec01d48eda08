"""SIGTERM (Slurm, Kubernetes, systemd, `timeout`) takes Ctrl-C's path: what was kept, the exact resume
command, exit 143; the resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import signal_when

torch = pytest.importorskip("torch")

EPOCHS = 12
ARGS = ["train", "--stage", "pretrain_sasrec", "--epochs", str(EPOCHS), "--device", "cpu", "--modalities", "item_text", "--select-on-validation"]


def _rows(history: Path) -> int:
    try:
        return len(history.read_text().splitlines())
    except OSError:
        return 0


def test_sigterm_stops_train_politely_and_the_printed_command_resumes_it(cli, toy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR4REC_TRAIN__BATCH_SIZE", "2")  # many small steps: the signal lands mid-epoch
    monkeypatch.setenv("UR4REC_TRAIN__PATIENCE", "100")  # every epoch runs
    history = toy_home / "runs" / "toy" / "term" / "pretrain_sasrec" / "history.jsonl"
    code, err = signal_when(
        [sys.executable, "-m", "ur4rec_cli", *ARGS, "--run", "term"], lambda: _rows(history) >= 3, signal.SIGTERM,
        within=120, wait=60, what="its second epoch",
    )  # fmt: skip
    assert code == 143, err
    lines = err.strip().splitlines()
    assert lines[-1] == "error: stopped by SIGTERM" and "Traceback" not in err, err
    said = next(x for x in lines if x.startswith("warning: stopped by SIGTERM in pretrain_sasrec after epoch "))
    kept = int(said.split("after epoch ", 1)[1].split(";", 1)[0])
    assert 2 <= kept < EPOCHS and f"{history.with_name('last.pt')} holds the state" in said
    assert read_epoch(history.with_name("last.pt")) == kept
    hint = said.split("resume with `", 1)[1].split("`", 1)[0]
    assert hint == f"ur4rec train --stage pretrain_sasrec --run term --epochs {EPOCHS} --modalities item_text --select-on-validation --device cpu --resume"

    r = cli(*hint.split()[1:], "--json")
    assert r.code == 0, r
    assert json.loads(r.stdout)["stages"][0]["epochs"] == EPOCHS
    assert [json.loads(x)["epoch"] for x in history.read_text().splitlines()] == list(range(1, EPOCHS + 1))
    # The same as a run that was never stopped, bit for bit.
    whole = cli(*ARGS, "--run", "whole")
    assert whole.code == 0, whole
    got = torch.load(history.with_name("last.pt"), weights_only=True)["state_dict"]
    want = torch.load(toy_home / "runs" / "toy" / "whole" / "pretrain_sasrec" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(got[k], want[k]) for k in want)


def read_epoch(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["epoch"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_under_torchrun_stops_every_rank_and_rank_0_says_it_once(toy_home: Path) -> None:
    history = toy_home / "runs" / "toy" / "ddp" / "pretrain_sasrec" / "history.jsonl"
    env = {**os.environ, "UR4REC_TRAIN__RUN": "ddp", "UR4REC_TRAIN__BATCH_SIZE": "2", "UR4REC_TRAIN__PATIENCE": "100", "UR4REC_TRAIN__NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    proc = subprocess.Popen([*launcher, "-m", "ur4rec_cli", *ARGS], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import time

        deadline = time.monotonic() + 180
        while _rows(history) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job never finished an epoch"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)  # as Slurm or Kubernetes stop the job: the launcher forwards it
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert err.count("error: stopped by SIGTERM") == 1, err[-4000:]
    assert err.count("warning: stopped by SIGTERM in pretrain_sasrec after epoch ") == 1, err[-4000:]
    assert "internal error" not in err
    said = next(x for x in err.splitlines() if x.startswith("warning: stopped by SIGTERM"))
    assert read_epoch(history.with_name("last.pt")) == int(said.split("after epoch ", 1)[1].split(";", 1)[0])


def test_any_command_stopped_by_sigterm_says_so_and_exits_143(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command, not only train: the real handler, in this process, restored afterwards."""
    import time

    from ur4rec_cli import api

    def long_job(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the signal's exception well before this ends
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(api, "prepare_data", long_job)
    before = signal.getsignal(signal.SIGTERM)
    t0 = time.perf_counter()
    r = cli("data")
    assert r.code == 143 and r.stderr.strip().splitlines()[-1] == "error: stopped by SIGTERM", r
    assert time.perf_counter() - t0 < 4
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_sigterm_during_an_artifacts_rename_waits_for_its_end(tmp_path: Path) -> None:
    """Between the two renames of store.write the artifact would be missing: the stop comes after."""
    from ur4rec_cli import store
    from ur4rec_cli.termination import Terminated, handle_sigterm

    s = store.ArtifactStore(tmp_path)
    folder = tmp_path / "art"
    with s.write(folder, kind="x") as tmp:
        (tmp / "a.txt").write_text("old")
    real = store.os.replace
    calls = []

    def replace_then_signal(src, dst):
        real(src, dst)
        if Path(src) == folder or Path(dst) == folder:
            calls.append(dst)
        if Path(src) == folder:  # the old artifact moved aside, the new one not yet in place
            os.kill(os.getpid(), signal.SIGTERM)

    with handle_sigterm():
        store.os.replace = replace_then_signal
        try:
            with pytest.raises(Terminated):
                with s.write(folder, kind="x") as tmp:
                    (tmp / "a.txt").write_text("new")
        finally:
            store.os.replace = real
    assert len(calls) == 2 and (folder / "a.txt").read_text() == "new" and s.load(folder, kind="x") is not None
    assert not list(tmp_path.glob(".tmp-*"))
