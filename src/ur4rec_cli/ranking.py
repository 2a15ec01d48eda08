"""The ranking core shared by training's validation and `ur4rec evaluate`: ranks and metrics.

It sits beside `runs.py`, outside both packages, so neither `training/` nor `evaluation/` imports
the other. rank = number of candidate items whose score is >= the target's, other than the target
itself (pessimistic ties: a constant or tied score can never look like a hit); NaN scores raise.
HR@k = 1[rank < k]; NDCG@k = 1[rank < k] / log2(rank + 2); MRR = mean 1 / (rank + 1).

Full ranking runs user batches times item chunks, history masked (``full_ranking_ranks_among``: one pass
of user vectors ranked against several candidate sets): memory stays bounded by
``batch_size x item_chunk`` scores whatever the catalog size, so a catalog of 100k+ items is
ranked exactly, chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, Literal, Protocol

import numpy as np

from ur4rec_cli.data.sequences import pad_left, shuffle_ties
from ur4rec_cli.errors import EvaluationError

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.data.dataset import Dataset


class Scorer(Protocol):
    """Anything whose score factors as <user_vec, item_vec> (models, popularity)."""

    def user_vectors(self, histories: "torch.Tensor", users: "torch.Tensor") -> "torch.Tensor": ...

    def item_vectors(self) -> "torch.Tensor": ...


# Rows (users x orders) one stacked encoder call of TieOrderAverage may hold.
STACKED_ROWS = 512


class TieOrderAverage:
    """A scorer whose user vector is the mean of ``orders`` user vectors of the same history.

    Items a user rated in the same second come in the source file's order, which carries no
    time information; the model reads one order per pass. Pass 0 is the history as given, passes
    1.. put every run of same-timestamp items in a random order (seeded per user and pass, so the
    result does not depend on batching). The mean of user vectors is still one vector, so the
    score stays <user_vec, item_vec> (one dot product, one exported index).
    """

    def __init__(self, scorer, dataset: "Dataset", split: str, orders: int, seed: int = 0) -> None:
        self.scorer, self.dataset, self.split, self.orders, self.seed = scorer, dataset, split, int(orders), seed

    def __getattr__(self, name: str):
        return getattr(self.scorer, name)  # max_len, args, block_bounds, ...

    def item_vectors(self) -> "torch.Tensor":
        return self.scorer.item_vectors()

    def _variants(self, histories: "torch.Tensor", users: "torch.Tensor"):
        import torch

        yield histories
        width = histories.shape[1]
        rows = []
        for row, u in zip(histories.cpu().numpy(), users.cpu().numpy().tolist()):
            fed = self.dataset.history(int(u), self.split)  # type: ignore[arg-type]
            tail = row[row != 0]
            if len(tail) != min(len(fed), width) or not np.array_equal(tail, fed[len(fed) - len(tail) :]):
                raise EvaluationError(f"tie-order averaging: the history given for user {u} is not their {self.split} history")
            rows.append((int(u), fed, self.dataset.times(int(u))[: len(fed)]))
        for k in range(1, self.orders):
            shuffled = [shuffle_ties(fed, times, np.random.default_rng([self.seed, u, k])) for u, fed, times in rows]
            yield torch.from_numpy(pad_left(shuffled, width)).to(histories.device)

    def _stacked(self, histories: "torch.Tensor", users: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Every order of every row as one batch [orders x B, L] (order-major), with its user ids:
        one encoder call instead of ``orders`` (bigger matrix products, the item table built once)."""
        import torch

        return torch.cat(list(self._variants(histories, users)), dim=0), users.repeat(self.orders)

    def _mean(self, x: "torch.Tensor") -> "torch.Tensor":
        return x.reshape(self.orders, -1, *x.shape[1:]).mean(dim=0)

    def _by_rows(self, fn, histories: "torch.Tensor", users: "torch.Tensor"):
        """``fn`` over the stacked orders, at most ``STACKED_ROWS`` rows at a time (a 512-user export
        batch times 8 orders would hold 8x the attention memory of one order)."""
        import torch

        step = max(1, STACKED_ROWS // self.orders)
        parts = [fn(*self._stacked(histories[a : a + step], users[a : a + step])) for a in range(0, histories.shape[0], step)]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat([self._mean(p[i]) for p in parts]) for i in range(len(parts[0])))
        return torch.cat([self._mean(p) for p in parts])

    def user_vectors(self, histories: "torch.Tensor", users: "torch.Tensor") -> "torch.Tensor":
        return self._by_rows(self.scorer.user_vectors, histories, users)

    def gate_weights(self, histories: "torch.Tensor", users: "torch.Tensor"):
        """Gate weights averaged over the same orders (what ``recommend --explain`` shows)."""
        return self._by_rows(self.scorer.gate_weights, histories, users)

    def user_vectors_and_gates(self, histories: "torch.Tensor", users: "torch.Tensor"):
        """Both of the above from one encoder pass per order."""
        return self._by_rows(self.scorer.user_vectors_and_gates, histories, users)


