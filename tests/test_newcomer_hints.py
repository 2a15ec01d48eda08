"""What a new user trips on (issue 25): a broken torch pairing, hints printed literally, id ranges
in natural order, help that shows default values rather than setting names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_subprocess

COMMANDS = ("data", "llm", "clip", "train", "evaluate", "recommend", "config")


def test_mismatched_torchvision_is_one_line_naming_both_versions(tmp_path: Path) -> None:
    """A torchvision built for another torch fails at import with this RuntimeError; the command
    that first needs torch says so in one line, with the fix, and exits as a config error."""
    fake = tmp_path / "shadow" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    # `llm` resolves its device (the first torch step) before it reads any artifact.
    r = run_subprocess("--home", str(tmp_path / "home"), "llm", "--backend", "template", env={"PYTHONPATH": str(fake.parent)}, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr
    line = lines[0]
    assert line.startswith("error: torch ") and " and torchvision " in line and "do not work together" in line
    assert "operator torchvision::nms does not exist" in line and "reinstall both from one index" in line


def test_chart_hint_names_the_package_with_its_extra_literally(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from ur4rec_cli.cli import evaluate as ev
    from ur4rec_cli.training import curves

    monkeypatch.setattr(curves, "write_bar_chart", lambda *a, **k: False)  # as without matplotlib
    result = {"protocol": "full", "split": "test", "users": 3, "stage": "end_to_end", "metrics": {"HR@10": 0.1, "NDCG@10": 0.05, "MRR": 0.04}}
    ev._write_chart(result, Path("chart.png"))
    err = " ".join(capsys.readouterr().err.split())
    assert "pip install 'ur4rec[plot]'" in err and "ur4rec-cli" not in err


def test_console_prints_brackets_literally(capsys: pytest.CaptureFixture[str]) -> None:
    from ur4rec_cli import console

    console.info("path /tmp/[run]/x and [bold]not bold[/bold]")
    console.warn("install 'ur4rec[local]'")
    err = capsys.readouterr().err
    assert "/tmp/[run]/x and [bold]not bold[/bold]" in err and "'ur4rec[local]'" in err


def test_user_id_range_is_in_natural_order() -> None:
    from ur4rec_cli.serving.recommend import id_range

    stored = sorted(f"u{i}" for i in range(1, 51))  # string order: u1, u10, ..., u9
    assert stored[-1] == "u9" and id_range(stored) == "u1..u50"
    assert id_range(["1", "943", "2"]) == "1..943"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_values_not_setting_names_as_defaults(command: str) -> None:
    r = run_subprocess(command, "--help", timeout=120)
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    defaults = re.findall(r"\[default: ([^\]]+)\]", text)
    named = [d for d in defaults if re.fullmatch(r"(data|llm|clip|model|train|eval)\.[a-z_]+", d.strip()) or d.strip().startswith("per ")]
    assert not named, named
    if command == "train":  # help wraps at 80 columns, inside words too: compare without whitespace
        flat = "".join(text.split())
        assert "[default:80/20/6/4forstages1-4]" in flat and "[default:--learn-validation]" in flat


def test_help_is_read_off_the_settings_model() -> None:
    from ur4rec_cli.cli import train
    from ur4rec_cli.settings import TrainConfig

    f = TrainConfig.model_fields
    assert train._EPOCHS == " / ".join(str(f[k].default) for k in ("sasrec_epochs", "retriever_epochs", "joint_epochs", "end_to_end_epochs"))


def test_whole_job_estimate_from_the_first_epoch_then_per_stage() -> None:
    from ur4rec_cli.training.estimate import JobEstimate

    est = JobEstimate([("pretrain_sasrec", 80), ("pretrain_retriever", 20), ("joint_finetune", 6), ("end_to_end", 4)])
    # 79 x 5 s left of stage 1, then 20 x 1.6 x 5 + 6 x 5 + 4 x 5 s: 605 s.
    assert est.seconds_left("pretrain_sasrec", 1) is None  # nothing timed yet
    line = est.observe("pretrain_sasrec", 1, 5.0)
    assert line == "whole job: about 10 min left (5.0 s per pretrain_sasrec epoch, later stages scaled from it)"
    assert est.observe("pretrain_sasrec", 2, 50.0) is None  # once per stage
    assert est.seconds_left("pretrain_retriever", 0) == pytest.approx(20 * 8.0 + 30 + 20)
    assert est.observe("pretrain_retriever", 1, 10.0) == "whole job: about 4 min left (10.0 s per pretrain_retriever epoch, later stages scaled from it)"
    assert est.observe("end_to_end", 1, 3.0) == "whole job: about 9 s left (3.0 s per end_to_end epoch)"
    # A lone later stage, timed first, implies the stage-1 epoch it scales from.
    alone = JobEstimate([("pretrain_retriever", 20), ("joint_finetune", 6)], caps=True)
    assert alone.observe("pretrain_retriever", 1, 16.0) == "whole job: at most 6 min left (16.0 s per pretrain_retriever epoch, later stages scaled from it)"


def test_progress_prints_plain_lines_off_a_terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No bar off a terminal, but a long step still says where it is (every 30 s, and its end)."""
    from ur4rec_cli import console

    with console.make_progress() as p:  # a quick step: silent
        t = p.add_task("quick", total=2, status="")
        p.advance(t, 2)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(console, "HEARTBEAT_S", 0.0)  # as if each step took longer than the heartbeat
    with console.make_progress() as p:
        t = p.add_task("embedding texts", total=4, status="cpu")
        p.advance(t, 1)
        p.update(t, advance=3, status="cpu, done")
        p.advance(t, 0)  # after its final line, nothing more
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("embedding texts: 1/4, 0 s elapsed") and lines[0].endswith("· cpu")
    assert lines[1].startswith("embedding texts: 4/4, 0 s elapsed") and "left" not in lines[1] and lines[1].endswith("· cpu, done")


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        (RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 4705400000 bytes. Error code 12"), "train.batch_size"),
        (MemoryError(), "train.batch_size"),
    ],
)
def test_an_allocation_failure_is_one_line_naming_the_setting(cli, monkeypatch: pytest.MonkeyPatch, error: BaseException, setting: str) -> None:
    from ur4rec_cli import api

    def boom(*a, **k):
        raise error

    monkeypatch.setattr(api, "train", boom)
    monkeypatch.setattr(api, "select_dataset", lambda settings, dataset: settings)
    r = cli("train", "--stage", "pretrain_sasrec")
    lines = r.stderr.strip().splitlines()
    assert r.code == 10 and len(lines) == 1, r
    assert lines[0].startswith("error: out of memory in `ur4rec train`") and setting in lines[0] and "internal error" not in lines[0]
    if isinstance(error, RuntimeError):
        assert "(you tried to allocate 4705400000 bytes. Error code 12)" in lines[0]


