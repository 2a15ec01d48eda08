"""model.knn_weight: UR4Rec V2 scores with w x content-KNN's cosine added, as one more block of its vectors.

The block is scoring-time only (never in the training loss), every item reads its own item text
(known, unknown or added by `items add`), auto turns it on (w = 8) only for a model whose stage 1
read content, so ML-100K's models score as before, and the product's final model then ranks
exactly as the late-fusion baseline `evaluate --stage late_fusion` with eval.fusion_base = final and
w = 8 (docs/model.md, lever 49).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from test_models_ur4rec import N_ITEMS, _batch, _model  # noqa: E402
from test_items_add import content_home as content_home  # noqa: E402 - the module-scoped fixture, shared

from ur4rec_cli.evaluation.content_knn import ContentKNNScorer  # noqa: E402
from ur4rec_cli.evaluation.late_fusion import LateFusionScorer  # noqa: E402
from ur4rec_cli.runs import AUTO_KNN_WEIGHT, set_content_knn  # noqa: E402
from ur4rec_cli.settings import load_settings  # noqa: E402


def _scores(model, hist, users) -> torch.Tensor:
    with torch.no_grad():
        return model.user_vectors(hist, users) @ model.item_vectors().T


@pytest.mark.parametrize("anchor", [0.0, 0.7])
def test_the_block_adds_w_times_content_knns_cosine_and_equals_the_late_fusion_of_the_model(anchor: float) -> None:
    model = _model(anchor=anchor).eval()
    hist, users = _batch()
    own = _scores(model, hist, users)
    width = model.user_vectors(hist, users).shape[1]
    model.set_content_knn(2.5)
    knn = ContentKNNScorer(model.item_text.numpy())
    with torch.no_grad():
        cosine = knn.user_vectors(hist, users) @ knn.item_vectors().T
        items = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 30]])
        direct = model.score(hist, users, items)
    full = _scores(model, hist, users)
    assert torch.allclose(full[:, 1:], own[:, 1:] + 2.5 * cosine[:, 1:], atol=1e-5) and torch.all(model.item_vectors()[0] == 0)
    assert torch.allclose(full.gather(1, items), direct, atol=1e-5)  # the direct formula reads the block where it lies
    assert model.block_bounds()[-1] == ("content_knn", width, width + 384)
    model.set_content_knn(0.0)
    fused = LateFusionScorer(model, knn, 2.5)
    with torch.no_grad():
        assert torch.allclose(fused.user_vectors(hist, users) @ fused.item_vectors().T, full, atol=1e-5)
    assert model.block_bounds()[-1][0] != "content_knn"


def test_the_training_loss_does_not_read_the_block() -> None:
    model = _model()
    hist, users = _batch()
    before, items_before, _ = model.eval().sequence_loss_inputs(hist, users)
    model.set_content_knn(8.0)
    after, items_after, _ = model.sequence_loss_inputs(hist, users)
    assert after.shape == before.shape and items_after.shape == items_before.shape
    assert model.user_vectors(hist, users).shape[1] == before.shape[1] + 384


def test_unknown_and_added_items_read_their_own_text_and_a_model_without_texts_stays_off() -> None:
    model = _model().eval()
    model.set_content_knn(8.0)
    known = torch.ones(N_ITEMS + 1, dtype=torch.bool)
    known[5] = False
    model.set_known(known)
    with torch.no_grad():
        block = model.item_vectors()[:, -384:]
        added = model.new_item_vectors(model.item_text[5:6].clone(), model.image[5:6].clone())
    assert torch.equal(block[5], model.item_text[5]) and torch.equal(block[3], model.item_text[3])
    assert torch.allclose(added[0], model.item_vectors()[5], atol=1e-5)  # an added item is scored as the catalogue's unknown one
    bare = _model()
    bare.item_text.zero_()
    bare.set_content_knn(8.0)
    assert bare.content_knn == 0.0 and bare.block_bounds()[-1][0] == "image"


@pytest.mark.parametrize(("setting", "content_stage1", "weight"), [("auto", True, AUTO_KNN_WEIGHT), ("auto", False, 0.0), ("3", False, 3.0), ("0", True, 0.0)])
def test_auto_is_on_only_for_a_model_whose_stage_1_read_content(monkeypatch, setting: str, content_stage1: bool, weight: float) -> None:
    monkeypatch.setenv("UR4REC_MODEL__KNN_WEIGHT", setting)
    model = _model(content_stage1=content_stage1)
    set_content_knn(model, load_settings())
    assert model.content_knn == weight


def test_auto_sizes_and_weights_leave_ml100k_as_it_was(monkeypatch) -> None:
    """ML-100K's shape keeps hidden 64 and content on IDs in stage 1, so auto adds no block there."""
    from types import SimpleNamespace

    from ur4rec_cli.training.context import TUNED_ON, content_stage1, hidden_size

    ml100k, other = SimpleNamespace(n_users=TUNED_ON[0], n_items=TUNED_ON[1]), SimpleNamespace(n_users=120, n_items=60)
    settings = load_settings()
    assert (hidden_size(settings, ml100k), content_stage1(settings, ml100k)) == (64, False)
    assert (hidden_size(settings, other), content_stage1(settings, other)) == (128, True)
    monkeypatch.setenv("UR4REC_MODEL__HIDDEN", "32")
    assert hidden_size(load_settings(), ml100k) == hidden_size(load_settings(), other) == 32


