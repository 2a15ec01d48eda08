"""Shared fixtures: every test gets its own artifact home and no stray configuration."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the artifact home and config at tmp_path; drop keys and UR4REC_* from the env."""
    home = tmp_path / "home"
    for var in list(os.environ):
        if var.startswith("UR4REC_") or var in {"OPENAI_API_KEY", "DASHSCOPE_API_KEY", "TMDB_API_KEY"}:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("UR4REC_HOME", str(home))
    monkeypatch.setenv("UR4REC_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:  # shown by pytest on failure
        return f"CliResult(code={self.code}, stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``ur4rec ARGS`` in-process through the real entry point (error mapping included)."""
    from ur4rec_cli.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(*args: str, env: dict[str, str] | None = None, timeout: float = 600):
    """Run ``python -m ur4rec_cli ARGS`` in a fresh interpreter."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "ur4rec_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def render_page(script: str, figures: Path, out: Path) -> str:
    """The page ``benchmarks/<script> --render FIGURES --out OUT`` writes from saved figures."""
    import subprocess

    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--render", str(figures), "--out", str(out)], check=True, capture_output=True)
    return out.read_text("utf-8")


def default_sigint() -> None:
    """preexec_fn for a child that is sent Ctrl-C: the default SIGINT disposition.

    A shell starts background jobs with SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler: give the child what a terminal's Ctrl-C would find.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signal_when(cmd: list[str], ready, sig: int, *, within: float, wait: float, what: str) -> tuple[int, str]:
    """Run ``cmd`` (Ctrl-C as a terminal gives it), send ``sig`` once ``ready()`` holds; (exit code, stderr).

    The child must still be running while it gets there, and get there within ``within`` s; it is
    killed if it outlives ``wait`` s after the signal.
    """
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + within
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"the run never reached {what}"
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=wait)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.fixture(scope="session")
def ml100k_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding the real ML-100K dataset artifact, prepared once per test session.

    Served from the package-index mirror (RecBole 1.2.1's wheel, sha256-pinned), unless
    ``ML100K_TEST_SOURCE`` names a local ml-100k.zip / folder to use instead.
    """
    from ur4rec_cli.api import prepare_data
    from ur4rec_cli.settings import load_settings

    home = tmp_path_factory.mktemp("ml100k-home")
    source = os.environ.get("ML100K_TEST_SOURCE", "mirror")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("UR4REC_")}
    try:
        settings = load_settings(None, {"home": home, "data": {"source": source}})
        prepare_data(settings)
    finally:
        os.environ.update(saved)
    return home


@pytest.fixture
def ml100k(ml100k_home: Path, isolated_home: Path) -> Path:
    """The isolated home of this test, pre-filled with a copy of the real ML-100K artifact."""
    import shutil

    shutil.copytree(ml100k_home / "datasets", isolated_home / "datasets", dirs_exist_ok=True)
    if (ml100k_home / "cache").exists():
        shutil.copytree(ml100k_home / "cache", isolated_home / "cache", dirs_exist_ok=True)
    return isolated_home


# A tiny model on a toy data set (12 users, 20 items): the settings every command of the fault tests uses.
TINY = {"UR4REC_MODEL__HIDDEN": "16", "UR4REC_MODEL__MAX_LEN": "8", "UR4REC_MODEL__EXPERT_DIM": "8", "UR4REC_MODEL__TIE_ORDERS": "1"}


@pytest.fixture(scope="session")
def toy_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the toy data set, its template texts and embeddings, and all four stages trained (2 epochs
    each) and exported: one artifact of every kind, made once per session. Beside it: ``src/`` (the data set's
    files and ``new.csv``, one new item)."""
    from test_training_stages import _atomic_files

    from ur4rec_cli import api
    from ur4rec_cli.settings import load_settings

    root = tmp_path_factory.mktemp("toy-trained")
    home = root / "home"
    source = _atomic_files(root / "src")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("UR4REC_")}
    os.environ.update(TINY)
    try:
        settings = load_settings(None, {"home": home, "data": {"source": str(source)}, "llm": {"backend": "template"}})
        api.prepare_data(settings)
        api.generate_texts(settings)
        settings = load_settings(None, {"home": home, "train": {"epochs": 2, "device": "cpu"}, "model": {"modalities": ["item_text"]}})
        api.train(api.select_dataset(settings, None), stage="all")
    finally:
        for k in TINY:
            os.environ.pop(k, None)
        os.environ.update(saved)
    (root / "src" / "new.csv").write_text("title,year,genres\nMovie Returns,1999,Drama\n", "utf-8")
    return home


@pytest.fixture
def toy_home(toy_trained: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's home: a copy of ``toy_trained``, with the tiny model's settings in the environment."""
    import shutil

    shutil.copytree(toy_trained, isolated_home)
    for k, v in TINY.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("UR4REC_DATA__SOURCE", str(toy_trained.parent / "src" / "toy.inter"))
    return isolated_home
