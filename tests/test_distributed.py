"""`ur4rec train` under torchrun: two CPU ranks (gloo) on tiny data against a single-process run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES

torch = pytest.importorskip("torch")

N_USERS, N_ITEMS = 12, 20  # even user count: the two shards partition the users exactly


def _ml100k_folder(root: Path) -> Path:
    """A small dataset in the ML-100K file format (u.data, u.item, u.user, u.info, u.genre)."""
    folder = root / "ml-100k"
    folder.mkdir()
    rng = np.random.default_rng(3)
    rows = []
    for u in range(1, N_USERS + 1):
        start = int(rng.integers(0, N_ITEMS))
        for t in range(int(rng.integers(5, 9))):
            rows.append(f"{u}\t{(start + t) % N_ITEMS + 1}\t4\t{1000 + 10 * t}")
    (folder / "u.data").write_text("\n".join(rows) + "\n", "latin-1")
    flags = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)
    items = [f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{flags}" for i in range(1, N_ITEMS + 1)]
    (folder / "u.item").write_text("\n".join(items) + "\n", "latin-1")
    (folder / "u.user").write_text("\n".join(f"{u}|30|M|other|00000" for u in range(1, N_USERS + 1)) + "\n", "latin-1")
    (folder / "u.info").write_text(f"{N_USERS} users\n{N_ITEMS} items\n{len(rows)} ratings\n", "latin-1")
    shutil.copy(FIXTURES / "ml-100k" / "u.genre", folder / "u.genre")
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def test_torchrun_two_ranks_equal_single_process(isolated_home: Path, tmp_path: Path) -> None:
    data = _ml100k_folder(tmp_path)
    env = {
        **os.environ,
        "UR4REC_DATA__SOURCE": str(data),
        "UR4REC_MODEL__DROPOUT": "0",
        "UR4REC_MODEL__HIDDEN": "16",
        "UR4REC_MODEL__MAX_LEN": "10",
        "UR4REC_TRAIN__BATCH_SIZE": "64",  # one batch per rank (and one for the single process): same math
        "UR4REC_TRAIN__NUM_THREADS": "1",
        "NO_COLOR": "1",
    }
    common = ["-m", "ur4rec_cli", "--home", str(isolated_home), "train", "--stage", "pretrain_sasrec", "--epochs", "2", "--device", "cpu", "--modalities", ""]
    # `--run` after the script is still parsed by torchrun (ambiguous with its --run-path): use the env var.
    single = subprocess.run([sys.executable, *common], env={**env, "UR4REC_TRAIN__RUN": "single"}, capture_output=True, text=True, timeout=120)
    assert single.returncode == 0, single.stderr

    dumps = tmp_path / "dumps"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    # The worker is `ur4rec` itself plus the library's stage-end hook saving each rank's weights.
    worker = [str(Path(__file__).with_name("ddp_worker.py")), str(dumps), *common[2:]]
    ddp = subprocess.run([*launcher, *worker], env={**env, "UR4REC_TRAIN__RUN": "ddp"}, capture_output=True, text=True, timeout=180)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    # Both ranks hold the same weights after training.
    w0 = torch.load(dumps / "pretrain_sasrec-rank0.pt", weights_only=True)["state_dict"]
    w1 = torch.load(dumps / "pretrain_sasrec-rank1.pt", weights_only=True)["state_dict"]
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k

    # Only rank 0 wrote and reported: the same files as a single-process run, one history row per epoch, one table.
    runs = isolated_home / "runs" / "ml-100k"
    assert _files(runs / "ddp") == _files(runs / "single")
    assert len((runs / "ddp" / "pretrain_sasrec" / "history.jsonl").read_text().splitlines()) == 2
    assert ddp.stdout.count("ur4rec train · ml-100k · run ddp") == 1  # one summary table, naming its data set
    assert "x 2 ranks" in ddp.stderr

    # DDP (per-rank batch = half the users, loss over the global target count) equals one process.
    for name in ("best.pt", "last.pt"):
        want = torch.load(runs / "single" / "pretrain_sasrec" / name, weights_only=True)
        got = torch.load(runs / "ddp" / "pretrain_sasrec" / name, weights_only=True)
        assert want["epoch"] == got["epoch"]
        assert abs(want["best_metric"] - got["best_metric"]) < 1e-4
        for k, v in want["state_dict"].items():
            assert torch.allclose(v, got["state_dict"][k], atol=1e-4), (name, k, (v - got["state_dict"][k]).abs().max())
    last = torch.load(runs / "ddp" / "pretrain_sasrec" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(last[k], w0[k]) for k in w0)  # last.pt is rank 0's final model
