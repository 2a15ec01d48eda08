"""Epoch loop pieces: batches of whole sequences, the every-position softmax loss, validation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ur4rec_cli.data.sequences import pad_left, shuffle_ties

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset


def training_pairs(
    dataset: "Dataset",
    max_len: int,
    learn_validation: bool = False,
    newest_only: bool = False,
    tie_rng: np.random.Generator | None = None,
    recent: int = 0,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(users, inputs, targets): input = train_seq[:-1], target = train_seq[1:], in rows of <= ``max_len`` steps.

    ``learn_validation`` extends every evaluable user's sequence by its validation item, so the
    train -> validation transition is a target too (the test item never is): the final fit that
    gives the test target the footing the validation target had. ``newest_only`` keeps only each
    user's newest window (the older transitions of long histories are dropped, as reference
    SASRecs that pad to ``max_len`` do).

    A train sequence longer than ``max_len`` steps is cut from its end into consecutive windows,
    so every train transition is a target exactly once per epoch (ML-100K: 145 users hold 14% of
    the transitions beyond their newest 200).

    ``tie_rng``: items of one user that share a timestamp come in the source file's order, which
    says nothing about which was first; with a generator, each such group is put in a random order
    (a fresh one per call: per epoch). Only the trained part moves; the held-out items never enter.

    ``recent`` > 0: only each user's newest ``recent`` transitions are targets (older targets are
    0, "not supervised", and windows left without a target are dropped); inputs keep the whole
    history as context.
    """
    users, inputs, targets = [], [], []
    for u in range(1, dataset.n_users + 1):
        seq = dataset.history(u, "test" if learn_validation else "train")
        if tie_rng is not None:
            seq = shuffle_ties(seq, dataset.times(u)[: len(seq)], tie_rng)
        end = len(seq)
        supervised = seq.copy()
        if recent:
            supervised[: max(1, len(seq) - recent)] = 0
        while end >= 2:
            begin = max(0, end - max_len - 1)
            window = seq[begin:end]
            goal = supervised[begin + 1 : end]
            if recent and not goal.any():
                break
            users.append(u)
            inputs.append(window[:-1])
            targets.append(goal)
            end = 0 if newest_only else end - max_len
    return np.asarray(users, dtype=np.int64), inputs, targets


def positions_per_step(pairs: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], steps: int) -> float:
    """Mean number of target positions per optimizer step over an epoch: the loss normaliser.

    Batches hold rows of similar length, so their position counts differ ~10x; dividing each
    batch's summed loss by this constant (not by its own count) weighs every position equally,
    as randomly mixed batches would (measured on ML-100K: per-batch means over length-sorted
    batches left test NDCG@10 of SASRec ~0.005 lower).
    """
    return sum(int(np.count_nonzero(y)) for y in pairs[2]) / max(1, steps)


def iterate_batches(
    pairs: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], batch_size: int, rng: np.random.Generator, with_rows: bool = False
) -> Iterator[tuple]:
    """Shuffled batches (users [B], inputs [B, W], targets [B, W]), left-padded to the batch's longest row
    (``with_rows``: then the batch's row indices into ``pairs`` as a fourth item).

    Rows of similar length share a batch (lengths jittered by +-25% so batches differ between
    epochs) and batches come in random order: attention cost grows with W^2, and ML-100K
    lengths run from 18 to 200, so this roughly halves an epoch.
    """
    users, inputs, targets = pairs
    lengths = np.fromiter((len(x) for x in inputs), dtype=np.float64, count=len(inputs))
    order = np.argsort(lengths * rng.uniform(0.75, 1.25, len(lengths)), kind="stable")
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for c in rng.permutation(len(chunks)):
        idx = chunks[c]
        width = max(len(inputs[i]) for i in idx)
        batch = (
            torch.from_numpy(users[idx]),
            torch.from_numpy(pad_left([inputs[i] for i in idx], width)),
            torch.from_numpy(pad_left([targets[i] for i in idx], width)),
        )
        yield (*batch, idx) if with_rows else batch


def n_batches(pairs: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], batch_size: int) -> int:
    return math.ceil(len(pairs[0]) / batch_size)


