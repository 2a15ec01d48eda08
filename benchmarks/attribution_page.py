"""The "Attribution" section of docs/benchmarks.md, from the figures benchmarks/attribution.py saved."""

from __future__ import annotations

import statistics
from typing import Any

S1, FINAL = "SASRec (stage 1) = stages 2-4 off", "UR4Rec V2 (final)"


def _cell(row: dict[str, Any]) -> str:
    seeds = row["per_seed"]
    return f"{row['mean']:.4f}" if len(seeds) < 2 else f"{row['mean']:.4f} ± {statistics.stdev(seeds):.4f}"


def _pair(f: dict[str, Any], a: str, b: str, part: str) -> dict[str, Any]:
    return next(p for p in f["pairs"] if p["a"] == a and p["b"] == b and p["slice"] == part)


def _ci(p: dict[str, Any]) -> str:
    return f"{p['mean']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]"


def targets(f: dict[str, Any], baseline: float) -> list[dict[str, Any]]:
    """Issue 22's standard-test targets, judged from the figures."""
    parts = list(f["cases"])
    tail = next(s for s in parts if s.startswith("tail"))
    head = next(s for s in parts if s.startswith("head"))
    t, h, a = _pair(f, FINAL, S1, tail), _pair(f, FINAL, S1, head), _pair(f, FINAL, S1, "all")
    final = f["table"][FINAL]["all"]["mean"]
    return [
        {"target": "tail-item gain over SASRec (stage 1): CI above zero", "measured": _ci(t), "met": t["ci95"][0] > 0},
        {"target": "no head-item loss: CI of final − SASRec on head items includes or exceeds zero", "measured": _ci(h), "met": h["ci95"][1] >= 0},
        {"target": "overall final − SASRec: CI above zero", "measured": _ci(a), "met": a["ci95"][0] > 0},
        {"target": f"overall NDCG@10 not below {baseline:.4f} (the 2026-12-02 table)", "measured": f"{final:.4f}", "met": final >= baseline},
    ]


def render_section(f: dict[str, Any], baseline: float = 0.1196) -> list[str]:
    parts = list(f["cases"])
    seeds = " ".join(str(s) for s in f["seeds"])
    cuts = f["cuts"]
    out = [
        "## Attribution: which part makes the tail gain and which the head loss (standard test)",
        "",
        f"`{f['command']}` ({f['date']}, {f['machine']}; {f['note']}). Seeds {seeds}. Each ablation retrains stages 2-4 "
        "from the same seed's stage-1 SASRec with one part off; \"stages 2-4 off\" is that SASRec itself. "
        + (f"The final model adds its frozen stage-1 SASRec's score with weight {f['anchor']:g} (`model.sasrec_anchor`); "
           "\"without the SASRec anchor\" is the same model scored without it, and \"two SASRecs\" is the control: two seeds' "
           "ID-only stage-1 models mixed the same way, no content. " if f.get("anchor") else "")
        + "Test split, full "
        "ranking, pessimistic ties, 8 tie orders. Cases are cut by the target item's training-interaction count "
        f"(`eval.popularity_cuts` = {cuts[0]}, {cuts[1]}; docs/evaluation.md): "
        + ", ".join(f"{p} {n:,}" for p, n in f["cases"].items())
        + " cases.",
        "",
        "NDCG@10, mean ± std over seeds:",
        "",
        "| model | " + " | ".join(parts) + " |",
        "| --- |" + " --- |" * len(parts),
    ]
    for model in f["models"]:
        out.append(f"| {model} | " + " | ".join(_cell(f["table"][model][p]) for p in parts) + " |")
    out += [
        "",
        "Paired differences (NDCG@10 per test case, averaged over seeds; bootstrap 95% CI over the slice's cases). "
        "\"final − without X\" is what X adds to the final model:",
        "",
        "| difference | " + " | ".join(parts) + " |",
        "| --- |" + " --- |" * len(parts),
    ]
    seen = []
    for p in f["pairs"]:
        key = (p["a"], p["b"])
        if key in seen:
            continue
        seen.append(key)
        out.append(f"| {p['a']} − {p['b']} | " + " | ".join(_ci(_pair(f, p["a"], p["b"], s)) for s in parts) + " |")
    out += ["", "| target (issue 22, standard test) | measured | met |", "| --- | --- | --- |"]
    out += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in targets(f, baseline)]
    walls = "; ".join(f"{label}: " + ", ".join(f"{w:.0f}" for w in v) + " s" for label, v in f["train_wall_s"].items())
    out += ["", f"Cost: `train` wall per seed ({walls}; ablations train stages 2-4 only); the whole benchmark {f['total_s'] / 60:.0f} min.", ""]
    return out
