"""Settings precedence, unknown keys, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ur4rec_cli.errors import ConfigError
from ur4rec_cli.settings import load_settings


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def test_defaults(isolated_home: Path) -> None:
    s = load_settings()
    assert s.home == isolated_home
    assert s.eval.k == [5, 10, 20]
    assert s.model.modalities == ["user_text", "item_text", "image"]


def test_precedence_flag_over_env_over_toml_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_toml(tmp_path / "c.toml", "[train]\nseed = 1\nbatch_size = 64\nlr = 0.5\n[eval]\nnegatives = 7\n")
    monkeypatch.setenv("UR4REC_TRAIN__SEED", "2")
    monkeypatch.setenv("UR4REC_TRAIN__BATCH_SIZE", "32")
    s = load_settings(cfg, {"train": {"seed": 3, "batch_size": None}})
    assert s.train.seed == 3  # flag
    assert s.train.batch_size == 32  # env (flag not set)
    assert s.train.lr == 0.5  # toml
    assert s.eval.negatives == 7  # toml
    assert s.eval.split == "test"  # default


def test_default_config_location_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_toml(tmp_path / "found.toml", "[model]\nhidden = 32\n")
    monkeypatch.setenv("UR4REC_CONFIG", str(cfg))
    assert load_settings().model.hidden == 32


@pytest.mark.parametrize(
    "toml",
    ["[train]\nepochz = 3\n", "[trian]\nepochs = 3\n", "typo = 1\n"],
)
def test_unknown_toml_keys_are_errors(tmp_path: Path, toml: str) -> None:
    cfg = write_toml(tmp_path / "bad.toml", toml)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert "bad.toml" in str(exc.value)


def test_unknown_env_keys_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR4REC_TRAIN__EPOCHZ", "3")
    with pytest.raises(ConfigError, match="epochz"):
        load_settings()
    monkeypatch.delenv("UR4REC_TRAIN__EPOCHZ")
    monkeypatch.setenv("UR4REC_TRAINING__EPOCHS", "3")
    with pytest.raises(ConfigError, match="UR4REC_TRAINING__EPOCHS"):
        load_settings()


def test_invalid_values_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.modalities"):
        load_settings(None, {"model": {"modalities": "user_text,pixels"}})
    with pytest.raises(ConfigError, match="eval.k"):
        load_settings(None, {"eval": {"k": [0, 10]}})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(write_toml(tmp_path / "broken.toml", "[train\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_secret_is_masked_everywhere(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UR4REC_LLM__API_KEY", "sk-very-secret-123")
    s = load_settings()
    assert s.llm_api_key() is not None and s.llm_api_key().get_secret_value() == "sk-very-secret-123"
    assert "sk-very-secret" not in json.dumps(s.public_dict())
    r = cli("config")
    assert r.code == 0 and "sk-very-secret" not in r.stdout + r.stderr
    r = cli("config", "--json")
    assert r.code == 0 and "sk-very-secret" not in r.stdout
    assert json.loads(r.stdout)["settings"]["llm"]["api_key"] == "**********"


def test_api_key_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().llm_api_key() is None
    monkeypatch.setenv("DASHSCOPE_API_KEY", "d")
    assert load_settings().llm_api_key().get_secret_value() == "d"
    monkeypatch.setenv("OPENAI_API_KEY", "o")
    assert load_settings().llm_api_key().get_secret_value() == "o"


def test_config_command_reports_file_and_home(cli, tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "c.toml", "[train]\nseed = 9\n")
    r = cli("--home", str(tmp_path / "h2"), "--config", str(cfg), "config", "--json")
    assert r.code == 0, r
    report = json.loads(r.stdout)
    assert report["config_file"] == str(cfg) and report["config_file_exists"] is True
    assert report["home"] == str(tmp_path / "h2")
    assert report["settings"]["train"]["seed"] == 9


def test_bad_config_via_cli_is_one_line(cli, tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "c.toml", "[train]\nepochz = 1\n")
    r = cli("--config", str(cfg), "config")
    assert r.code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_config_output_is_valid_toml_that_loads_back(cli, tmp_path) -> None:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    r = cli("config")
    assert r.code == 0, r
    parsed = tomllib.loads(r.stdout)
    assert parsed["train"]["seed"] == 42 and parsed["eval"]["k"] == [5, 10, 20]
    assert "name" not in parsed["data"] and "api_key" not in parsed["llm"]  # unset / secret: comments only
    saved = tmp_path / "saved.toml"
    saved.write_text(r.stdout, "utf-8")
    again = cli("--config", str(saved), "config")
    assert again.code == 0 and again.stdout.splitlines()[3:] == r.stdout.splitlines()[3:]


def test_unknown_key_names_its_origin_and_a_guess(cli, tmp_path, monkeypatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nsed = 3\n", "utf-8")
    r = cli("--config", str(bad), "config")
    assert r.code == 2 and r.stderr == f"error: unknown setting train.sed (config file {bad}); did you mean train.seed?\n"
    monkeypatch.setenv("UR4REC_TRAIN__SED", "3")
    r = cli("config")
    assert r.code == 2 and r.stderr == "error: unknown setting train.sed (environment variable UR4REC_TRAIN__SED); did you mean train.seed?\n"
