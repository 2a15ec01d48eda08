#!/usr/bin/env python
"""An independent plain SASRec on ur4rec's split: a cross-check of the library's own model.

    python benchmarks/reference_sasrec.py [--home DIR] [--seed 0] [--epochs 100]

Written apart from the library: torch's nn.MultiheadAttention, Adam at a constant rate, randomly
mixed batches of 128 rows padded to 200, and its own full-ranking evaluation (history masked,
pessimistic ties). Only the split is read from `ur4rec data`'s artifact (checked below to be
train = seq[:-2], valid = seq[-2], test = seq[-1]). Kang & McAuley's blocks with full softmax
cross-entropy, max len 200, 2 blocks x 64, dropout 0.2, std-0.02 init. Prints validation and
test HR@10 / NDCG@10 every 5 epochs, then the test figures at the best validation epoch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ur4rec_cli.data.dataset import Dataset
from ur4rec_cli.settings import default_home

MAX_LEN, HIDDEN, DROPOUT, BATCH = 200, 64, 0.2, 128


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(HIDDEN, eps=1e-8)
        self.att = nn.MultiheadAttention(HIDDEN, 1, dropout=DROPOUT, batch_first=True)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=1e-8)
        self.ff1, self.ff2 = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor, causal: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        q = self.ln1(x)
        att, _ = self.att(q, x, x, attn_mask=causal, need_weights=False)
        x = self.ln2(q + att)
        x = x + self.drop(self.ff2(self.drop(F.relu(self.ff1(x)))))
        return x * keep


class Net(nn.Module):
    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, HIDDEN, padding_idx=0)
        self.pos = nn.Embedding(MAX_LEN + 1, HIDDEN, padding_idx=0)
        self.drop = nn.Dropout(DROPOUT)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.ln = nn.LayerNorm(HIDDEN, eps=1e-8)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.items.weight[0].zero_()
            self.pos.weight[0].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, MAX_LEN] left-padded -> hidden states [B, MAX_LEN, HIDDEN]."""
        keep = (x != 0).unsqueeze(-1).float()
        pos = torch.arange(1, x.shape[1] + 1).expand_as(x) * (x != 0)
        h = self.drop(self.items(x) * HIDDEN**0.5 + self.pos(pos)) * keep
        causal = ~torch.tril(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool))
        for block in self.blocks:
            h = block(h, causal, keep)
        return self.ln(h)


def pad(rows: list[np.ndarray]) -> torch.Tensor:
    out = np.zeros((len(rows), MAX_LEN), dtype=np.int64)
    for i, r in enumerate(rows):
        r = r[-MAX_LEN:]
        if len(r):
            out[i, MAX_LEN - len(r) :] = r
    return torch.from_numpy(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None, help="ur4rec home holding datasets/ml-100k (run `ur4rec data` first)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    ds = Dataset.load((args.home or default_home()) / "datasets" / "ml-100k")
    users = np.arange(1, ds.n_users + 1)
    seqs = {u: np.asarray(ds.sequence(u)) for u in users}
    for u in users:
        assert np.array_equal(ds.history(u, "train"), seqs[u][:-2])
        assert ds.target(u, "valid") == seqs[u][-2] and ds.target(u, "test") == seqs[u][-1]

    net = Net(ds.n_items)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.98))

    def evaluate(split: str) -> tuple[float, float]:
        net.eval()
        ranks = []
        with torch.no_grad():
            for s in range(0, len(users), BATCH):
                batch = users[s : s + BATCH]
                hist = [seqs[u][:-2] if split == "valid" else seqs[u][:-1] for u in batch]
                target = torch.tensor([seqs[u][-2] if split == "valid" else seqs[u][-1] for u in batch])
                scores = net(pad(hist))[:, -1] @ net.items.weight.T
                scores[:, 0] = -float("inf")
                for i, h in enumerate(hist):
                    scores[i, torch.from_numpy(h)] = -float("inf")
                assert not torch.isnan(scores).any()
                ranks.append(((scores >= scores.gather(1, target[:, None])).sum(1) - 1).numpy())
        net.train()
        r = np.concatenate(ranks)
        return float((r < 10).mean()), float(np.where(r < 10, 1 / np.log2(r + 2), 0).mean())

    best = (-1.0, 0, (0.0, 0.0))
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        order, total = rng.permutation(users), 0.0
        for s in range(0, len(users), BATCH):
            batch = order[s : s + BATCH]
            x = pad([seqs[u][:-3] for u in batch])  # train[:-1]
            y = pad([seqs[u][1:-2] for u in batch])  # train[1:]
            keep = y != 0
            loss = F.cross_entropy(net(x)[keep] @ net.items.weight[1:].T, y[keep] - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        if epoch % 5 == 0:
            (vh, vn), (th, tn) = evaluate("valid"), evaluate("test")
            if vn > best[0]:
                best = (vn, epoch, (th, tn))
            print(f"epoch {epoch} loss {total:.2f} valid HR@10 {vh:.4f} NDCG@10 {vn:.4f}  test HR@10 {th:.4f} NDCG@10 {tn:.4f}  [{time.time() - started:.0f} s]", flush=True)
    print(f"best validation NDCG@10 {best[0]:.4f} at epoch {best[1]}: test HR@10 {best[2][0]:.4f} NDCG@10 {best[2][1]:.4f}")


if __name__ == "__main__":
    main()
