"""The chunked full-softmax loss equals the plain one, value and gradients, with bounded logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ur4rec_cli.training import chunked_loss
from ur4rec_cli.training.chunked_loss import chunk_rows, chunked_cross_entropy
from ur4rec_cli.training.trainer import softmax_loss


def _case(n: int = 37, m: int = 53, d: int = 8, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    vecs = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    items = torch.randn(m + 1, d, generator=g, dtype=dtype, requires_grad=True)  # row 0: padding
    targets = torch.randint(1, m + 1, (n,), generator=g)
    return vecs, items, targets


@pytest.mark.parametrize("rows", [1, 5, 36, 37, 100])
def test_chunked_equals_full_in_value_and_gradients(rows: int) -> None:
    vecs, items, targets = _case()
    full = F.cross_entropy(vecs @ items[1:].T, targets - 1, reduction="sum")
    gv, gi = torch.autograd.grad(full, (vecs, items))
    chunked = chunked_cross_entropy(vecs.float(), items[1:].float(), targets - 1, rows=rows)
    cv, ci = torch.autograd.grad(chunked, (vecs, items))
    assert chunked.item() == pytest.approx(full.item(), rel=1e-6)
    assert torch.allclose(cv.double(), gv, atol=1e-5) and torch.allclose(ci.double(), gi, atol=1e-5)
    assert ci[0].abs().max() == 0  # the padding row is never a candidate
    mean = chunked_cross_entropy(vecs.float(), items[1:].float(), targets - 1, rows=rows, reduction="mean")
    assert mean.item() == pytest.approx(full.item() / len(targets), rel=1e-6)


def test_softmax_loss_chunks_only_above_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    vecs, items, targets = _case(dtype=torch.float32)
    plain = softmax_loss(vecs, items, targets, reduction="sum")
    calls = []
    real = chunked_loss.chunked_cross_entropy

    def spy(*a, **k):
        calls.append(k["rows"])
        return real(*a, **k)

    monkeypatch.setattr(chunked_loss, "chunked_cross_entropy", spy)
    assert torch.equal(softmax_loss(vecs, items, targets, reduction="sum"), plain) and calls == []  # under the budget: untouched
    monkeypatch.setattr(chunked_loss, "LOGITS_BUDGET", 53 * 10)  # 10 rows of 53 items per chunk
    chunked = softmax_loss(vecs, items, targets, reduction="sum")
    assert calls == [10] and chunked.item() == pytest.approx(plain.item(), rel=1e-5)
    assert chunk_rows(53, 53 * 10) == 10 and chunk_rows(10**9, 10) == 1


def test_peak_logits_stay_within_one_chunk() -> None:
    """The largest tensor the chunked loss makes is one chunk's logits, not positions x catalogue."""
    vecs, items, targets = _case(n=400, m=500, dtype=torch.float32)
    sizes: list[int] = []

    class Watch(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                sizes.append(out.numel())
            return out

    with Watch():
        loss = chunked_cross_entropy(vecs, items[1:], targets - 1, rows=20)
        loss.backward()
    assert max(sizes) <= max(20 * 500, items.numel(), vecs.numel())
    assert max(sizes) < 400 * 500


def test_fused_loss_equals_cross_entropy_and_is_the_cpu_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused loss (the softmax kept for backward) equals F.cross_entropy, value and
    gradients, and is what softmax_loss runs for float32 on the CPU under the budget."""
    vecs, items, targets = _case()
    full = F.cross_entropy(vecs @ items[1:].T, targets - 1, reduction="sum")
    gv, gi = torch.autograd.grad(full * 3.0, (vecs, items))  # a non-unit upstream gradient
    fused = chunked_loss.fused_cross_entropy(vecs, items[1:], targets - 1)
    fv, fi = torch.autograd.grad(fused * 3.0, (vecs, items))
    assert fused.item() == pytest.approx(full.item(), rel=1e-12)
    assert torch.allclose(fv, gv, atol=1e-12) and torch.allclose(fi, gi, atol=1e-12) and fi[0].abs().max() == 0
    mean = chunked_loss.fused_cross_entropy(vecs, items[1:], targets - 1, reduction="mean")
    assert mean.item() == pytest.approx(full.item() / len(targets), rel=1e-12)
    calls = []
    real = chunked_loss.fused_cross_entropy
    monkeypatch.setattr(chunked_loss, "fused_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))
    v32, i32 = vecs.detach().float(), items.detach().float()
    assert softmax_loss(v32, i32, targets, reduction="sum").item() == pytest.approx(full.item(), rel=1e-5) and calls == [1]
    softmax_loss(vecs, items, targets, reduction="sum")  # float64: the plain path
    assert calls == [1]


def test_bf16_products_stay_close_and_are_chosen_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """train.bf16_logits: the fused loss with its matrix products in bfloat16 is the float32 loss
    up to bfloat16 rounding; auto follows the CPU's native support, and CUDA never reads it."""
    from ur4rec_cli.training.chunked_loss import describe_loss, uses_bf16_logits

    g = torch.Generator().manual_seed(1)
    vecs = (torch.randn(300, 32, generator=g) * 0.5).requires_grad_()
    items = (torch.randn(200, 32, generator=g) * 0.5).requires_grad_()
    targets = torch.randint(0, 200, (300,), generator=g)
    full = chunked_loss.fused_cross_entropy(vecs, items, targets)
    gv, gi = torch.autograd.grad(full, (vecs, items))
    half = chunked_loss.fused_cross_entropy(vecs, items, targets, bf16=True)
    hv, hi = torch.autograd.grad(half, (vecs, items))
    assert half.dtype == torch.float32 and hv.dtype == torch.float32 and half.item() == pytest.approx(full.item(), rel=1e-3)
    assert (hv - gv).norm() / gv.norm() < 0.02 and (hi - gi).norm() / gi.norm() < 0.02
    assert not torch.equal(hv, gv)  # it did multiply in bfloat16
    assert uses_bf16_logits("off", "cpu") is False and uses_bf16_logits("on", "cpu") is True and uses_bf16_logits("on", "cuda") is False
    for native in (True, False):
        monkeypatch.setattr(chunked_loss, "cpu_bf16", lambda native=native: native)
        assert uses_bf16_logits("auto", "cpu") is native
    assert "matrix products in bfloat16" in describe_loss("ce", 50, 10, 8, bf16=True)
    assert "bfloat16" not in describe_loss("ce", 50, 10, 8)


def test_bf16_rows_are_padded_to_few_shapes_without_changing_the_loss_or_its_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Padding the bfloat16 products' rows (so that oneDNN meets few shapes) changes no value:
    the same loss and gradients as unpadded products (BF16_ROWS = 1), for row counts on and off the multiple."""
    g = torch.Generator().manual_seed(2)
    items = (torch.randn(150, 16, generator=g) * 0.5).requires_grad_()
    padded = []
    real_pad = chunked_loss._pad_rows
    monkeypatch.setattr(chunked_loss, "_pad_rows", lambda x, rows=None: padded.append(real_pad(x, rows).shape[0]) or real_pad(x, rows))
    for n in (1, 63, 64, 65, 200):
        vecs = (torch.randn(n, 16, generator=g) * 0.5).requires_grad_()
        targets = torch.randint(0, 150, (n,), generator=g)
        out = {}
        for rows in (1, 64):
            monkeypatch.setattr(chunked_loss, "BF16_ROWS", rows)
            padded.clear()
            loss = chunked_loss.fused_cross_entropy(vecs, items, targets, bf16=True)
            out[rows] = (loss, *torch.autograd.grad(loss, (vecs, items)))
        assert padded and set(padded) == {-(-n // 64) * 64}  # forward's and backward's products: one padded shape
        for a, b in zip(out[1], out[64]):
            assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-6)
