"""Hierarchical mixture of experts: sub-experts inside each modality, a gate across modalities; the
item-side key towers (one expert head per sub-expert) and the item adaptor.

Dims in einsum strings: n = rows (users or sequence positions), m = modality, s = sub-expert,
i = expert input, e = expert output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ur4rec_cli.models import fast_dropout


class ExpertBank(nn.Module):
    """``S`` linear experts over one input, computed in one einsum: [N, i] -> [N, S, e]."""

    def __init__(self, in_dim: int, experts: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(experts, out_dim))

    def reset(self, std: float) -> None:
        nn.init.normal_(self.weight, std=std)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ni,sie->nse", x, self.weight) + self.bias


def balance_loss(weights: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation of the batch-mean gate weights over the last dim.

    0 for a perfectly balanced gate, larger the more the batch routes to few experts.
    """
    mean = weights.reshape(-1, weights.shape[-1]).mean(0)
    return mean.var(unbiased=False) / mean.mean().clamp_min(1e-9).pow(2)


class KeyTower(nn.Module):
    """Item features [n, in] -> sub-expert keys [n, S, e]: a shared GELU layer, then one head per expert."""

    def __init__(self, in_dim: int, hidden: int, experts: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.heads = ExpertBank(hidden, experts, out_dim)
        self.dropout = fast_dropout.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.dropout(F.gelu(self.inp(x))))


class HierarchicalMoE(nn.Module):
    """Queries of ``M`` modalities x ``S`` sub-experts, weighted by a two-level gate.

    ``forward(inputs, context, present)``: ``inputs[m]`` is [N, in_m] (ignored for an absent
    modality), ``context`` [N, gate_dim] conditions both gates, ``present`` [M] bool masks absent
    modalities out of the cross-modality gate (their weight is exactly 0). Returns
    ``(output [N, M, S, e], aux_loss)``; ``gates()`` gives the weights themselves.
    """

    def __init__(self, in_dims: list[int], gate_dim: int, sub_experts: int, expert_dim: int, dropout: float) -> None:
        super().__init__()
        self.n_modalities, self.sub_experts, self.expert_dim = len(in_dims), sub_experts, expert_dim
        self.experts = nn.ModuleList(ExpertBank(d, sub_experts, expert_dim) for d in in_dims)
        self.modality_gate = nn.Linear(gate_dim, self.n_modalities)
        self.expert_gate = nn.Linear(gate_dim, self.n_modalities * sub_experts)
        self.dropout = fast_dropout.Dropout(dropout)

    def reset(self, std: float) -> None:
        for bank in self.experts:
            bank.reset(std)
        for lin in (self.modality_gate, self.expert_gate):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)

    def gates(self, context: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(modality weights [N, M], sub-expert weights [N, M, S]); absent modalities get 0."""
        logits = self.modality_gate(context).masked_fill(~present, float("-inf"))
        # With no modality present every logit is -inf; nan_to_num turns that row into zeros.
        modality = torch.nan_to_num(F.softmax(logits, dim=-1), nan=0.0)
        experts = F.softmax(self.expert_gate(context).view(-1, self.n_modalities, self.sub_experts), dim=-1)
        return modality, experts

    def forward(
        self, inputs: list[torch.Tensor | None], context: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        modality, experts = self.gates(context, present)
        n = context.shape[0]
        queries = torch.stack(
            [
                bank(x) if x is not None and bool(present[m]) else context.new_zeros(n, self.sub_experts, self.expert_dim)
                for m, (bank, x) in enumerate(zip(self.experts, inputs))
            ],
            dim=1,
        )  # [N, M, S, e]
        out = torch.einsum("nm,nms,nmse->nmse", modality, experts, self.dropout(queries))
        aux = self.aux_loss(modality, experts, present)
        return out, aux

    def aux_loss(self, modality: torch.Tensor, experts: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Load balance across present modalities and across each present modality's sub-experts."""
        idx = present.nonzero().flatten()
        if idx.numel() == 0:
            return modality.new_zeros(())
        loss = balance_loss(modality[:, idx]) if idx.numel() > 1 else modality.new_zeros(())
        if self.sub_experts > 1:
            loss = loss + torch.stack([balance_loss(experts[:, m]) for m in idx.tolist()]).mean()
        return loss


def feature_scale(dim: int) -> float:
    """L2-normalised features have entries ~1/sqrt(dim); rescale them to unit variance."""
    return math.sqrt(dim)


class ItemAdaptor(nn.Module):
    """Content-aware item tokens (UniSRec's MoE adaptor, Hou et al. KDD 2022): per item-side
    modality, ``S`` linear experts over the item's feature vector, mixed by a softmax gate read
    from the same vector; modalities are summed. Added to the ID embedding, the result is both
    the sequence encoder's input token and the output item vector.

    The experts start at zero, so a model with a fresh adaptor scores exactly like the model
    it was loaded from; training moves them from there.
    """

    def __init__(self, in_dims: list[int], experts: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.experts = nn.ModuleList(ExpertBank(d, experts, out_dim) for d in in_dims)
        self.gates = nn.ModuleList(nn.Linear(d, experts) for d in in_dims)
        self.dropout = fast_dropout.Dropout(dropout)

    def reset(self, std: float) -> None:
        for bank, gate in zip(self.experts, self.gates):
            nn.init.zeros_(bank.weight)
            nn.init.zeros_(bank.bias)
            nn.init.normal_(gate.weight, std=std)
            nn.init.zeros_(gate.bias)

    def forward(self, features: list[torch.Tensor | None]) -> torch.Tensor | None:
        """Feature matrices [n, in_m] (None = modality absent) -> item offsets [n, out] (None if none)."""
        total = None
        for bank, gate, x in zip(self.experts, self.gates, features):
            if x is None:
                continue
            x = self.dropout(x)
            mixed = torch.einsum("ns,nse->ne", F.softmax(gate(x), dim=-1), bank(x))
            total = mixed if total is None else total + mixed
        return total
