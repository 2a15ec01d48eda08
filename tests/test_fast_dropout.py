"""The cheap CPU dropout: its drop rate, scaling, gradient and seeding, and the written-out
training attention equals SDPA's (the path evaluation keeps)."""

from __future__ import annotations

import pytest
import torch

from ur4rec_cli.models import fast_dropout
from ur4rec_cli.models.sasrec import SASRecEncoder


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_drop_rate_scale_and_gradient(p: float) -> None:
    torch.manual_seed(0)
    x = torch.rand(400, 500) + 0.5  # never zero: a zero output means dropped
    x.requires_grad_()
    y = fast_dropout.dropout(x, p, training=True)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 0.005  # 200,000 draws: std of the rate < 0.0012
    assert torch.allclose(y[~dropped], x[~dropped] / (1 - p))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(g, (~dropped).float() / (1 - p))
    # Lanes are independent: rows and columns drop alike (no stripes from the int16 packing).
    assert dropped.float().mean(0).std().item() < 0.05 and dropped.float().mean(1).std().item() < 0.05


def test_identity_outside_training_and_seeded_like_torch() -> None:
    x = torch.randn(7, 9)
    assert fast_dropout.dropout(x, 0.2, training=False) is x and fast_dropout.dropout(x, 0.0, training=True) is x
    module = fast_dropout.Dropout(0.2)
    assert module.state_dict() == {} and "p=0.2" in repr(module)
    torch.manual_seed(3)
    a = module(x)
    state = torch.get_rng_state()
    b = module(x)
    torch.set_rng_state(state)  # what a resumed run restores
    assert torch.equal(module(x), b) and not torch.equal(a, b)
    with pytest.raises(ValueError):
        fast_dropout.Dropout(1.5)
    assert fast_dropout.dropout(x, 1.0, training=True).abs().sum() == 0


@pytest.mark.parametrize("sink", [False, True])
def test_training_attention_equals_sdpa_without_the_dropout(sink: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the dropout itself switched off, the written-out attention of training mode gives
    the states SDPA gives in eval mode, for the boolean mask and the padding sink's float mask."""
    torch.manual_seed(0)
    enc = SASRecEncoder(n_items=30, max_len=12, hidden=16, layers=2, heads=2, dropout=0.3, padding_sink=sink)
    seqs = torch.tensor([[0, 0, 0, 4, 5, 6, 7, 8, 9, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 3], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]])
    enc.eval()
    want = enc(seqs)
    calls = []

    def no_drop(x, p, training):
        calls.append(tuple(x.shape))
        return x

    monkeypatch.setattr(fast_dropout, "dropout", no_drop)
    enc.train()
    got = enc(seqs)
    assert torch.allclose(got, want, atol=1e-5) and not got.isnan().any()
    assert (3, 2, 10, 10 + sink) in calls  # the attention probabilities went through the (patched) dropout
