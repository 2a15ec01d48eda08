"""Root CLI: fast --help without heavy imports, version, global options, error mapping."""

from __future__ import annotations

import json
import subprocess
import sys

from ur4rec_cli import __version__
from conftest import run_subprocess

HEAVY = ("torch", "openai", "open_clip", "sentence_transformers", "transformers", "numpy")


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from ur4rec_cli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout


def test_each_command_help_imports_nothing_heavy() -> None:
    for cmd in ("data", "llm", "clip", "train", "evaluate", "recommend", "config"):
        code = (
            "import sys\nfrom ur4rec_cli.cli import main\n"
            f"try:\n    main([{cmd!r}, '--help'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + ','.join(m for m in {HEAVY[:4]!r} if m in sys.modules))\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", (cmd, proc.stdout, proc.stderr)


def test_version_and_module_entry() -> None:
    proc = run_subprocess("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"ur4rec {__version__}"


def test_home_option_beats_env(cli, tmp_path) -> None:
    r = cli("--home", str(tmp_path / "elsewhere"), "config", "--json")
    assert r.code == 0
    assert json.loads(r.stdout)["home"] == str(tmp_path / "elsewhere")


def test_unknown_command_and_option_fail_cleanly(cli) -> None:
    r = cli("frobnicate")
    assert r.code == 2 and "Traceback" not in r.stderr
    r = cli("config", "--nope")
    assert r.code == 2 and "Traceback" not in r.stderr


def test_completion_is_offered(cli) -> None:
    r = cli("--help")
    assert "--install-completion" in r.stdout


def test_internal_errors_are_one_line_without_debug(cli, monkeypatch) -> None:
    from ur4rec_cli import api

    def boom(*a, **k):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(api, "describe_config", boom)
    r = cli("config")
    assert r.code == 70 and r.stderr == "error: internal error: RuntimeError: kaboom (rerun with --debug for a traceback)\n"


def test_ctrl_c_is_one_line_and_exit_130(cli, monkeypatch) -> None:
    from ur4rec_cli import api

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "describe_config", interrupted)
    r = cli("config")
    assert r.code == 130 and r.stderr == "error: interrupted\n"
