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
model scores (training's validation, evaluate, the export, `recommend --history`, `items add`;
``runs.set_cold_neighbours`` applies the settings), so a catalogue's cold item
and an added item with the same text get the same vector. The scale trades warm for cold accuracy:
below 1 an imputed item scores under its neighbours (rarely displaces a known item), at 1 about as
high (docs/model.md, the issue-22 notebook, measures the trade-off). ``default_known`` is the load
hook that reads a checkpoint written before the model knew which items are known (all of them).
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


# Similarities held at once: queries are taken in chunks of at most this many / K rows (a large
# catalogue with many unknown items would otherwise hold an M x K matrix).
CHUNK_CELLS = 1 << 24


def neighbour_mean(queries: torch.Tensor, keys: torch.Tensor, rows: torch.Tensor, nb: Neighbours) -> torch.Tensor:
    """``scale`` x the softmax-weighted mean of ``rows`` [K, c] over each query's top-k keys.

    ``queries`` [M, d] and ``keys`` [K, d] are raw text embeddings (cosine similarity); -> [M, c].
    """
    if keys.shape[0] == 0:
        raise ValueError("no known item to borrow a vector from")
    k = F.normalize(keys.float(), dim=1)
    values = rows.float()
    step = max(1, CHUNK_CELLS // keys.shape[0])
    out = []
    for start in range(0, queries.shape[0], step):
        q = F.normalize(queries[start : start + step].float(), dim=1)
        top, idx = (q @ k.T).topk(min(nb.k, keys.shape[0]), dim=1)
        w = torch.softmax(top / nb.temperature, dim=1)
        out.append(torch.einsum("mk,mkc->mc", w, values[idx]))
    return (nb.scale * torch.cat(out)).to(rows.dtype) if out else rows.new_zeros(0, rows.shape[1])


def has_text(item_text: torch.Tensor) -> bool:
    """Whether the model holds item-text embeddings (the buffer stays zero without them)."""
    return bool(item_text[1:].abs().sum() > 0)


def default_known(module, state_dict, prefix, *args) -> None:
    """A load_state_dict pre-hook: a checkpoint written before ``known`` and ``unknown_id`` existed
    has every item known (as it was then) and a zero shared unknown-item token."""
    key = prefix + "known"
    if key not in state_dict and prefix + "item_text" in state_dict:
        state_dict[key] = torch.ones(state_dict[prefix + "item_text"].shape[0], dtype=torch.bool)
    if prefix + "unknown_id" not in state_dict and prefix + "sasrec_weight" in state_dict:
        state_dict[prefix + "unknown_id"] = torch.zeros_like(module.unknown_id)
