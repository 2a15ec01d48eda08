#!/usr/bin/env python
"""UR4Rec V2 on local-LLM texts vs on template texts: same data, same seeds, same stage-1 SASRec.

    ur4rec --home L data && ur4rec --home L llm --backend local      # the LLM texts (long)
    python benchmarks/llm_texts.py --local-home L --template-home T --seeds 0 1 2 --out docs/llm_texts.json
    python benchmarks/llm_texts.py --local-home L --generation     # where the local texts stand (JSON)

Per seed: `train --stage all --device cpu` in the template home; its stage-1 SASRec (which reads
no text) is copied into the local home, whose stages 2-4 are then trained on the LLM texts
(`--resume`), exactly as benchmarks/ml100k.py trains its ablations. Both arms are evaluated on
test under full ranking with per-user ranks; the LLM - template NDCG@10 difference gets a paired
bootstrap 95% CI over users (per-user NDCG@10 averaged over the seeds done), overall and per
target-item popularity slice (`evaluate`'s slices: cold, tail 1-50, torso 51-200, head > 200). The JSON is
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


def generation(home: Path) -> dict:
    """What the local model has answered so far in ``home`` (read from its answer cache): count,
    generation seconds, tokens/s, and the verdict of the answer checks on what is answered."""
    from ur4rec_cli.data.prepare import dataset_name, load_dataset
    from ur4rec_cli.features.llm import answers as A
    from ur4rec_cli.features.llm import texts as L
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.features.llm.cache import AnswerCache, cache_key
    from ur4rec_cli.settings import load_settings

    settings = load_settings(None, {"home": home, "llm": {"backend": "local"}})
    dataset, _ = load_dataset(settings)
    spec = L.text_spec(settings, "local")
    cache = AnswerCache(home / "cache" / "llm" / f"{dataset_name(settings.data)}.jsonl")
    recs = [r for r in cache.entries.values() if r.get("model") == spec["model"]]
    plan = A.AnswerPlan(dataset, settings.llm, ["items", "users"])
    params = A.send_params(spec)
    for strict, version in ((False, P.PROMPT_VERSION), (True, P.STRICT_VERSION)):
        for group in ("items", "users"):
            built = P.build_prompts(dataset, A.KINDS[group], settings.llm.history_items, strict=strict)
            plan.prompts[strict][group] = built
            plan.keys[strict][group] = [cache_key(backend="local", model=spec["model"], prompt_version=version, messages=p.messages(), params=params) for p in built]
    out: dict = {"model": spec["model"], "answers": len(recs), "prompts": {"items": dataset.n_items, "users": dataset.n_users}}
    seconds = sum(float(r.get("seconds", 0)) for r in recs)
    tout = sum(int((r.get("usage") or {}).get("output", 0)) for r in recs)
    tin = sum(int((r.get("usage") or {}).get("input", 0)) for r in recs)
    out.update({"generation_seconds": round(seconds, 1), "output_tokens": tout, "input_tokens": tin,
                "output_tokens_per_s": round(tout / seconds, 2) if seconds else None,
                "seconds_per_answer": round(seconds / len(recs), 2) if recs else None})  # fmt: skip
    verdicts: dict = {}
    for g in ("items", "users"):
        counts = {"answered": 0, "accepted": 0, "rejected": 0, "reasons": {}}
        for i in range(len(plan.keys[False][g])):
            text, why = plan._check(cache, False, g, i)
            if text is None:
                continue
            counts["answered"] += 1
            if why is None:
                counts["accepted"] += 1
            else:
                counts["rejected"] += 1
                counts["reasons"][why] = counts["reasons"].get(why, 0) + 1
        settled = [plan.settled(cache, g, i) for i in range(len(plan.keys[False][g]))]
        counts["settled"] = A.count_sources(settled)
        verdicts[g] = counts
    out["first_tries"] = verdicts
    return out


def train_counts(home: Path) -> dict[str, int]:
    """Training-interaction count of every item, by the raw id the ranks file names."""
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.serving.index import display_id
    from ur4rec_cli.settings import load_settings

    dataset, _ = load_dataset(load_settings(None, {"home": home}))
    counts = dataset.item_popularity("train")
    return {str(display_id(raw)): int(counts[i]) for i, raw in enumerate(dataset.item_ids, start=1)}


def read_targets(path: Path) -> dict[str, str]:
    return {str(row["user"]): str(row["target"]) for row in map(json.loads, path.read_text().splitlines())}


def slices(users: list[str], targets: dict[str, str], counts: dict[str, int], t: np.ndarray, llm: np.ndarray) -> list[dict]:
    """Per target-popularity slice (evaluate's own cuts): test cases, each arm's NDCG@10, the paired CI of local - template."""
    from ur4rec_cli.evaluation.slices import popularity_slices
    from ur4rec_cli.settings import EvalConfig

    n = np.array([counts[targets[u]] for u in users])
    rows = []
    for name, sel in popularity_slices(n, tuple(EvalConfig().popularity_cuts)):
        if not sel.any():
            continue
        mean, a, b = paired_bootstrap(llm[sel] - t[sel])
        rows.append({"slice": name, "users": int(sel.sum()), "template": float(t[sel].mean()), "local": float(llm[sel].mean()), "diff": mean, "ci95": [a, b]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local-home", type=Path, required=True, help="home whose texts came from `ur4rec llm --backend local`")
    ap.add_argument("--template-home", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--generation", action="store_true", help="only report the local model's answers so far (JSON on stdout)")
    args = ap.parse_args()
    if args.generation:
        print(json.dumps(generation(args.local_home), indent=1))
        return
    if args.template_home is None or args.out is None:
        ap.error("--template-home and --out are needed to train and compare")
    work = Path(tempfile.mkdtemp(prefix="ur4rec-llm-ranks-"))

    local, _ = cli(args.local_home, "llm", "--backend", "local")  # cached texts: embeds them if needed
    if local["texts"]["status"] not in ("cached", "written") or not local.get("complete", True):
        raise SystemExit(f"local texts incomplete: {local['texts']['status']}")
    cli(args.template_home, "data")
    cli(args.template_home, "llm", "--backend", "template")
    name = local["dataset"]

    counts = train_counts(args.template_home)
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
        out["slices"] = slices(users, read_targets(work / f"template-{seed}.jsonl"), counts, t, llm)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        print(f"seed {seed}: template NDCG@10 {out['arms']['template']['NDCG@10'][-1]:.4f}, local {out['arms']['local']['NDCG@10'][-1]:.4f}; "
              f"diff so far {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] ({time.strftime('%H:%M:%S')})", flush=True)


if __name__ == "__main__":
    main()