def test_other_runtime_errors_stay_internal_errors(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from ur4rec_cli import api

    def boom(*a, **k):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(api, "train", boom)
    monkeypatch.setattr(api, "select_dataset", lambda settings, dataset: settings)
    r = cli("train")
    assert r.code == 70 and "internal error: RuntimeError: shape mismatch" in r.stderr


def test_out_of_memory_is_recognised_in_each_form_torch_raises() -> None:
    from ur4rec_cli.errors import is_out_of_memory

    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize(
    "var, value, example",
    [("UR4REC_MODEL__MODALITIES", "item_text,user_text", '["item_text", "user_text"]'), ("UR4REC_EVAL__K", "5,10", "[5, 10]")],
)
def test_a_list_setting_in_the_environment_names_the_variable(cli, monkeypatch: pytest.MonkeyPatch, var: str, value: str, example: str) -> None:
    """pydantic-settings reads list settings from the environment as JSON; plain text used to be
    reported as an unreadable config file. The line names the variable and the form it takes."""
    monkeypatch.setenv("UR4REC_EVAL__PROTOCOL", "full")  # a plain-text setting of the same section is not blamed
    monkeypatch.setenv(var, value)
    r = cli("config")
    assert r.code == 2 and f"invalid environment variable {var}='{value}'" in r.stderr and example in r.stderr, r
    assert "config file" not in r.stderr
    monkeypatch.setenv(var, example)
    assert cli("config").code == 0
