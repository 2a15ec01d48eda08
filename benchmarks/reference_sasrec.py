#!/usr/bin/env python
"""An independent plain SASRec on ur4rec's split: a cross-check of the library's own model.

    python benchmarks/reference_sasrec.py [--home DIR] [--seed 0] [--epochs 100]
    python benchmarks/reference_sasrec.py --learn-validation --epochs 85 [--json OUT]
    python benchmarks/reference_sasrec.py --dataset NAME --max-len 50 --epochs 60   # another prepared data set

Written apart from the library: torch's nn.MultiheadAttention, Adam at a constant rate, randomly
mixed batches of 128 rows padded to 200 (``--max-len``: Kang & McAuley used 50 on their sparse
Amazon sets, 200 on ML-1M), and its own full-ranking evaluation (history masked,
pessimistic ties). Only the split is read from `ur4rec data`'s artifact (checked below to be
train = seq[:-2], valid = seq[-2], test = seq[-1]). Kang & McAuley's blocks with full softmax
cross-entropy, max len 200, 2 blocks x 64, dropout 0.2, std-0.02 init. Prints validation and
test HR@10 / NDCG@10 every 5 epochs, then the test figures at the best validation epoch.

`--learn-validation` is the same model given the same data as ur4rec's `train.learn_validation`:
the train -> validation transition is a training target too, nothing is validated, and test is
read once, after the last of a fixed number of epochs. `--json OUT` writes the reported test
figures and every user's rank (for the benchmark's paired comparison).
"""

from __future__ import annotations

import argparse
import json
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
    global MAX_LEN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None, help="ur4rec home holding datasets/<--dataset> (run `ur4rec data` first)")
    ap.add_argument("--dataset", default="ml-100k", help="name of the prepared data set in the home (default ml-100k)")
    ap.add_argument("--max-len", type=int, default=MAX_LEN, help=f"rows padded (and histories cut) to this length (default {MAX_LEN})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--learn-validation", action="store_true", help="train on the validation transition too; test once, after the last epoch")
    ap.add_argument("--json", type=Path, default=None, help="write the reported test figures and per-user ranks here")
    args = ap.parse_args()
    MAX_LEN = args.max_len
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    ds = Dataset.load((args.home or default_home()) / "datasets" / args.dataset)
    users = np.arange(1, ds.n_users + 1)
    seqs = {u: np.asarray(ds.sequence(u)) for u in users}
    for u in users:
        assert np.array_equal(ds.history(u, "train"), seqs[u][:-2])
        assert ds.target(u, "valid") == seqs[u][-2] and ds.target(u, "test") == seqs[u][-1]

    net = Net(ds.n_items)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.98))

    def evaluate(split: str) -> np.ndarray:
        """0-based full-ranking rank of every user's held-out item (pessimistic ties)."""
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
        return np.concatenate(ranks)

    best = (-1.0, 0, np.zeros(0))
    started = time.time()
    cut = 1 if args.learn_validation else 2  # train sequence = seq[:-cut]
    for epoch in range(1, args.epochs + 1):
        order, total = rng.permutation(users), 0.0
        for s in range(0, len(users), BATCH):
            batch = order[s : s + BATCH]
            x = pad([seqs[u][: -cut - 1] for u in batch])  # train[:-1]
            y = pad([seqs[u][1:-cut] for u in batch])  # train[1:]
            keep = y != 0
            loss = F.cross_entropy(net(x)[keep] @ net.items.weight[1:].T, y[keep] - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        if args.learn_validation:
            print(f"epoch {epoch} loss {total:.2f}  [{time.time() - started:.0f} s]", flush=True)
        elif epoch % 5 == 0:
            v, t = evaluate("valid"), evaluate("test")
            vh, vn = metrics(v)["HR@10"], metrics(v)["NDCG@10"]
            if vn > best[0]:
                best = (vn, epoch, t)
            print(f"epoch {epoch} loss {total:.2f} valid HR@10 {vh:.4f} NDCG@10 {vn:.4f}  test HR@10 {metrics(t)['HR@10']:.4f} NDCG@10 {metrics(t)['NDCG@10']:.4f}  [{time.time() - started:.0f} s]", flush=True)
    if args.learn_validation:
        best = (float("nan"), args.epochs, evaluate("test"))
        print(f"after epoch {args.epochs} (validation items trained on): test HR@10 {metrics(best[2])['HR@10']:.4f} NDCG@10 {metrics(best[2])['NDCG@10']:.4f}")
    else:
        print(f"best validation NDCG@10 {best[0]:.4f} at epoch {best[1]}: test HR@10 {metrics(best[2])['HR@10']:.4f} NDCG@10 {metrics(best[2])['NDCG@10']:.4f}")
    if args.json:
        report = {
            "seed": args.seed, "epochs": args.epochs, "epoch": best[1], "learn_validation": args.learn_validation, "max_len": MAX_LEN,
            "test": metrics(best[2]), "wall_s": round(time.time() - started, 1),
            "ranks": {str(ds.user_ids[u - 1]): int(r) for u, r in zip(users, best[2])},
        }
        args.json.write_text(json.dumps(report) + "\n", "utf-8")


def metrics(ranks: np.ndarray) -> dict[str, float]:
    """HR@K, NDCG@K (K = 5, 10, 20) and MRR from 0-based ranks."""
    out = {}
    for k in (5, 10, 20):
        out[f"HR@{k}"] = float((ranks < k).mean())
        out[f"NDCG@{k}"] = float(np.where(ranks < k, 1 / np.log2(ranks + 2.0), 0).mean())
    out["MRR"] = float((1.0 / (ranks + 1.0)).mean())
    return out


if __name__ == "__main__":
    main()
