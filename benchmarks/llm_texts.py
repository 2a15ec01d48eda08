#!/usr/bin/env python
"""UR4Rec V2 on local-LLM texts vs on template texts: same data, same seeds, same stage-1 SASRec.

    ur4rec --home L data && ur4rec --home L llm --backend local      # the LLM texts (long)
    python benchmarks/llm_texts.py --local-home L --template-home T --seeds 0 1 2 --out docs/llm_texts.json

Per seed: `train --stage all --device cpu` in the template home; its stage-1 SASRec (which reads
no text) is copied into the local home, whose stages 2-4 are then trained on the LLM texts
(`--resume`), exactly as benchmarks/ml100k.py trains its ablations. Both arms are evaluated on
test under full ranking with per-user ranks; the LLM - template NDCG@10 difference gets a paired
bootstrap 95% CI over users (per-user NDCG@10 averaged over the seeds done). The JSON is
rewritten after every seed, so an interrupted run leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml100k import COLS, KS, cli, ndcg10, paired_bootstrap, read_ranks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local-home", type=Path, required=True, help="home whose texts came from `ur4rec llm --backend local`")
    ap.add_argument("--template-home", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ur4rec-llm-ranks-"))

    local, _ = cli(args.local_home, "llm", "--backend", "local")  # cached texts: embeds them if needed
    if local["texts"]["status"] not in ("cached", "written") or not local.get("complete", True):
        raise SystemExit(f"local texts incomplete: {local['texts']['status']}")
    cli(args.template_home, "data")
    cli(args.template_home, "llm", "--backend", "template")
    name = local["dataset"]

    out: dict = {"seeds": [], "arms": {"template": {}, "local": {}}, "train_seconds": {"template": [], "local": []}}
    per_user: dict[str, list[dict[str, int]]] = {"template": [], "local": []}
    for seed in args.seeds:
        run = f"seed{seed}"
        _, wall = cli(args.template_home, "train", "--stage", "all", "--device", "cpu", "--seed", str(seed), "--run", run)
        out["train_seconds"]["template"].append(round(wall, 1))
        src = args.template_home / "runs" / name / run / "pretrain_sasrec"
        dst = args.local_home / "runs" / name / run / "pretrain_sasrec"
        shutil.rmtree(dst.parent, ignore_errors=True)
        shutil.copytree(src, dst)
        _, lwall = cli(args.local_home, "train", "--stage", "all", "--resume", "--device", "cpu", "--seed", str(seed), "--run", run)
        out["train_seconds"]["local"].append(round(lwall, 1))
        for arm, home in (("template", args.template_home), ("local", args.local_home)):
            ranks = work / f"{arm}-{seed}.jsonl"
            res, _ = cli(home, "evaluate", "--k", *KS, "--protocol", "full", "--run", run, "--output", str(ranks))
            for key in COLS:
                out["arms"][arm].setdefault(key, []).append(res["metrics"][key])
            per_user[arm].append(read_ranks(ranks))
        out["seeds"].append(seed)
        users = sorted(per_user["template"][0])
        t = np.mean([[ndcg10(np.array([r[u]]))[0] for u in users] for r in per_user["template"]], axis=0)
        llm = np.mean([[ndcg10(np.array([r[u]]))[0] for u in users] for r in per_user["local"]], axis=0)
        mean, lo, hi = paired_bootstrap(llm - t)
        out["ndcg10_diff_local_minus_template"] = {"mean": mean, "ci95": [lo, hi], "users": len(users), "seeds": len(out["seeds"])}
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        print(f"seed {seed}: template NDCG@10 {out['arms']['template']['NDCG@10'][-1]:.4f}, local {out['arms']['local']['NDCG@10'][-1]:.4f}; "
              f"diff so far {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] ({time.strftime('%H:%M:%S')})", flush=True)


if __name__ == "__main__":
    main()
