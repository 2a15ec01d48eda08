"""UR4Rec V2: SASRec fused with a hierarchical MoE retriever; score(u, i) = <user_vec(u), item_vec(i)>.

user_vec = [a * h_t, g_m * w_mj * q_mj for each modality m and sub-expert j]
item_vec = [E_i,      k_mj(i)                                          ]
so the score is a * <h_t, E_i> (SASRec) + sum_mj g_m w_mj <q_mj, k_mj(i)> (retriever).

With ``anchor`` b > 0 (``model.sasrec_anchor``) the model also carries a frozen copy of its
stage-1 SASRec (copied when stage 2 starts, never trained after) and both vectors gain one more
block, [b * h1_t] and [A_i]: the score adds b * <h1_t, A_i>, the ID-only model's own score. It is
added where the model scores (validation, evaluate, the export, recommend, items add), not in the
training loss of stages 2-4, whose objective is unchanged. An item the anchor never trained on (an
unknown or added item) gets the mean of the known items' A_i (the anchor's average score), or with
``model.cold_neighbours`` its content neighbours' A_i (below).
The anchor is built in every stage (unused in stage 1), drawing from torch's generator: a seed
trains along other random draws with b > 0 than with b = 0. With ``content_stage1`` (stage 1 read
ID + adaptor tokens, content_sasrec.py) the anchor keeps that table, ``anchor_table``.

An item the model never trained on (``known`` False: no training interaction, e.g. a cold item
of ``data --cold-items``) has no ID embedding worth reading: its E_i is ``unknown_id``, one learned
token shared by every such item (zero until ID dropout trains it), so its vector is content alone
(that shared token plus the item adaptor's offset from its text and image, and the retriever keys);
with ``model.cold_neighbours`` k > 0 (set at scoring time by ``set_cold_neighbours``) its ID-side
blocks (token and anchor row) are borrowed from its k nearest known items by item text
(``cold_neighbours.py``), the retriever keys staying its own. ID dropout (``id_dropout``, stages
2-4) scores a random share of the known items that way at every training step (output vectors
only; inputs keep their IDs), so that content alone learns to place an item where its ID would.

With ``content_knn`` w > 0 (``set_content_knn``, ``model.knn_weight``; scoring only, like the anchor)
both vectors end in [w * knn_user(u)] and [item_text_i]: the score adds w times content-KNN's cosine
(``knn_block.py``), every item (known, unknown or added) reading its own text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ur4rec_cli.models.cold_neighbours import Neighbours, default_known, has_text, neighbour_mean
from ur4rec_cli.models.knn_block import knn_users
from ur4rec_cli.models.moe import HierarchicalMoE, ItemAdaptor, KeyTower, feature_scale
from ur4rec_cli.models.sasrec import SASRec, init_weights

MODALITIES = ("user_text", "item_text", "image")


@dataclass
class ModelArgs:
    """Everything needed to rebuild the model exactly (stored in every checkpoint)."""

    n_items: int
    n_users: int
    max_len: int = 200
    hidden: int = 64
    layers: int = 2
    heads: int = 1
    dropout: float = 0.2
    init_std: float = 0.02
    expert_dim: int = 64
    sub_experts: int = 3
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    text_dim: int = 384
    image_dim: int = 512
    item_adaptor: bool = False
    padding_sink: bool = False
    anchor: float = 0.0
    content_stage1: bool = False  # stage 1 trains on content-aware item tokens (content_sasrec.py)


class UR4RecV2(nn.Module):
    """SASRec + hierarchical MoE over user-text, item-text and image modalities."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        h, e, s = args.hidden, args.expert_dim, args.sub_experts
        self.sasrec = SASRec(args.n_items, args.max_len, h, args.layers, args.heads, args.dropout, args.init_std, args.padding_sink)
        # Feature matrices are buffers so a checkpoint is self-contained; absent ones stay zero.
        self.register_buffer("item_text", torch.zeros(args.n_items + 1, args.text_dim))
        self.register_buffer("user_text", torch.zeros(args.n_users + 1, args.text_dim))
        self.register_buffer("image", torch.zeros(args.n_items + 1, args.image_dim))
        self.register_buffer("present", torch.tensor([m in args.modalities for m in MODALITIES]))
        # Items with a training interaction (set by training; checkpoints older than it: all known).
        self.register_buffer("known", torch.ones(args.n_items + 1, dtype=torch.bool))
        self._register_load_state_dict_pre_hook(default_known, with_module=True)
        self.id_dropout = 0.0  # share of known items read as unknown at each training step (stages 2-4)
        self.neighbours: Neighbours | None = None  # unknown items from their content neighbours (scoring only)
        self.content_knn = 0.0  # weight of the content-KNN block (scoring only)
        self.user_proj = nn.Linear(args.text_dim, h)
        # Queries: user_text sees [h_t ; user text], the item-side modalities see h_t.
        self.moe = HierarchicalMoE([2 * h, h, h], gate_dim=2 * h, sub_experts=s, expert_dim=e, dropout=args.dropout)
        # Keys from item features. user_text matches the user-preference text against the item
        # description (both MiniLM space); keys from free item-id embeddings let the per-user
        # text memorise each user's train items instead (measured: validation NDCG fell).
        self.user_keys = KeyTower(args.text_dim, e, s, e, args.dropout)
        self.text_keys = KeyTower(args.text_dim, e, s, e, args.dropout)
        self.image_keys = KeyTower(args.image_dim, e, s, e, args.dropout)
        self.sasrec_weight = nn.Parameter(torch.ones(()))
        # The ID token of an item without one (unknown, or ID-dropped in training): one learned
        # vector shared by all such items, zero until ID dropout trains it.
        self.unknown_id = nn.Parameter(torch.zeros(h))
        # Content-aware item tokens (item text and image), trained from stage 2 on.
        self.item_adaptor = ItemAdaptor([args.text_dim, args.image_dim], s, h, args.dropout) if args.item_adaptor else None
        init_weights(self, args.init_std)
        # The frozen stage-1 SASRec (set by ``set_anchor`` when stage 2 starts; never trained).
        self.anchor: SASRec | None = None
        if args.anchor > 0:
            self.anchor = SASRec(args.n_items, args.max_len, h, args.layers, args.heads, args.dropout, args.init_std, args.padding_sink)
            self.anchor.requires_grad_(False)
            if args.content_stage1:  # the stage-1 model read ID + adaptor tokens: the anchor keeps that table
                self.register_buffer("anchor_table", torch.zeros(args.n_items + 1, h))
        for part in (self.moe, self.user_keys.heads, self.text_keys.heads, self.image_keys.heads, self.item_adaptor):
            if part is not None:
                part.reset(args.init_std)

    def train(self, mode: bool = True) -> "UR4RecV2":
        super().train(mode)
        if self.anchor is not None:
            self.anchor.eval()  # frozen: no dropout, whatever the rest of the model does
        return self

    def set_anchor(self) -> None:
        """Copy the current SASRec into the frozen anchor (stage 2's start: the stage-1 model)."""
        if self.anchor is not None:
            self.anchor.load_state_dict(self.sasrec.state_dict())
            if hasattr(self, "anchor_table"):  # the table stage 1 read, without dropout
                was = self.training
                with torch.no_grad():
                    self.anchor_table.copy_(self.eval().item_table())
                self.train(was)

    def _anchor_user(self, histories: torch.Tensor) -> torch.Tensor:  # the anchor's user_vectors, read with its own table
        return self.anchor.encoder(histories, last_only=True, table=getattr(self, "anchor_table", None))[:, -1]  # type: ignore[union-attr]

    def set_cold_neighbours(self, k: int, temperature: float = 0.03, scale: float = 1.0) -> None:
        """Score unknown items from their k nearest known items by item text (k 0: off; cold_neighbours.py)."""
        self.neighbours = Neighbours(int(k), float(temperature), float(scale)) if k > 0 else None

    def set_content_knn(self, weight: float) -> None:
        """Score with ``weight`` x content-KNN's cosine added (0: off; without item texts it stays off)."""
        self.content_knn = float(weight) if has_text(self.item_text) else 0.0

    # Features --------------------------------------------------------------------------------
    def set_features(self, item_text: torch.Tensor | None = None, user_text: torch.Tensor | None = None, image: torch.Tensor | None = None) -> None:
        """Copy feature matrices into the buffers (rows: 0 = padding, then internal ids)."""
        for name, value in (("item_text", item_text), ("user_text", user_text), ("image", image)):
            if value is not None:
                buf = getattr(self, name)
                if tuple(value.shape) != tuple(buf.shape):
                    raise ValueError(f"{name} features have shape {tuple(value.shape)}, expected {tuple(buf.shape)}")
                buf.copy_(value.to(buf.dtype))

    @staticmethod
    def _prep(features: torch.Tensor) -> torch.Tensor:
        # MiniLM/CLIP vectors share a large common direction; centring across rows removes it.
        rows = features[1:]
        return (features - rows.mean(0, keepdim=True)) * feature_scale(features.shape[1])

    @property
    def max_len(self) -> int:
        return self.args.max_len

    @property
    def modality_names(self) -> list[str]:
        return list(MODALITIES)

    # Item tokens -----------------------------------------------------------------------------
    def set_known(self, known: torch.Tensor) -> None:
        """Which items have a training interaction ([n_items + 1] bool; row 0, padding, counts as known)."""
        self.known.copy_(known.to(torch.bool))
        self.known[0] = True

    def _reads_ids_only(self) -> bool:
        """True when every item token is its plain ID embedding (the SASRec encoder's own table serves)."""
        return self.item_adaptor is None and not (self.training and self.id_dropout > 0) and bool(self.known.all())

    def item_table(self) -> torch.Tensor:
        """[n_items + 1, H]: the ID embedding (``unknown_id`` for unknown items), plus the content adaptor's offset when there is one."""
        emb = self.sasrec.item_vectors()
        if not bool(self.known.all()):
            unknown = (~self.known)[:, None].to(emb.dtype)
            emb = emb * (1 - unknown) + self.unknown_id * unknown
        if self.item_adaptor is None:
            return emb
        offset = self.item_adaptor(
            [
                self._prep(self.item_text) if bool(self.present[1]) else None,
                self._prep(self.image) if bool(self.present[2]) else None,
            ]
        )
        if offset is None:
            return emb
        return emb + offset * (torch.arange(emb.shape[0], device=emb.device) != 0)[:, None]

    def _states(self, histories: torch.Tensor) -> torch.Tensor:
        """[B, L] histories -> [B, H] newest states, read with the content-aware item tokens."""
        if self._reads_ids_only():
            return self.sasrec.user_vectors(histories)
        return self.sasrec.encoder(histories, last_only=True, table=self.item_table())[:, -1]

    # Scoring ---------------------------------------------------------------------------------
    def _fuse(self, h: torch.Tensor, users: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence states [N, H] of users [N] -> (user vectors [N, D], aux loss)."""
        ctx, inputs = self._inputs(h, users)
        out, aux = self.moe(inputs, ctx, self.present)
        return torch.cat([self.sasrec_weight * h, out.flatten(1)], dim=1), aux

    def _inputs(self, h: torch.Tensor, users: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        # users None: someone outside the data set (recommend --history), who has no preference text.
        if bool(self.present[0]) and users is not None:
            u = self.user_proj(self._prep(self.user_text)[users])
        else:
            u = torch.zeros_like(h)
        ctx = torch.cat([h, u], dim=1)
        return ctx, [ctx, h, h]

    def user_vectors(self, histories: torch.Tensor, users: torch.Tensor | None) -> torch.Tensor:
        """[B, L] left-padded histories and user ids [B] -> [B, D] (users None: no user text, as for a new user)."""
        return self._with_anchor_user(self._fuse(self._states(histories), users)[0], histories)

    def _with_anchor_user(self, vecs: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """The trained model's user vectors with the scoring-time blocks: the anchor's, then content-KNN's."""
        if self.anchor is not None:
            vecs = torch.cat([vecs, self.args.anchor * self._anchor_user(histories).to(vecs.dtype)], dim=1)
        if self.content_knn > 0:
            vecs = torch.cat([vecs, self.content_knn * knn_users(self.item_text, histories).to(vecs.dtype)], dim=1)
        return vecs

    def _anchor_items(self, n_new: int | None = None) -> torch.Tensor:
        """The anchor's item block: [n_items + 1, H] (unknown items: the known items' mean), or [n_new, H] of that mean."""
        table = self.anchor_table if hasattr(self, "anchor_table") else self.anchor.item_vectors()  # type: ignore[union-attr]
        known = self._known_rows()
        mean = table[known].mean(0) if bool(known.any()) else table.new_zeros(table.shape[1])
        if n_new is not None:
            return mean.expand(n_new, -1)
        out = torch.where(self.known[:, None], table, mean)
        out[0] = 0
        return out

    def item_vectors(self) -> torch.Tensor:
        """[n_items + 1, D]; row 0 (padding) is zero."""
        vecs = self._catalogue_vectors()
        unknown = (~self.known).nonzero().squeeze(1)
        if self._borrows() and len(unknown):
            vecs[unknown] = self._borrowed(self.item_text[unknown], vecs[unknown], vecs)
        return vecs

    def _catalogue_vectors(self) -> torch.Tensor:
        """The catalogue's vectors with the scoring-time blocks, before unknown items borrow anything."""
        vecs = self._item_vectors()
        if self.anchor is not None:
            vecs = torch.cat([vecs, self._anchor_items().to(vecs.dtype)], dim=1)
        return self._with_knn_items(vecs, torch.cat([torch.zeros_like(self.item_text[:1]), self.item_text[1:]]))  # padding's row stays zero

    def _with_knn_items(self, vecs: torch.Tensor, item_text: torch.Tensor) -> torch.Tensor:  # content-KNN's item block, when on
        return torch.cat([vecs, item_text.to(vecs.dtype)], dim=1) if self.content_knn > 0 else vecs

    def _borrows(self) -> bool:
        return self.neighbours is not None and has_text(self.item_text) and bool(self._known_rows().any())

    def _borrowed(self, item_text: torch.Tensor, vecs: torch.Tensor, catalogue: torch.Tensor) -> torch.Tensor:
        """``vecs`` [M, D] of items with raw item texts [M, d], their ID-side blocks borrowed from the
        nearest known items of ``catalogue`` (``_catalogue_vectors``; cold_neighbours.py)."""
        cols, rows = self._id_columns(), self._known_rows()
        out = vecs.clone()
        out[:, cols] = neighbour_mean(item_text.to(self.item_text.dtype), self.item_text[rows], catalogue[rows][:, cols], self.neighbours)  # type: ignore[arg-type]
        return out

    def _known_rows(self) -> torch.Tensor:
        rows = self.known.clone()
        rows[0] = False
        return rows

    def _id_columns(self) -> torch.Tensor:
        """[D] bool: the ID-side blocks (item token and, with the anchor, its row) that unknown items borrow."""
        bounds = self.block_bounds()
        cols = torch.zeros(bounds[-1][2], dtype=torch.bool, device=self.known.device)
        for name, start, end in bounds:
            cols[start:end] = name in ("sasrec", "anchor")
        return cols

    def _item_vectors(self, table: torch.Tensor | None = None) -> torch.Tensor:
        """The trained model's item vectors (without the anchor's block): what the training loss reads."""
        emb = self.item_table() if table is None else table
        item_text = self._prep(self.item_text) if bool(self.present[0] | self.present[1]) else None
        image = self._prep(self.image) if bool(self.present[2]) else None
        vecs = self._vectors_from(emb, item_text, image)
        return vecs * (torch.arange(emb.shape[0], device=vecs.device) != 0)[:, None]

    def _vectors_from(self, emb: torch.Tensor, item_text: torch.Tensor | None, image: torch.Tensor | None) -> torch.Tensor:
        """[n, D] item vectors from item tokens [n, H] and prepared features: [token, retriever keys]."""
        n = emb.shape[0]
        s, e = self.args.sub_experts, self.args.expert_dim
        zeros = emb.new_zeros(n, s, e)
        keys = [
            self.user_keys(item_text) if bool(self.present[0]) else zeros,
            self.text_keys(item_text) if bool(self.present[1]) else zeros,
            self.image_keys(image) if bool(self.present[2]) else zeros,
        ]
        return torch.cat([emb, torch.stack(keys, dim=1).flatten(1)], dim=1)

    def new_item_vectors(self, item_text: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors [M, D] of items outside the catalogue (`items add`) from their features [M, d]:
        content alone, exactly as an unknown item of the catalogue is scored (features centred by
        the catalogue's mean, so the catalogue's own vectors do not move)."""
        scale = feature_scale
        text = (item_text.to(self.item_text.dtype) - self.item_text[1:].mean(0)) * scale(self.item_text.shape[1])
        img = None
        if bool(self.present[2]):
            if image is None:
                raise ValueError("the model reads images: new items need their image features")
            img = (image.to(self.image.dtype) - self.image[1:].mean(0)) * scale(self.image.shape[1])
        emb = self.unknown_id.to(text.dtype).expand(text.shape[0], -1)
        if self.item_adaptor is not None:
            offset = self.item_adaptor([text if bool(self.present[1]) else None, img])
            if offset is not None:
                emb = emb + offset
        vecs = self._vectors_from(emb, text if bool(self.present[0] | self.present[1]) else None, img)
        if self.anchor is not None:
            vecs = torch.cat([vecs, self._anchor_items(vecs.shape[0]).to(vecs.dtype)], dim=1)
        vecs = self._with_knn_items(vecs, item_text)
        if self._borrows():
            vecs = self._borrowed(item_text, vecs, self._catalogue_vectors())
        return vecs

    def gate_weights(self, histories: torch.Tensor, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(modality weights [B, M], sub-expert weights [B, M, S]) for ``recommend --explain``."""
        ctx, _ = self._inputs(self._states(histories), users)
        return self.moe.gates(ctx, self.present)

    def user_vectors_and_gates(self, histories: torch.Tensor, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``user_vectors`` and ``gate_weights`` from one encoder pass (what the export writes)."""
        h = self._states(histories)
        ctx, _ = self._inputs(h, users)
        g, w = self.moe.gates(ctx, self.present)
        return self._with_anchor_user(self._fuse(h, users)[0], histories), g, w

    def block_bounds(self) -> list[tuple[str, int, int]]:
        """How D splits: the SASRec block, one block per modality, then the anchor's and content-KNN's when on."""
        h, width = self.args.hidden, self.args.sub_experts * self.args.expert_dim
        out = [("sasrec", 0, h)] + [(name, h + m * width, h + (m + 1) * width) for m, name in enumerate(MODALITIES)]
        if self.anchor is not None:
            out.append(("anchor", out[-1][2], out[-1][2] + h))
        if self.content_knn > 0:
            out.append(("content_knn", out[-1][2], out[-1][2] + self.item_text.shape[1]))
        return out

    def sequence_loss_inputs(
        self, seqs: torch.Tensor, users: torch.Tensor, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """User vectors at the ``positions`` [B, L] (default: every non-pad one) [N, D], the item matrix, the MoE aux loss."""
        table = None if self._reads_ids_only() else self.item_table()
        h = self.sasrec.encoder(seqs, table=table)
        keep = seqs != 0 if positions is None else positions
        return self.loss_inputs_from_states(h[keep], users[:, None].expand_as(seqs)[keep], table)

    def sequence_states(self, seqs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The sequence model's states [N, H] at ``positions``: what a frozen-SASRec stage caches (training/state_cache.py)."""
        table = None if self._reads_ids_only() else self.item_table()
        return self.sasrec.encoder(seqs, table=table)[positions]

    def loss_inputs_from_states(
        self, h: torch.Tensor, users: torch.Tensor, table: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(user vectors [N, D], item matrix, aux loss) from sequence states [N, H] of users [N]."""
        if table is None and not self._reads_ids_only():
            table = self.item_table()
        vecs, aux = self._fuse(h, users)
        return vecs, self._item_vectors(self._drop_ids(table)), aux

    def _drop_ids(self, table: torch.Tensor | None) -> torch.Tensor | None:
        """ID dropout on the output side (training only): a random ``id_dropout`` share of the known
        items is scored as an unknown item is, by its content alone. Input tokens keep their IDs
        (a history holds known items only; `items add` items never enter one)."""
        if table is None or not (self.training and self.id_dropout > 0):
            return table
        drop = (torch.rand(table.shape[0], device=table.device) < self.id_dropout) & self.known
        drop[0] = False
        return table + (self.unknown_id - self.sasrec.item_vectors()) * drop[:, None].to(table.dtype)

    def score(self, histories: torch.Tensor, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Direct score of items [B, K], written as the fusion formula (not as one dot product)."""
        h = self._states(histories)
        ctx, inputs = self._inputs(h, users)
        g, w = self.moe.gates(ctx, self.present)
        b, s, e = h.shape[0], self.args.sub_experts, self.args.expert_dim
        q = torch.stack([bank(x) if bool(self.present[m]) else h.new_zeros(b, s, e) for m, (bank, x) in enumerate(zip(self.moe.experts, inputs))], 1)
        item = self.item_vectors()[items]  # [B, K, D]
        keys = item[..., self.args.hidden : self.args.hidden + len(MODALITIES) * s * e].reshape(b, items.shape[1], len(MODALITIES), s, e)
        sasrec = self.sasrec_weight * torch.einsum("bh,bkh->bk", h, item[..., : self.args.hidden])
        out = sasrec + torch.einsum("bm,bms,bmse,bkmse->bk", g, w, q, keys)
        for name, a, z in self.block_bounds():  # the scoring-time blocks, each its weight x <user part, item part>
            if name == "anchor":
                out = out + self.args.anchor * torch.einsum("bh,bkh->bk", self._anchor_user(histories), item[..., a:z])
            elif name == "content_knn":
                out = out + self.content_knn * torch.einsum("bd,bkd->bk", knn_users(self.item_text, histories).to(item.dtype), item[..., a:z])
        return out