def softmax_loss(
    vecs: torch.Tensor,
    items: torch.Tensor,
    targets: torch.Tensor,
    *,
    sampled: bool = False,
    negatives: int = 256,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    catalogue: torch.Tensor | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """Cross-entropy of targets [N] given user vectors [N, D] and the item matrix [n_items + 1, D].

    Full softmax over every item (padding excluded), or a sampled softmax against ``negatives``
    items shared by the whole batch (accidental hits masked). ``reduction``: "mean" or "sum".
    A full softmax whose logits would pass ``chunked_loss.LOGITS_BUDGET`` elements is computed
    in row chunks (the same loss and gradients, bounded memory). ``catalogue`` (sorted item ids,
    every target among them): the softmax runs over these items only (the items with a training
    interaction: an item training never saw is not a negative either). ``bf16``: on a CPU, the full
    softmax's matrix products in bfloat16 (``train.bf16_logits``; chunked_loss.py).
    """
    if catalogue is not None:
        column = torch.full((items.shape[0],), -1, dtype=torch.long, device=targets.device)
        column[catalogue] = torch.arange(catalogue.shape[0], device=targets.device)
        targets = column[targets] + 1  # 1-based into the subset, as into the catalogue
        items = torch.cat([items[:1], items[catalogue]])
    if not sampled:
        from ur4rec_cli.training.chunked_loss import LOGITS_BUDGET, chunk_rows, chunked_cross_entropy, fused_cross_entropy

        n_items = items.shape[0] - 1
        if vecs.shape[0] * n_items > LOGITS_BUDGET:
            return chunked_cross_entropy(vecs, items[1:], targets - 1, rows=chunk_rows(n_items), reduction=reduction)
        if vecs.device.type == "cpu" and vecs.dtype == items.dtype == torch.float32:
            return fused_cross_entropy(vecs, items[1:], targets - 1, reduction=reduction, bf16=bf16)  # the same loss, half the CPU time
        logits = vecs @ items[1:].T  # drop padding column: it is never a target
        return F.cross_entropy(logits, targets - 1, reduction=reduction)
    n_items = items.shape[0] - 1
    neg = torch.randint(1, n_items + 1, (negatives,), generator=generator).to(vecs.device)
    pos_logit = (vecs * items[targets]).sum(-1, keepdim=True)
    neg_logits = (vecs @ items[neg].T).masked_fill(targets[:, None] == neg[None], float("-inf"))
    logits = torch.cat([pos_logit, neg_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets), reduction=reduction)


def known_items(dataset: "Dataset", learn_validation: bool) -> np.ndarray:
    """[n_items + 1] bool: items in some trained history (train part, + validation items when learned); row 0 True."""
    # The fed histories of "test" are train + validation: what a final fit (learn_validation) trains on.
    known = dataset.item_popularity("test" if learn_validation else "train") > 0
    known[0] = True
    return known


def validation_metrics(
    model: torch.nn.Module, dataset: "Dataset", max_len: int, device: torch.device, batch_size: int = 64, dist=None
) -> dict[str, float]:
    """HR/NDCG@10 and MRR on the validation split; under torchrun each rank ranks a strided shard of users."""
    from ur4rec_cli.ranking import full_ranking_ranks, metrics_from_ranks
    from ur4rec_cli.training.distributed import all_gather_array

    users = None
    if dist is not None and dist.enabled:
        users = dataset.eval_users()[dist.rank :: dist.world_size]
    was_training = model.training
    model.eval()
    try:
        _, _, ranks = full_ranking_ranks(model, dataset, "valid", max_len=max_len, users=users, batch_size=batch_size, device=device)
    finally:
        model.train(was_training)
    if dist is not None and dist.enabled:
        # Every rank gets every rank's ranks, so every rank computes the same metrics (same early stopping).
        ranks = all_gather_array(ranks, dist)
    return metrics_from_ranks(ranks, [10])


class SequenceLossInputs(torch.nn.Module):
    """``scorer.sequence_loss_inputs`` as ``forward``: DistributedDataParallel only syncs through forward."""

    def __init__(self, scorer: torch.nn.Module) -> None:
        super().__init__()
        self.scorer = scorer

    def forward(self, inputs: torch.Tensor, users: torch.Tensor, positions: torch.Tensor, states: torch.Tensor | None = None):
        if states is not None:  # the frozen sequence model's cached states at ``positions`` (state_cache.py)
            return self.scorer.loss_inputs_from_states(states, users[:, None].expand_as(inputs)[positions])
        return self.scorer.sequence_loss_inputs(inputs, users, positions)


def shard_pairs(pairs: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], idx: np.ndarray):
    """The training pairs of the given row indices (one rank's share of an epoch)."""
    users, inputs, targets = pairs
    return users[idx], [inputs[i] for i in idx], [targets[i] for i in idx]
