"""model.sasrec_anchor: the frozen stage-1 SASRec whose score stages 2-4 add to their own.

The anchor is a copy of stage 1's SASRec taken when stage 2 starts; it never trains, it is one more
block of the single dot product (so the exported index and `recommend` carry it), it stays out of
the training loss, and an item it never trained on gets its average score.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_models_ur4rec import N_ITEMS, _batch, _model  # noqa: E402
from test_training_stages import _context, _settings  # noqa: E402

from ur4rec_cli.runs import model_from_checkpoint  # noqa: E402
from ur4rec_cli.settings import STAGES  # noqa: E402
from ur4rec_cli import runs  # noqa: E402
from ur4rec_cli.training import stages as st  # noqa: E402


def _anchored(weight: float = 0.7):
    model = _model(anchor=weight)
    torch.manual_seed(5)
    for p in model.anchor.parameters():  # an anchor unlike the live SASRec
        p.data.normal_(0, 0.1)
    return model.eval()


def test_score_is_the_model_score_plus_the_weighted_anchor_score_as_one_dot_product() -> None:
    model = _anchored(0.7)
    hist, users = _batch()
    with torch.no_grad():
        full = model.user_vectors(hist, users) @ model.item_vectors().T
        anchor = model.anchor.user_vectors(hist) @ model.anchor.item_vectors().T
        free = model.anchor
        model.anchor = None
        own = model.user_vectors(hist, users) @ model.item_vectors().T
        model.anchor = free
        items = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 30]])
        direct = model.score(hist, users, items)
    assert torch.allclose(full[:, 1:], own[:, 1:] + 0.7 * anchor[:, 1:], atol=1e-5)
    assert torch.allclose(full.gather(1, items), direct, atol=1e-5)
    width = model.user_vectors(hist, users).shape[1]
    assert model.block_bounds()[-1] == ("anchor", width - 16, width)


def test_the_training_loss_does_not_read_the_anchor_and_the_anchor_never_drops_out() -> None:
    model = _anchored(1.0).train()
    hist, users = _batch()
    vecs, items, _ = model.sequence_loss_inputs(hist, users)
    assert vecs.shape[1] == items.shape[1] == model.user_vectors(hist, users).shape[1] - 16
    assert not model.anchor.training and all(not p.requires_grad for p in model.anchor.parameters())


def test_unknown_and_added_items_get_the_mean_of_the_known_items_anchor_rows() -> None:
    model = _anchored(1.0)
    known = torch.ones(N_ITEMS + 1, dtype=torch.bool)
    known[[5, 9]] = False
    model.set_known(known)
    table = model.anchor.item_vectors().detach()
    mean = table[known & (torch.arange(N_ITEMS + 1) != 0)].mean(0)
    with torch.no_grad():
        block = model.item_vectors()[:, -16:]
        added = model.new_item_vectors(torch.randn(2, 384), torch.randn(2, 512))[:, -16:]
    assert torch.allclose(block[5], mean) and torch.allclose(block[9], mean)
    assert torch.equal(block[3], table[3]) and torch.equal(block[0], torch.zeros(16))
    assert torch.allclose(added, mean.expand(2, -1))


def test_stage_2_copies_stage_1s_sasrec_into_the_anchor_and_no_later_stage_moves_it(isolated_home) -> None:
    settings = _settings()
    settings.model.sasrec_anchor = 0.5
    ctx = _context(settings)
    for stage in STAGES:
        st.run_stage(ctx, stage)
    stage1 = runs.read_checkpoint(ctx.run_dir / STAGES[0] / "best.pt")["state_dict"]
    sas = {k[len("sasrec.") :]: v for k, v in stage1.items() if k.startswith("sasrec.")}
    for stage in STAGES[1:]:
        ckpt = runs.read_checkpoint(ctx.run_dir / stage / "last.pt")
        anchor = {k[len("anchor.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("anchor.")}
        assert anchor.keys() == sas.keys() and all(torch.equal(anchor[k], sas[k]) for k in sas)
        assert ckpt["model_args"]["anchor"] == 0.5
    final = model_from_checkpoint(runs.read_checkpoint(ctx.run_dir / STAGES[-1] / "best.pt"), STAGES[-1])
    assert final.anchor is not None and any(not torch.equal(final.sasrec.state_dict()[k], sas[k]) for k in sas)  # the live SASRec trained on
