"""UR4Rec V2 model pieces on tiny synthetic inputs: shapes, masking, gates, factorisation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ur4rec_cli.models.moe import HierarchicalMoE, balance_loss  # noqa: E402
from ur4rec_cli.models.sasrec import SASRec, SASRecEncoder  # noqa: E402
from ur4rec_cli.models.ur4rec import ModelArgs, UR4RecV2  # noqa: E402

N_ITEMS, N_USERS, L = 30, 7, 12


def _model(modalities=("user_text", "item_text", "image"), **kw) -> UR4RecV2:
    torch.manual_seed(0)
    args = ModelArgs(n_items=N_ITEMS, n_users=N_USERS, max_len=L, hidden=16, expert_dim=8, sub_experts=3, modalities=list(modalities), **kw)
    model = UR4RecV2(args)
    g = torch.Generator().manual_seed(1)
    model.set_features(
        item_text=torch.nn.functional.normalize(torch.randn(N_ITEMS + 1, 384, generator=g), dim=1),
        user_text=torch.nn.functional.normalize(torch.randn(N_USERS + 1, 384, generator=g), dim=1),
        image=torch.nn.functional.normalize(torch.randn(N_ITEMS + 1, 512, generator=g), dim=1),
    )
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    hist = torch.zeros(4, L, dtype=torch.long)
    hist[0] = torch.arange(1, L + 1)
    hist[1, -5:] = torch.tensor([3, 4, 5, 6, 7])
    hist[2, -1] = 9  # all padding but one item
    hist[3, -2:] = torch.tensor([2, 2])
    return hist, torch.tensor([1, 2, 3, 7])


@pytest.mark.parametrize("grad", [True, False])
def test_no_nan_with_padding_in_eval_and_train(grad: bool) -> None:
    model = _model()
    hist, users = _batch()
    for mode in ("eval", "train"):
        getattr(model, mode)()
        with torch.set_grad_enabled(grad):
            vecs = model.user_vectors(hist, users)
            items = model.item_vectors()
        assert vecs.shape == (4, 16 + 3 * 3 * 8)
        assert items.shape == (N_ITEMS + 1, vecs.shape[1])
        assert torch.isfinite(vecs).all() and torch.isfinite(items).all()
        assert torch.all(items[0] == 0)


def test_encoder_zeroes_padding_and_ignores_it() -> None:
    torch.manual_seed(0)
    enc = SASRecEncoder(N_ITEMS, L, 16, 2, 2, 0.0).eval()
    short = torch.tensor([[0, 0, 0, 5, 6, 7]])
    with torch.no_grad():
        h = enc(short)
        # Left padding to a wider batch must not change the states of real positions.
        wide = enc(torch.cat([torch.zeros(1, 4, dtype=torch.long), short], dim=1))
    assert torch.all(h[0, :3] == 0)
    assert torch.allclose(h[0, 3:], wide[0, 7:], atol=1e-5)


def test_gates_sum_to_one_and_absent_modality_is_exactly_zero() -> None:
    model = _model(modalities=("user_text", "item_text")).eval()
    hist, users = _batch()
    with torch.no_grad():
        modality, experts = model.gate_weights(hist, users)
    assert modality.shape == (4, 3) and experts.shape == (4, 3, 3)
    assert torch.allclose(modality.sum(1), torch.ones(4))
    assert torch.allclose(experts.sum(2), torch.ones(4, 3))
    assert torch.all(modality[:, 2] == 0)  # image absent
    assert torch.all(modality[:, :2] > 0)
    # Its block of the user vector is zero too, so it cannot contribute to any score.
    start, end = next((s, e) for n, s, e in model.block_bounds() if n == "image")
    with torch.no_grad():
        assert torch.all(model.user_vectors(hist, users)[:, start:end] == 0)


def test_block_bounds_partition_the_vector() -> None:
    model = _model()
    bounds = model.block_bounds()
    assert [b[0] for b in bounds] == ["sasrec", "user_text", "item_text", "image"]
    assert bounds[0][1] == 0 and all(a[2] == b[1] for a, b in zip(bounds, bounds[1:]))
    assert bounds[-1][2] == model.item_vectors().shape[1]


def test_aux_loss_positive_for_unbalanced_gates() -> None:
    moe = HierarchicalMoE([4, 4, 4], gate_dim=4, sub_experts=3, expert_dim=2, dropout=0.0)
    moe.reset(0.02)
    with torch.no_grad():
        moe.modality_gate.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
        moe.expert_gate.bias.copy_(torch.tensor([4.0, 0.0, 0.0] * 3))
    ctx = torch.randn(10, 4)
    out, aux = moe([ctx, ctx, ctx], ctx, torch.tensor([True, True, True]))
    assert out.shape == (10, 3, 3, 2)
    assert torch.isfinite(aux) and aux.item() > 0.5
    balanced = torch.full((10, 3), 1 / 3)
    assert balance_loss(balanced).item() == pytest.approx(0.0, abs=1e-9)


def test_dot_product_equals_direct_score() -> None:
    model = _model().eval()
    hist, users = _batch()
    items = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 30]])
    with torch.no_grad():
        full = model.user_vectors(hist, users) @ model.item_vectors().T
        direct = model.score(hist, users, items)
    assert torch.allclose(full.gather(1, items), direct, atol=1e-5)


def test_sasrec_scorer_and_hidden_size_honoured() -> None:
    torch.manual_seed(0)
    model = SASRec(N_ITEMS, L, 24, 1, 1, 0.1, 0.02).eval()
    hist, users = _batch()
    with torch.no_grad():
        assert model.user_vectors(hist, users).shape == (4, 24)
    assert model.item_vectors().shape == (N_ITEMS + 1, 24)
    # Small init as reference SASRecs do: std ~0.02, not nn.Embedding's N(0, 1).
    assert model.encoder.item_emb.weight[1:].std().item() < 0.05


def test_sequence_loss_inputs_only_non_pad_positions() -> None:
    model = _model().train()
    hist, users = _batch()
    vecs, items, aux = model.sequence_loss_inputs(hist, users)
    assert vecs.shape[0] == int((hist != 0).sum())
    assert items.shape[0] == N_ITEMS + 1
    assert torch.isfinite(aux)


def test_last_only_state_equals_full_forward_last_column() -> None:
    torch.manual_seed(0)
    enc = SASRecEncoder(N_ITEMS, L, 16, 2, 2, 0.0).eval()
    hist, _ = _batch()
    with torch.no_grad():
        full = enc(hist)[:, -1]
        last = enc(hist, last_only=True)
    assert last.shape == (4, 1, 16)
    assert torch.allclose(last[:, 0], full, atol=1e-5)


def _adapted(modalities=("user_text", "item_text", "image")) -> UR4RecV2:
    """A model with content-aware item tokens whose experts have moved off their zero start."""
    model = _model(modalities, item_adaptor=True)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for bank in model.item_adaptor.experts:
            bank.weight.copy_(0.05 * torch.randn(bank.weight.shape, generator=g))
    return model


def test_fresh_item_adaptor_scores_exactly_like_the_model_without_it() -> None:
    """Its experts start at zero: loading a trained model into one with a new adaptor changes no score."""
    plain, adapted = _model().eval(), _model(item_adaptor=True).eval()
    adapted.load_state_dict(plain.state_dict(), strict=False)
    hist, users = _batch()
    with torch.no_grad():
        assert torch.equal(adapted.item_table(), plain.sasrec.item_vectors())
        assert torch.allclose(adapted.user_vectors(hist, users), plain.user_vectors(hist, users), atol=1e-6)
        assert torch.allclose(adapted.item_vectors(), plain.item_vectors(), atol=1e-6)


@pytest.mark.parametrize("grad", [True, False])
def test_item_adaptor_shapes_padding_no_nan_and_factorisation(grad: bool) -> None:
    model = _adapted()
    hist, users = _batch()
    items = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 30]])
    for mode in ("eval", "train"):
        getattr(model, mode)()
        with torch.set_grad_enabled(grad):
            table = model.item_table()
            vecs, matrix = model.user_vectors(hist, users), model.item_vectors()
        assert table.shape == (N_ITEMS + 1, 16) and torch.all(table[0] == 0)  # padding stays zero
        assert not torch.equal(table, model.sasrec.item_vectors())  # content moved the item tokens
        assert torch.isfinite(vecs).all() and torch.isfinite(matrix).all() and torch.all(matrix[0] == 0)
    model.eval()
    with torch.no_grad():
        full = model.user_vectors(hist, users) @ model.item_vectors().T
        assert torch.allclose(full.gather(1, items), model.score(hist, users, items), atol=1e-5)
        # The encoder reads the adapted tokens: its states differ from the plain SASRec's.
        assert not torch.allclose(model._states(hist), model.sasrec.user_vectors(hist))


def test_item_adaptor_follows_the_item_side_modalities() -> None:
    model = _adapted(("user_text",)).eval()  # neither item text nor image: nothing to adapt from
    with torch.no_grad():
        assert torch.equal(model.item_table(), model.sasrec.item_vectors())
    text_only = _adapted(("item_text",)).eval()
    with torch.no_grad():
        image_changed = text_only.image.clone().normal_()
        before = text_only.item_table()
        text_only.image.copy_(image_changed)
        assert torch.equal(text_only.item_table(), before)  # an absent image modality is never read


def test_item_adaptor_trains_from_its_zero_start() -> None:
    model = _model(item_adaptor=True).train()
    hist, users = _batch()
    vecs, items, _ = model.sequence_loss_inputs(hist, users)
    (vecs @ items.T).logsumexp(1).sum().backward()
    assert all(bank.weight.grad is not None and bank.weight.grad.abs().sum() > 0 for bank in model.item_adaptor.experts)


def _sink_encoder() -> SASRecEncoder:
    torch.manual_seed(0)
    enc = SASRecEncoder(N_ITEMS, L, 16, 2, 2, 0.0, padding_sink=True)
    for m in enc.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.3)
            torch.nn.init.normal_(m.bias, std=0.5)  # the sink is the key/value bias: make it matter
    return enc.eval()


def test_padding_sink_equals_a_zero_padded_sasrec_that_attends_to_padding() -> None:
    """The sink is exactly what a SASRec padded to max_len with unmasked padding keys computes."""
    enc = _sink_encoder()
    hist, _ = _batch()
    keep = hist != 0
    with torch.no_grad():
        ours = enc(hist)
        # By hand: every padding position is a real key (causal mask only), its input is zero.
        x = (enc.item_emb(hist) * enc.scale + enc.pos_emb(torch.arange(L))[None]) * keep[..., None]
        causal = torch.ones(L, L, dtype=torch.bool).tril()[None, None].expand(hist.shape[0], 1, L, L)
        for block in enc.blocks:
            x = block(x, causal) * keep[..., None]
        explicit = enc.ln(x) * keep[..., None]
        plain = SASRecEncoder(N_ITEMS, L, 16, 2, 2, 0.0).eval()
        plain.load_state_dict(enc.state_dict())
    assert torch.allclose(ours, explicit, atol=1e-5)
    # It changes the states of short rows (a full-length row has no padding, so no sink). The
    # full-length row matches to float rounding, not bit for bit: the two paths call attention with
    # different masks, and on some CPUs (AVX2-only AMD EPYC, torch 2.14.1) the kernels differ by ~5e-7.
    differs = (ours - plain(hist)).abs().amax(dim=(1, 2))
    assert differs[0] <= 1e-5 and (differs[1:] > 1e-3).all()


@pytest.mark.parametrize("grad", [True, False])
def test_padding_sink_batch_width_invariance_last_only_and_no_nan(grad: bool) -> None:
    enc = _sink_encoder()
    short = torch.tensor([[0, 0, 0, 5, 6, 7], [0, 0, 0, 0, 0, 0]])  # the second row is all padding
    for mode in ("eval", "train"):
        getattr(enc, mode)()
        with torch.set_grad_enabled(grad):
            h = enc(short)
            assert torch.isfinite(h).all() and torch.all(h[1] == 0) and torch.all(h[0, :3] == 0)
    enc.eval()
    with torch.no_grad():
        h = enc(short)
        wide = enc(torch.cat([torch.zeros(2, 4, dtype=torch.long), short], dim=1))
        last = enc(short, last_only=True)
    # Padding is counted up to max_len, so the batch's own width changes nothing.
    assert torch.allclose(wide[:, 4:], h, atol=1e-5)
    assert torch.allclose(last[:, 0], h[:, -1], atol=1e-5)


def test_padding_sink_model_factorises_as_a_dot_product() -> None:
    model = _model(item_adaptor=True, padding_sink=True).eval()
    hist, users = _batch()
    items = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 30]])
    with torch.no_grad():
        full = model.user_vectors(hist, users) @ model.item_vectors().T
        direct = model.score(hist, users, items)
    assert torch.isfinite(full).all()
    assert torch.allclose(full.gather(1, items), direct, atol=1e-5)
