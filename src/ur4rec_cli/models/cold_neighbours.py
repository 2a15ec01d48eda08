"""Vectors of items without a training interaction from their content neighbours among the known items.

An unknown item (a cold item of ``data --cold-items``, an item added by ``items add``) has no ID
embedding and no anchor row of its own. With ``model.cold_neighbours`` k > 0 its ID-side blocks
(the item token, which carries the content adaptor's offset, and the frozen stage-1 SASRec's row)
become a weighted mean of the same blocks of the k known items whose item texts are nearest to its
own (cosine of the raw item-text embeddings), times ``model.cold_scale``:

    w_j = softmax_j(cos(t_i, t_j) / temperature) over the top k known items j,
    v_i[ID blocks] = scale * sum_j w_j v_j[ID blocks]

The retriever keys stay the item's own (they are computed from its content). Nothing is trained:
the known items' vectors are those of the trained model, and the imputation runs wherever the
model scores (evaluate, the export, `recommend --history`, `items add`), so a catalogue's cold item
and an added item with the same text get the same vector. The scale trades warm for cold accuracy:
below 1 an imputed item scores under its neighbours (rarely displaces a known item), at 1 about as
high (docs/model.md, the issue-22 notebook, measures the trade-off).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Neighbours:
    """How unknown items borrow their known neighbours' ID-side blocks."""

    k: int
    temperature: float
    scale: float


def neighbour_mean(queries: torch.Tensor, keys: torch.Tensor, rows: torch.Tensor, nb: Neighbours) -> torch.Tensor:
    """``scale`` x the softmax-weighted mean of ``rows`` [K, c] over each query's top-k keys.

    ``queries`` [M, d] and ``keys`` [K, d] are raw text embeddings (cosine similarity); -> [M, c].
    """
    if keys.shape[0] == 0:
        raise ValueError("no known item to borrow a vector from")
    q = F.normalize(queries.float(), dim=1)
    k = F.normalize(keys.float(), dim=1)
    top, idx = (q @ k.T).topk(min(nb.k, keys.shape[0]), dim=1)
    w = torch.softmax(top / nb.temperature, dim=1)
    return nb.scale * torch.einsum("mk,mkc->mc", w, rows.float()[idx]).to(rows.dtype)


def has_text(item_text: torch.Tensor) -> bool:
    """Whether the model holds item-text embeddings (the buffer stays zero without them)."""
    return bool(item_text[1:].abs().sum() > 0)
