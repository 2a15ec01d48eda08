"""Ranking the cold test cases of a cold-item variant (``data --cold-items``; ``data/cold.py``).

Each case is ranked exactly as a warm test user is: its fed history (the user's earlier warm
items) through the scorer, averaged over the same tie orders, full ranking over every item not in
that history, pessimistic ties. Only the history and the target differ; the user's preference
text is the user's own (written from warm items only). ``evaluate`` prints these figures beside
the warm ones, and the benchmark pairs them case by case.

The new-items shelf ranks the same cases with the candidates cut to the cold items (every warm item
left out), as `recommend --new` serves them: a second cold protocol, ranked from the same pass of
user vectors (``ranking.full_ranking_ranks_among``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.evaluation.ranked import Ranked


def rank_cold_cases(
    raw_scorer: Any, dataset: "Dataset", *, tie_orders: int, max_len: int, batch_size: int = 64, device: Any = "cpu"
) -> tuple["Ranked", "Ranked"]:
    """Ranks of every cold case's target (``raw_scorer``: the model or baseline without tie-order
    averaging): (among every item, on the new-items shelf among the cold items only). One pass of
    user vectors serves both: the cases, histories and tie orders are the same, only the candidates
    differ. Both carry that pass's seconds."""
    from ur4rec_cli.console import make_progress
    from ur4rec_cli.data.cold import ColdView, OwnerScorer
    from ur4rec_cli.evaluation.protocols import full_candidates
    from ur4rec_cli.evaluation.ranked import Ranked
    from ur4rec_cli.ranking import full_ranking_ranks_among, with_tie_orders

    view, shelf = ColdView(dataset), ColdView(dataset, shelf=True)
    scorer = with_tie_orders(OwnerScorer(raw_scorer, view.owners), view, "test", tie_orders)
    started = time.perf_counter()
    with make_progress() as progress:  # off a terminal: a line every 30 s
        task = progress.add_task("ranking cold cases (every item, and the new-items shelf)", total=len(view.eval_users()))
        cases, targets, (ranks, shelf_ranks) = full_ranking_ranks_among(
            scorer, view, "test", [view.absent_items("test"), shelf.absent_items("test")], max_len=max_len, batch_size=batch_size,  # type: ignore[arg-type]
            device=device, on_batch=lambda n: progress.advance(task, n),
        )  # fmt: skip
    seconds = time.perf_counter() - started
    return (
        Ranked(cases, targets, ranks, full_candidates(view, cases, "test"), seconds),  # type: ignore[arg-type]
        Ranked(cases, targets, shelf_ranks, full_candidates(shelf, cases, "test"), seconds),  # type: ignore[arg-type]
    )


def describe_cold(dataset: "Dataset", ranked: "Ranked", tie_orders: int, shelf: bool = False) -> str:
    """The protocol line of the cold figures (``shelf``: of the new-items shelf)."""
    c = dataset.cold
    orders = f"; user vector = mean over {tie_orders} orders of same-second history items" if tie_orders > 1 else ""
    where = "the cold items only (the new-items shelf)" if shelf else "all items not in the history"
    return (
        f"cold items: {len(c.items):,} items ({c.share:g} of the interacted ones, seed {c.seed}) absent from training and "
        f"validation; {len(ranked.targets):,} cases, one per interaction with a cold item, history = the user's earlier warm "
        f"items; candidates: {where} (~{int(np.median(ranked.candidates)):,}); pessimistic ties{orders}"
    )


def cold_block(dataset: "Dataset", ranked: "Ranked", ks: list[int], tie_orders: int, shelf: bool = False) -> dict[str, Any]:
    """What ``evaluate --json`` carries under ``cold`` (``shelf``: under ``shelf``)."""
    return {
        "cases": int(len(ranked.targets)),
        "items": int(len(dataset.cold.items)),
        "metrics": ranked.metrics(ks),
        "description": describe_cold(dataset, ranked, tie_orders, shelf),
        "seconds": ranked.seconds,
    }
