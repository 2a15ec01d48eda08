"""Training curves: a PNG per stage and a sparkline in the stage summary; the compare bar chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from ur4rec_cli.training.curves import sparkline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_sparkline_known_input() -> None:
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([0.1, None, 0.1]) == "▁ ▁"
    assert sparkline([]) == ""


def _assert_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_stage_writes_curve_png_and_sparkline() -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")
    from test_training_stages import _context, _settings

    from ur4rec_cli.training import stages as st

    ctx = _context(_settings(sasrec_epochs=3, retriever_epochs=1))
    first = st.run_stage(ctx, "pretrain_sasrec")
    second = st.run_stage(ctx, "pretrain_retriever")  # its epoch 0 (the predecessor) has no loss
    for summary, rows in ((first, 3), (second, 2)):
        assert len(summary["curve"]) == rows and set(summary["curve"]) <= set("▁▂▃▄▅▆▇█ ")
        _assert_png(ctx.run_dir / summary["stage"] / "curve.png")


def test_evaluate_compare_chart(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from conftest import FIXTURES

    monkeypatch.setenv("UR4REC_DATA__SOURCE", str(FIXTURES / "ml-100k"))
    monkeypatch.setenv("UR4REC_MODEL__HIDDEN", "8")
    t = cli("train", "--stage", "pretrain_sasrec", "--epochs", "2", "--modalities", "", "--device", "cpu", "--select-on-validation")
    assert t.code == 0, t.stderr
    assert any(c in t.stdout for c in "▁▂▃▄▅▆▇█")  # the sparkline column
    # The whole-job estimate after the first epoch (caps under early stopping), and the next command.
    assert "whole job: at most " in t.stderr and "s per pretrain_sasrec epoch)" in t.stderr
    assert t.stdout.strip().splitlines()[-1] == "test figures of the final stage (full ranking): ur4rec evaluate"
    flat = " ".join(t.stdout.split())  # the summary wraps at 80 columns
    # Which loss ran, and why; where this CPU multiplies bfloat16 natively (train.bf16_logits = auto) the line says so too.
    from ur4rec_cli.training.chunked_loss import uses_bf16_logits

    bf16 = "; its matrix products in bfloat16, softmax in float32 (train.bf16_logits: this CPU multiplies bfloat16 natively)"
    assert "loss: full softmax over " in flat and f"(a batch's logits stay under 256 MiB: no chunking{bf16 if uses_bf16_logits('auto', 'cpu') else ''})" in flat
    chart = tmp_path / "compare.png"
    r = cli("evaluate", "--compare", "--chart", str(chart))
    assert r.code == 0, r.stderr
    _assert_png(chart)