def with_tie_orders(scorer, dataset: "Dataset", split: str, orders: int):
    """``scorer`` itself for one order, else its TieOrderAverage."""
    return scorer if orders <= 1 else TieOrderAverage(scorer, dataset, split, orders)


def history_mask(histories: np.ndarray, n_items: int) -> np.ndarray:
    """[B, n_items + 1] bool: True for padding column 0 and every item in the row's history."""
    mask = np.zeros((histories.shape[0], n_items + 1), dtype=bool)
    rows = np.repeat(np.arange(histories.shape[0]), histories.shape[1])
    mask[rows, histories.reshape(-1)] = True
    mask[:, 0] = True
    return mask


def ranks_from_vectors(
    user_vecs: "torch.Tensor",
    item_vecs: "torch.Tensor",
    targets: "torch.Tensor",
    histories: list[np.ndarray],
    *,
    item_chunk: int = 65536,
) -> "torch.Tensor":
    """Pessimistic 0-based rank of each target among items outside the row's history.

    rank = #{j != target, j not in history, j != 0 : score_j >= score_target}; NaN raises.
    """
    import torch

    device = user_vecs.device
    n_rows = user_vecs.shape[0]
    n_cols = item_vecs.shape[0]
    rows = torch.arange(n_rows, device=device)
    lengths = [len(h) for h in histories]
    width = max(1, max(lengths) if lengths else 1)
    hist = torch.from_numpy(pad_left(histories, width)).to(device)
    hist_rows = rows.unsqueeze(1).expand_as(hist)
    starts = list(range(1, n_cols, item_chunk))  # column 0 is padding, never a candidate

    def block(start: int) -> "torch.Tensor":
        scores = user_vecs @ item_vecs[start : start + item_chunk].T
        if torch.isnan(scores).any():
            raise EvaluationError("NaN score in the item scores: the model produced NaN, refusing to rank it")
        return scores

    # The target's score must come out of the same product as the scores it is compared with: a
    # separately computed dot product can differ in the last bit (another summation order), which
    # would miscount the target itself and give ranks of -1. Hence two passes over the chunks
    # (one when the catalog fits in a single chunk).
    blocks: dict[int, "torch.Tensor"] = {}
    target_scores = torch.empty(n_rows, 1, dtype=user_vecs.dtype, device=device)
    for start in starts:
        scores = block(start)
        inside = (targets >= start) & (targets < start + scores.shape[1])
        target_scores[inside, 0] = scores[rows[inside], targets[inside] - start]
        if len(starts) == 1:
            blocks[start] = scores

    counts = torch.zeros(n_rows, dtype=torch.long, device=device)
    for start in starts:
        scores = blocks.pop(start) if start in blocks else block(start)
        width_b = scores.shape[1]
        # Not candidates: the user's history items and the target itself.
        excluded = torch.zeros_like(scores, dtype=torch.bool)
        local = hist - start
        in_block = (hist != 0) & (local >= 0) & (local < width_b)
        excluded[hist_rows[in_block], local[in_block]] = True
        inside = (targets >= start) & (targets < start + width_b)
        excluded[rows[inside], targets[inside] - start] = True
        counts += ((scores >= target_scores) & ~excluded).sum(dim=1)
    return counts


