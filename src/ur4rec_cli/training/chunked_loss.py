"""Full-softmax cross-entropy: fused on a CPU, and without a [positions x catalogue] logits tensor alive at once above a budget.

With every position of every sequence a target, the logits of one batch grow with positions x
catalogue: 2,000 users x 100 positions over 50,000 items asked for one 4.7 GB tensor, and
autograd keeps it for the backward pass. ``chunked_cross_entropy`` computes the same loss (the
same sum, in another order) and its exact gradients over row chunks: forward keeps only each row's
log-sum-exp; backward recomputes one chunk's logits at a time (as Cut Cross-Entropy does, with
plain matrix products). Peak memory is one chunk's logits, ``budget`` floats, whatever the
catalogue. ``softmax_loss`` takes this path only when a batch's logits would pass the budget.

Under the budget, on a CPU, ``fused_cross_entropy`` computes ``F.cross_entropy``'s values and
gradients in one autograd function that keeps the softmax itself for backward: no zero-filled
one-hot and no log-softmax backward, about half the CPU time (ML-100K trains on this path).
With ``train.bf16_logits`` its three matrix products run in bfloat16 on a CPU that multiplies
bfloat16 natively, rows padded to a multiple of ``BF16_ROWS`` so that few shapes occur; the softmax
stays in float32.
"""

from __future__ import annotations

import torch

# Logits elements (float32) one chunk may hold at once: 2**26 = 256 MiB. ML-100K's largest batch
# (128 rows x 200 positions x 1,682 items = 43M) stays under it and trains on the plain loss; the
# chunk is the loss's only large tensor (forward and backward work in its memory), so peak memory
# no longer grows with the catalogue (docs/benchmarks.md, cost at scale).
LOGITS_BUDGET = 1 << 26


def describe_loss(loss: str, n_items: int, max_rows: int, negatives: int, catalogue: int | None = None, bf16: bool = False) -> str:
    """Which loss a run trains with and why (the run summary's ``loss`` line); ``n_items`` are the
    items the softmax runs over (those with a training interaction) of ``catalogue``; ``bf16``: the
    unchunked full softmax multiplies in bfloat16 (``train.bf16_logits``)."""
    over = f"{n_items:,} items" if catalogue in (None, n_items) else f"the {n_items:,} of {catalogue:,} items with a training interaction"
    if loss == "sampled":
        return f"sampled softmax, {negatives} negatives shared per batch (train.loss = sampled) from {over}"
    mib = LOGITS_BUDGET * 4 / 2**20
    if max_rows * n_items > LOGITS_BUDGET:
        return (f"full softmax over {over}, in chunks of {chunk_rows(n_items):,} positions where a batch's logits "
                f"would pass {mib:.0f} MiB (same loss and gradients, bounded memory)")  # fmt: skip
    how = "; its matrix products in bfloat16, softmax in float32 (train.bf16_logits: this CPU multiplies bfloat16 natively)" if bf16 else ""
    return f"full softmax over {over} (a batch's logits stay under {mib:.0f} MiB: no chunking{how})"


def chunk_rows(n_items: int, budget: int | None = None) -> int:
    """Rows per chunk so that a chunk's logits stay within ``budget`` (default ``LOGITS_BUDGET``) elements."""
    return max(1, (LOGITS_BUDGET if budget is None else budget) // max(1, n_items))


class _ChunkedCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vecs: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, rows: int) -> torch.Tensor:  # type: ignore[override]
        v, w = vecs.float(), items.float()
        lse = torch.empty(v.shape[0], dtype=torch.float32, device=v.device)
        total = torch.zeros((), dtype=torch.float32, device=v.device)
        for a in range(0, v.shape[0], rows):
            logits = v[a : a + rows] @ w.T
            target = logits.gather(1, targets[a : a + rows, None]).squeeze(1)
            # log-sum-exp in the logits' own memory (torch.logsumexp would hold a second chunk-sized temporary)
            top = logits.max(dim=1).values
            chunk = top + logits.sub_(top[:, None]).exp_().sum(dim=1).log()
            lse[a : a + rows] = chunk
            total += (chunk - target).sum()
        ctx.save_for_backward(vecs, items, targets, lse)
        ctx.rows = rows
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        vecs, items, targets, lse = ctx.saved_tensors
        v, w = vecs.float(), items.float()
        grad_v = torch.empty_like(v)
        grad_w = torch.zeros_like(w)
        for a in range(0, v.shape[0], ctx.rows):
            vc = v[a : a + ctx.rows]
            p = (vc @ w.T).sub_(lse[a : a + ctx.rows, None]).exp_()  # the softmax, in the logits' own memory
            p[torch.arange(p.shape[0], device=p.device), targets[a : a + ctx.rows]] -= 1.0
            p *= grad
            grad_v[a : a + ctx.rows] = p @ w
            grad_w += p.T @ vc
        return grad_v.to(vecs.dtype), grad_w.to(items.dtype), None, None


