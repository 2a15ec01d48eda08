"""The late-fusion baseline: a trained stage-1 SASRec's score plus ``w`` times content-KNN's cosine.

score(u, i) = <sasrec_user(u), sasrec_item(i)> + w · <knn_user(u), item_text(i)>, one dot product of
the two concatenated vectors (DESIGN.md, "Any catalogue"): what the simplest use of the item texts
adds to the ID model, learning nothing but ``w`` (``eval.fusion_weight``), which is to be chosen on
validation with a model not trained on the validation items (benchmarks/scientific.py does). A
base UR4Rec V2's own content-KNN block (``model.knn_weight``) is turned off by ``evaluation/run.py``
before it is fused, so the cosine is added once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.evaluation.content_knn import ContentKNNScorer


class LateFusionScorer:
    """A scorer whose vectors are [SASRec's, w · content-KNN's] for users and [SASRec's, item text] for items."""

    def __init__(self, sasrec: Any, knn: "ContentKNNScorer", weight: float) -> None:
        self.sasrec, self.knn, self.weight = sasrec, knn, float(weight)
        self.max_len = int(sasrec.max_len)

    def user_vectors(self, histories: "torch.Tensor", users: "torch.Tensor") -> "torch.Tensor":
        import torch

        seq = self.sasrec.user_vectors(histories, users).float()
        return torch.cat([seq, self.weight * self.knn.user_vectors(histories, users).to(seq.device).float()], dim=1)

    def item_vectors(self) -> "torch.Tensor":
        import torch

        seq = self.sasrec.item_vectors().float()
        return torch.cat([seq, self.knn.item_vectors().to(seq.device).float()], dim=1)
