"""Stage 1 with content-aware item tokens (``model.content_stage1``, off by default).

Plain stage 1 trains SASRec on item-ID embeddings alone; the content adaptor
(``models/moe.py::ItemAdaptor``) joins from stage 3. With ``content_stage1`` the stage-1 scorer
reads the UR4RecV2's own item table instead, ID embedding plus the adaptor's offset from the
item's text (and image), as input tokens and as output item vectors, and the adaptor trains with
SASRec from the first step: UniSRec's transductive setting (ID + text adaptor, Hou et al., KDD
2022) and what MoRec found pays on sparse catalogues, where most items have a handful of
interactions to learn an ID embedding from. The stage-1 checkpoint is the whole UR4RecV2; this
view is what trains, validates and scores it. Stage 2's frozen anchor then keeps the table this
stage learned (``UR4RecV2.set_anchor``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ContentSASRec(nn.Module):
    """SASRec over a UR4RecV2's content-aware item table: user vector = last state, item vector = its token."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    @property
    def max_len(self) -> int:
        return self.model.max_len

    def user_vectors(self, histories: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L] left-padded histories -> [B, H] user states read with the content-aware tokens."""
        return self.model.sasrec.encoder(histories, last_only=True, table=self.model.item_table())[:, -1]

    def item_vectors(self) -> torch.Tensor:
        """[n_items + 1, H]; row 0 (padding) is zero."""
        return self.model.item_table()

    def sequence_loss_inputs(
        self, seqs: torch.Tensor, users: torch.Tensor, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """User vectors at the ``positions`` [B, L] (default: every non-pad one), the item table and a zero aux loss."""
        table = self.model.item_table()
        h = self.model.sasrec.encoder(seqs, table=table)
        keep = seqs != 0 if positions is None else positions
        return h[keep], table, h.new_zeros(())


def stage1_scorer(model: Any) -> Any:
    """What stage 1 trains and scores: the plain SASRec, or with ``content_stage1`` the content-aware view."""
    if getattr(model.args, "content_stage1", False) and getattr(model, "item_adaptor", None) is not None:
        return ContentSASRec(model).train(model.training)  # the wrapper's mode is the model's (eval when loaded)
    return model.sasrec
