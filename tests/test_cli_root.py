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


def test_usage_errors_are_one_error_line(cli) -> None:
    cases = {
        ("trian",): "error: No such command 'trian'. Did you mean 'train'? (see `ur4rec --help`)\n",
        ("train", "--bogus"): "error: No such option: --bogus (see `ur4rec train --help`)\n",
        ("recommend", "--top", "0"): None,
        ("data", "--min-rating", "abc"): None,
    }
    for args, expected in cases.items():
        r = cli(*args)
        assert r.code == 2, (args, r)
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, (args, r)
        assert "Usage:" not in r.stderr and "Try " not in r.stderr
        if expected is not None:
            assert r.stderr == expected


def test_top_level_help_keeps_each_description_whole() -> None:
    from ur4rec_cli.cli import _COMMANDS

    proc = run_subprocess("--help", env={"COLUMNS": "80"})
    assert proc.returncode == 0
    for name, _module, short, _long in _COMMANDS:
        line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(name + " "))
        assert line.strip().endswith(short), (name, line)


def test_evaluate_help_shows_no_positional(cli) -> None:
    r = cli("evaluate", "--help")
    assert r.code == 0
    assert r.stdout.splitlines()[0].strip() == "Usage: ur4rec evaluate [OPTIONS]", r.stdout
    assert "--k K [K ...]" in r.stdout
