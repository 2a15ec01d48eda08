"""The "Cold items" section of docs/benchmarks.md, from the figures benchmarks/cold.py saved."""

from __future__ import annotations

import statistics
from typing import Any


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def render_section(f: dict[str, Any]) -> list[str]:
    d = f["data"]
    seeds = " ".join(str(s) for s in f["seeds"])
    out = [
        "## Cold items (items that did not exist at training time)",
        "",
        f"`{f['command']}` ({f['date']}, {f['machine']}; {f.get('note', 'nothing else heavy ran')}). "
        f"Data set `{d['name']}`: {d['cold_items']:,} of {d['items']:,} items cold (share {f['share']:g}, cold seed 0), "
        f"{d['interactions']:,} warm interactions, {d['valid_users']:,} warm test users, {d['cold_cases']:,} cold test cases "
        f"({d['cold_cases_dropped']:,} interactions without an earlier warm item left out). Protocol: docs/evaluation.md, "
        "\"cold-item protocol\".",
        "",
        f"- warm: {f['description']}",
        f"- cold: {f['cold_description']}",
        "",
        f"Seeds {seeds} (the default job per seed; popularity and content-KNN learn nothing and ran once). " + _arms(f),
        *([f"*Since:* {f['since']}"] if f.get("since") else []),  # a later change of the defaults these figures predate
        "",
        "| model | warm NDCG@10 | warm HR@10 | cold NDCG@10 | cold HR@10 | cold MRR |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in f["table"].items():
        w, c = row["warm"], row["cold"]
        out.append(f"| {name} | {_fmt(w['NDCG@10'])} | {_fmt(w['HR@10'])} | {_fmt(c['NDCG@10'])} | {_fmt(c['HR@10'])} | {_fmt(c['MRR'])} |")
    out += ["", "Paired differences (NDCG@10 per test case, averaged over seeds; bootstrap 95% CI over cases):", "",
            "| difference | test set | mean [95% CI] |", "| --- | --- | --- |"]  # fmt: skip
    for p in f["pairs"]:
        out.append(f"| {p['a']} − {p['b']} | {p['part']} | {p['mean']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}] |")
    out += ["", "| target (issue 22) | measured | met |", "| --- | --- | --- |"]
    out += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in f["targets"]]
    walls = "; ".join(f"{arm}: " + ", ".join(f"{w:.0f}" for w in v) + " s" for arm, v in f["train_wall_s"].items())
    ours = "UR4Rec V2" if "arms" in f else "UR4Rec V2, id_dropout 0"
    second = "the ID-dropout arm" if "arms" in f else "the second arm"
    retrained = f"; {second} trains stages 2-4 only, from the first arm's stage 1" if len(f["train_wall_s"]) > 1 else ""
    out += ["", f"Cost: `train` wall per seed, seeds {seeds} ({walls}{retrained}); `evaluate` of one model, warm and cold test sets, "
            f"{statistics.mean(f['table'][ours]['eval_s']):.0f} s of compute; the whole benchmark {f['total_s'] / 60:.0f} min.", ""]
    return out


def _arms(f: dict[str, Any]) -> str:
    """What the UR4Rec V2 rows are."""
    dropout = (f"; the ID-dropout row trains its content path to stand alone (`train.id_dropout = {f['id_dropout']:g}`: at every step "
               "of stages 2-4 that share of the items is read without its ID embedding)")  # fmt: skip
    if "arms" not in f:  # figures saved before the scoring arms
        return f"Both UR4Rec V2 rows are the default job{dropout.replace('the ID-dropout row', 'the second')}."
    settings = "; ".join(f"{arm}: " + (", ".join(f"`{k.removeprefix('UR4REC_MODEL__').lower()}={v}`" for k, v in env.items()) or "the defaults")
                         for arm, env in f["arms"].items())  # fmt: skip
    return ("The first three UR4Rec V2 rows are one trained model per seed, scored with other `model.cold_*` settings "
            f"(nothing retrained; {settings}){dropout if f.get('id_dropout') else ''}.")
