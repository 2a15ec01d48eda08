"""One device resolver: every command gives the same one-line error for an absent or unknown device."""

from __future__ import annotations

from pathlib import Path

import pytest

from ur4rec_cli.devices import resolve_device
from ur4rec_cli.errors import DeviceError

torch = pytest.importorskip("torch")

ABSENT = [spec for spec in ("mps", "cuda:7", "tpu") if not (spec == "mps" and torch.backends.mps.is_available())]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_same_error_from_every_command(cli, ml100k: Path) -> None:
    commands = {
        "llm": ["llm", "--backend", "template"],
        "clip": ["clip", "--pretrained", "none"],
        "train": ["train", "--stage", "pretrain_sasrec", "--epochs", "1"],
        "evaluate": ["evaluate", "--stage", "popularity"],
    }
    for spec in ABSENT:
        with pytest.raises(DeviceError) as expected:
            resolve_device(spec)
        seen = {}
        for name, args in commands.items():
            r = cli(*args, "--device", spec)
            assert r.code == 5, (name, spec, r)
            seen[name] = r.stderr
        assert set(seen.values()) == {f"error: {expected.value}\n"}, seen


def test_auto_and_cpu() -> None:
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected
    assert resolve_device(" CPU ").type == "cpu"
