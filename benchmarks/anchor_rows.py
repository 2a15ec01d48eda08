"""Rows of benchmarks/attribution.py that no `ur4rec evaluate` call gives, ranked in process with the
same code (`ranking.full_ranking_ranks`: test split, full ranking, pessimistic ties, tie orders):

- the final model without its frozen stage-1 SASRec (``model.sasrec_anchor``): stages 2-4's own
  score, i.e. what the final model was before the anchor;
- two ID-only SASRecs, the stage-1 models of two seeds mixed as the anchor mixes
  (score_a + w * score_b): how much mixing two ID models gives with no content at all, the control
  a reviewer asks for before crediting the anchored model's gain to content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

S1_STAGE, FINAL_STAGE = "pretrain_sasrec", "end_to_end"


def _load(home: Path, dataset: str, run: str, stage: str):
    from ur4rec_cli.runs import model_from_checkpoint
    from ur4rec_cli.runs import read_checkpoint

    return model_from_checkpoint(read_checkpoint(home / "runs" / dataset / run / stage / "best.pt"), stage)


def _ranks(scorer: Any, data: Any, max_len: int, orders: int) -> dict[str, dict[str, Any]]:
    """{user: {"target", "rank"}} as attribution.evaluate reads `evaluate --output`."""
    import torch

    from ur4rec_cli.ranking import full_ranking_ranks, with_tie_orders
    from ur4rec_cli.serving.index import display_id

    with torch.no_grad():
        users, targets, ranks = full_ranking_ranks(with_tie_orders(scorer, data, "test", orders), data, "test", max_len=max_len, batch_size=256)
    return {
        str(display_id(data.user_ids[u - 1])): {"target": str(display_id(data.item_ids[t - 1])), "rank": int(r)}
        for u, t, r in zip(users.tolist(), targets.tolist(), ranks.tolist())
    }


def anchor_weight(home: Path, dataset: str, run: str) -> float:
    """The run's final model's ``model.sasrec_anchor`` (0: it has no anchor)."""
    from ur4rec_cli.runs import read_checkpoint

    return float(read_checkpoint(home / "runs" / dataset / run / FINAL_STAGE / "best.pt")["model_args"].get("anchor", 0.0))


def without_anchor(home: Path, data: Any, dataset: str, run: str, orders: int) -> dict[str, dict[str, Any]]:
    """The run's final model scored without its anchor block."""
    model = _load(home, dataset, run, FINAL_STAGE)
    model.anchor = None
    return _ranks(model, data, model.max_len, orders)


class _TwoModels:
    """score = <a's user, a's item> + w * <b's user, b's item>, as one dot product."""

    def __init__(self, a: Any, b: Any, weight: float) -> None:
        self.a, self.b, self.weight = a, b, weight

    def user_vectors(self, histories, users):
        import torch

        return torch.cat([self.a.user_vectors(histories), self.weight * self.b.user_vectors(histories)], dim=1)

    def item_vectors(self):
        import torch

        return torch.cat([self.a.item_vectors(), self.b.item_vectors()], dim=1)


def two_sasrecs(home: Path, data: Any, dataset: str, run_a: str, run_b: str, weight: float, orders: int) -> dict[str, dict[str, Any]]:
    """Stage 1 of ``run_a`` plus ``weight`` times stage 1 of ``run_b`` (another seed)."""
    a, b = _load(home, dataset, run_a, S1_STAGE), _load(home, dataset, run_b, S1_STAGE)
    return _ranks(_TwoModels(a, b, weight), data, a.max_len, orders)