class _FusedCE(torch.autograd.Function):
    """One chunk: forward keeps the softmax itself (in the logits' memory) for backward, which
    then needs no recomputation, no zero-filled one-hot and no log-softmax backward: about half
    the time of ``F.cross_entropy`` on a CPU, the same memory (autograd keeps a logits-sized tensor
    either way)."""

    @staticmethod
    def forward(ctx, vecs: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, bf16: bool) -> torch.Tensor:  # type: ignore[override]
        if bf16:  # the three matrix products in bfloat16 (float32 accumulation); the softmax in float32
            vecs, items = _pad_rows(vecs.bfloat16()), items.bfloat16()
            logits = (vecs @ items.T)[: targets.shape[0]].float()
        else:
            logits = vecs @ items.T
        target = logits.gather(1, targets[:, None]).squeeze(1)
        top = logits.max(dim=1).values
        probs = logits.sub_(top[:, None]).exp_()
        sums = probs.sum(dim=1)
        probs.div_(sums[:, None])
        ctx.save_for_backward(vecs, items, targets, probs)
        return (top + sums.log() - target).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        vecs, items, targets, probs = ctx.saved_tensors
        probs[torch.arange(probs.shape[0], device=probs.device), targets] -= 1.0  # d loss / d logits
        probs *= grad
        n = probs.shape[0]
        g = probs.to(vecs.dtype) if vecs.shape[0] == n else _pad_rows(probs.to(vecs.dtype), vecs.shape[0])
        return (g @ items)[:n].float(), (g.T @ vecs).float(), None, None


# bfloat16 products pad their rows to a multiple of this. oneDNN keeps state (~4 MB) for every
# distinct matrix shape it multiplies in bfloat16, and a batch's positions vary with its users:
# unpadded, ~1,000 shapes per ML-100K job took peak memory from 1.7 to 4.7 GB. Padded, a job
# meets at most (largest batch / BF16_ROWS) + 1 shapes. Zero rows change no value and no gradient.
BF16_ROWS = 1024


def _pad_rows(x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows`` (default: the next multiple of ``BF16_ROWS``)."""
    n = x.shape[0]
    rows = -(-n // BF16_ROWS) * BF16_ROWS if rows is None else rows
    if rows == n:
        return x
    out = x.new_zeros(rows, *x.shape[1:])
    out[:n] = x
    return out


def fused_cross_entropy(vecs: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, *, reduction: str = "sum", bf16: bool = False) -> torch.Tensor:
    """``F.cross_entropy(vecs @ items.T, targets)`` (float32 inputs) with a cheaper backward (:class:`_FusedCE`);
    ``bf16``: its matrix products in bfloat16 (see :func:`cpu_bf16`).

    Backward runs once per forward (it overwrites the kept softmax)."""
    return _reduce(_FusedCE.apply(vecs, items, targets, bf16), targets, reduction)


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX, through oneDNN);
    elsewhere bfloat16 products are emulated and slower than float32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch without these probes
        return False


def uses_bf16_logits(setting: str, device_type: str) -> bool:
    """``train.bf16_logits`` resolved for a device: only CPU training reads it (CUDA has ``train.amp``)."""
    return device_type == "cpu" and (setting == "on" or (setting == "auto" and cpu_bf16()))


def _reduce(total: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / max(1, targets.numel())
    raise ValueError(f"reduction must be sum or mean, not {reduction!r}")


def chunked_cross_entropy(vecs: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, *, rows: int, reduction: str = "sum") -> torch.Tensor:
    """Cross-entropy of ``targets`` [N] (0-based into ``items`` [M, D]) given ``vecs`` [N, D], ``rows`` at a time."""
    return _reduce(_ChunkedCE.apply(vecs, items, targets, rows), targets, reduction)