@pytest.mark.parametrize(("var", "value", "says"), [("UR4REC_MODEL__HIDDEN", "4", "auto or an integer >= 8"), ("UR4REC_MODEL__HIDDEN", "12.5", "auto or an integer >= 8"),
                                                     ("UR4REC_MODEL__KNN_WEIGHT", "-1", "auto or a number >= 0"), ("UR4REC_MODEL__KNN_WEIGHT", "inf", "auto or a number >= 0")])
def test_a_bad_size_or_weight_is_one_line(cli, isolated_home, monkeypatch, var: str, value: str, says: str) -> None:
    monkeypatch.setenv(var, value)
    r = cli("train", "--stage", "all")
    assert r.code != 0 and var in r.stderr and says in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.fixture
def home(content_home: Path, isolated_home, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    monkeypatch.setenv("UR4REC_HOME", str(content_home))
    return content_home


def _ranks(cli, tmp_path: Path, name: str, *args: str) -> list[int]:
    out = tmp_path / f"{name}.jsonl"
    r = cli("evaluate", "--output", str(out), "--json", *args)
    assert r.code == 0, r
    return [json.loads(line)["rank"] for line in out.read_text().splitlines()]


def test_the_final_model_ranks_as_its_late_fusion_with_w_8_and_the_index_and_explain_carry_the_block(cli, home, tmp_path, monkeypatch) -> None:
    final = _ranks(cli, tmp_path, "final")
    monkeypatch.setenv("UR4REC_EVAL__FUSION_BASE", "final")
    monkeypatch.setenv("UR4REC_EVAL__FUSION_WEIGHT", "8")
    assert _ranks(cli, tmp_path, "fused", "--stage", "late_fusion") == final
    monkeypatch.setenv("UR4REC_MODEL__KNN_WEIGHT", "0")
    monkeypatch.setenv("UR4REC_EVAL__FUSION_WEIGHT", "0")
    assert _ranks(cli, tmp_path, "off", "--stage", "late_fusion") == _ranks(cli, tmp_path, "final0") != final
    # The index was written with the block: a new user's vector is made as the index was, whatever the setting now.
    r = cli("recommend", "--history", "1,2,3", "--top", "3", "--json")
    assert r.code == 0, r
    monkeypatch.delenv("UR4REC_MODEL__KNN_WEIGHT")
    assert json.loads(cli("recommend", "--history", "1,2,3", "--top", "3", "--json").stdout)["items"] == json.loads(r.stdout)["items"]
    from ur4rec_cli.runs import run_dir

    blocks = json.loads((run_dir(load_settings(None, {"home": home})) / "index" / "blocks.json").read_text())
    assert blocks["names"][-1] == "content_knn" and blocks["bounds"][-1][1] - blocks["bounds"][-1][0] == 384
    rec = json.loads(cli("recommend", "--user", "1", "--top", "3", "--explain", "--json").stdout)
    parts = rec["items"][0]["contributions"]
    assert list(parts)[-1] == "content-KNN" and sum(parts.values()) == pytest.approx(rec["items"][0]["score"], rel=1e-4)
