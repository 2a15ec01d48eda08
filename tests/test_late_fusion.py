"""`evaluate --stage late_fusion`: the stage-1 SASRec score plus eval.fusion_weight x content-KNN's cosine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_items_add import content_home  # noqa: F401 - the module-scoped fixture, shared


@pytest.fixture
def home(content_home: Path, isolated_home, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    monkeypatch.setenv("UR4REC_HOME", str(content_home))
    return content_home


def _ranks(cli, tmp_path: Path, name: str, *args: str, env: dict[str, str] | None = None, monkeypatch=None) -> list[int]:
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    out = tmp_path / f"{name}.jsonl"
    r = cli("evaluate", "--output", str(out), "--json", *args)
    assert r.code == 0, r
    return [json.loads(line)["rank"] for line in out.read_text().splitlines()]


def test_weight_zero_is_sasrec_and_a_large_weight_is_content_knn(cli, home, tmp_path, monkeypatch) -> None:
    sasrec = _ranks(cli, tmp_path, "s1", "--stage", "pretrain_sasrec")
    knn = _ranks(cli, tmp_path, "knn", "--stage", "content_knn")
    zero = _ranks(cli, tmp_path, "w0", "--stage", "late_fusion", env={"UR4REC_EVAL__FUSION_WEIGHT": "0"}, monkeypatch=monkeypatch)
    assert zero == sasrec
    large = _ranks(cli, tmp_path, "w1e4", "--stage", "late_fusion", env={"UR4REC_EVAL__FUSION_WEIGHT": "10000"}, monkeypatch=monkeypatch)
    agree = sum(a == b for a, b in zip(large, knn)) / len(knn)
    assert agree >= 0.9 and large != sasrec  # the cosine decides, SASRec's score only breaks its ties
    mid = _ranks(cli, tmp_path, "w2", "--stage", "late_fusion", env={"UR4REC_EVAL__FUSION_WEIGHT": "2"}, monkeypatch=monkeypatch)
    assert mid not in (sasrec, knn)
    res = json.loads(cli("evaluate", "--stage", "late_fusion", "--json").stdout)
    assert res["stage"] == "late_fusion"


def test_the_base_can_be_the_final_model(cli, home, tmp_path, monkeypatch) -> None:
    """eval.fusion_base = final: w = 0 ranks exactly as the run's final model without its own content-KNN
    block (model.knn_weight = 0; with the block the two are equal at w = 8: test_knn_block.py), w > 0 moves it."""
    monkeypatch.setenv("UR4REC_MODEL__KNN_WEIGHT", "0")
    final = _ranks(cli, tmp_path, "final")
    sasrec = _ranks(cli, tmp_path, "s1", "--stage", "pretrain_sasrec")
    monkeypatch.setenv("UR4REC_EVAL__FUSION_BASE", "final")
    zero = _ranks(cli, tmp_path, "f0", "--stage", "late_fusion", env={"UR4REC_EVAL__FUSION_WEIGHT": "0"}, monkeypatch=monkeypatch)
    assert zero == final and final != sasrec
    two = _ranks(cli, tmp_path, "f2", "--stage", "late_fusion", env={"UR4REC_EVAL__FUSION_WEIGHT": "2"}, monkeypatch=monkeypatch)
    assert two != final
