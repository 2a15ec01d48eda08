"""model.content_stage1: stage 1 trains SASRec on content-aware item tokens, and the anchor keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from test_items_add import train_two_genre
from ur4rec_cli.settings import load_settings


def _train(home: Path, content: bool):
    model = {"modalities": ["item_text"], "max_len": 20, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 1, "content_stage1": content}
    return train_two_genre(home, {"epochs": 3, "device": "cpu", "batch_size": 32}, model)


def _adaptor_norm(state: dict) -> float:
    return sum(float(v.abs().sum()) for k, v in state.items() if k.startswith("item_adaptor.") and "experts" in k)


@pytest.mark.parametrize("content", [False, True])
def test_the_adaptor_trains_in_stage_1_only_when_asked(tmp_path: Path, content: bool) -> None:
    from ur4rec_cli.runs import read_checkpoint, run_dir

    settings = _train(tmp_path / "home", content)
    root = run_dir(settings)
    stage1 = read_checkpoint(root / "pretrain_sasrec" / "best.pt")
    assert stage1["model_args"]["content_stage1"] is content
    # The adaptor's experts start at zero: only stage 1 on content-aware tokens moves them.
    assert (_adaptor_norm(stage1["state_dict"]) > 0) is content
    stage2 = read_checkpoint(root / "pretrain_retriever" / "best.pt")
    assert ("anchor_table" in stage2["state_dict"]) is content


def test_the_anchor_scores_as_the_content_stage_1_model(tmp_path: Path) -> None:
    from ur4rec_cli.runs import load_stage_model

    settings = _train(tmp_path / "home", True)
    stage1 = load_stage_model(settings, "pretrain_sasrec").model
    final = load_stage_model(settings, "end_to_end").model
    assert type(stage1).__name__ == "ContentSASRec"
    histories = torch.tensor([[0, 0, 3, 5, 7], [0, 40, 41, 42, 44]])
    with torch.inference_mode():
        want = stage1.user_vectors(histories) @ stage1.item_vectors()[1:].T
        anchor = final._anchor_user(histories) @ final._anchor_items()[1:].T
        plain = final.anchor.user_vectors(histories) @ final.anchor.item_vectors()[1:].T  # the ID-only reading it replaces
    assert torch.allclose(anchor, want, atol=1e-5)
    assert not torch.allclose(plain, want, atol=1e-3)


def test_auto_is_on_except_on_ml100k(cli, isolated_home, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default (auto) keeps ML-100K's tuned stage 1 (and its cold variants', same shape) and is on elsewhere."""
    from types import SimpleNamespace

    from ur4rec_cli.training.context import content_stage1

    auto = load_settings(None, {})
    assert auto.model.content_stage1 == "auto"
    assert content_stage1(auto, SimpleNamespace(n_users=943, n_items=1682)) is False
    assert content_stage1(auto, SimpleNamespace(n_users=120, n_items=60)) is True
    off = load_settings(None, {"model": {"content_stage1": "false"}})
    assert content_stage1(off, SimpleNamespace(n_users=120, n_items=60)) is False
    monkeypatch.setenv("UR4REC_MODEL__CONTENT_STAGE1", "maybe")
    r = cli("train", "--stage", "all")
    assert r.code != 0 and "content_stage1" in r.stderr and "true, false or auto" in r.stderr and "Traceback" not in r.stderr