def full_ranking_ranks(scorer: Scorer, dataset: "Dataset", split: Literal["valid", "test"], **options: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of the held-out items among all items not in the user's fed history nor in
    ``dataset.absent_items(split)`` (a cold-item variant's cold items while validating). ``options``
    are ``full_ranking_ranks_among``'s: ``max_len`` (required), ``users``, ``batch_size``,
    ``item_chunk``, ``device``, ``on_batch(n)`` (a progress hook after each batch of n users).

    Returns ``(users, targets, ranks)`` as int64 arrays. The mask uses the whole fed history, not
    only the ``max_len`` items the model reads.
    """
    users, targets, (ranks,) = full_ranking_ranks_among(scorer, dataset, split, [dataset.absent_items(split)], **options)
    return users, targets, ranks


def full_ranking_ranks_among(
    scorer: Scorer,
    dataset: "Dataset",
    split: Literal["valid", "test"],
    absent_sets: Sequence[np.ndarray | None],
    *,
    max_len: int,
    users: np.ndarray | None = None,
    batch_size: int = 64,
    item_chunk: int = 65536,
    device: "torch.device | str" = "cpu",
    on_batch: "Callable[[int], None] | None" = None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``full_ranking_ranks`` once per candidate set from one pass of user vectors: the ranks
    ``[i]`` leave out ``absent_sets[i]`` (None: no item) besides the fed history. The user vectors
    (every tie order) are computed once, whatever the number of sets (the cold cases and the
    new-items shelf differ in their candidates only)."""
    import torch

    users = dataset.eval_users() if users is None else np.asarray(users, dtype=np.int64)
    targets = dataset.targets(users, split)
    ranks = [np.empty(len(users), dtype=np.int64) for _ in absent_sets]
    fed_all = [dataset.history(int(u), split) for u in users]
    # Users of similar history length share a batch, padded only to its longest row (at most
    # max_len): positions count from the newest item, so the states are those of full padding,
    # and attention cost falls with the square of the width (ML-100K: median 65 of 200).
    order = np.argsort([len(h) for h in fed_all], kind="stable")
    with torch.inference_mode():
        items = scorer.item_vectors().to(device).float()
        for start in range(0, len(users), batch_size):
            idx = order[start : start + batch_size]
            fed = [fed_all[i] for i in idx]
            width = max(1, min(max_len, max(len(h) for h in fed)))
            seqs = torch.from_numpy(pad_left(fed, width)).to(device)
            vecs = scorer.user_vectors(seqs, torch.from_numpy(users[idx]).to(device)).float()
            tgt = torch.from_numpy(targets[idx]).to(device)
            for out, absent in zip(ranks, absent_sets):
                masked = fed if absent is None else [np.concatenate([h, absent]) for h in fed]
                out[idx] = ranks_from_vectors(vecs, items, tgt, masked, item_chunk=item_chunk).cpu().numpy()
            if on_batch is not None:
                on_batch(len(idx))
    return users, targets, ranks


def rank_of_targets(
    scores: "torch.Tensor", targets: "torch.Tensor", exclude: "torch.Tensor | None" = None
) -> "torch.Tensor":
    """0-based pessimistic rank of each row's target among the non-excluded columns.

    scores [B, C] float, targets [B] long (column index), exclude [B, C] bool (True = not a
    candidate, e.g. history items and padding). The target column is never excluded.
    """
    import torch

    if torch.isnan(scores).any():
        bad = int(torch.isnan(scores).any(dim=1).nonzero()[0, 0])
        raise EvaluationError(f"NaN score in row {bad} of a batch: the model produced NaN, refusing to rank it")
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_scores = scores[rows, targets].unsqueeze(1)
    beats = scores >= target_scores
    if exclude is not None:
        beats &= ~exclude
    beats[rows, targets] = False
    return beats.sum(dim=1)


def metrics_from_ranks(ranks: Iterable[int] | np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """HR@k, NDCG@k for each k, and MRR, averaged over users (keys like ``"HR@10"``)."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        raise EvaluationError("no users to evaluate")
    out: dict[str, float] = {}
    for k in sorted(set(int(k) for k in ks)):
        hit = r < k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float((hit / np.log2(r + 2.0)).mean())
    out["MRR"] = float((1.0 / (r + 1.0)).mean())
    return out


def per_user_ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k of each user (for paired bootstrap comparisons)."""
    r = np.asarray(ranks, dtype=np.float64)
    return (r < k) / np.log2(r + 2.0)
