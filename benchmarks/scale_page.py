"""The "cost at scale" section of docs/benchmarks.md and its log-log picture, from docs/benchmarks-scale.json.

Used by benchmarks/ml100k.py's renderer (the section) and benchmarks/scale.py (the picture); both
only read saved figures, so the page test can re-render them.
"""

from __future__ import annotations

import math
from pathlib import Path

LABELS = {"cpu": "CPU", "cuda": "CUDA"}
COLOURS = {"cpu": "#1f77b4", "cuda": "#d62728"}


def _s(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _texts_per_s(rows: list[dict]) -> float | None:
    """Texts/s of the largest size whose embedding ran (to extrapolate the others)."""
    done = [r for r in rows if r.get("embed", {}).get("rc") == 0]
    if not done:
        return None
    big = max(done, key=lambda r: r["embed"]["texts"])
    return big["embed"]["texts"] / big["embed"]["wall_s"]


def _row(r: dict, rate: float | None) -> str:
    if "data" not in r:
        return f"| {r['interactions']:,} | {r['items']:,} | {r['users']:,} | not reached (the run was cut off) | | | | | | | |"
    tr, emb = r.get("train", {}), r.get("embed")
    if emb and emb.get("rc") == 0:
        embed = f"{emb['wall_s']:,.0f}"
    elif rate:
        embed = f"≈{(r['items'] + r['users']) / rate:,.0f} (extrapolated)"
    else:
        embed = "–"
    if tr.get("rc") == 0:
        epoch = f"{tr['epoch_s']:,.1f}" + (f" (extrapolated from {tr['steps_run']} of {tr['steps_per_epoch']} steps)" if tr.get("extrapolated") else "")
        peak = f"{tr['rss_mib'] / 1024:.2f}" + (f" (GPU {tr['peak_gpu_mib'] / 1024:.2f})" if tr.get("peak_gpu_mib") else "")
    elif tr:
        epoch = f"failed: {tr.get('error', '?')}"
        peak = f"{tr.get('rss_mib', 0) / 1024:.2f}"
    else:
        epoch, peak = "not reached (the run was cut off)", "–"
    e8, e1 = r.get("evaluate_8", {}), r.get("evaluate_1", {})
    ratio = f"{e8['seconds'] / e1['seconds']:.2f}" if e8.get("rc") == 0 and e1.get("rc") == 0 and e1.get("seconds") else "–"
    return (
        f"| {r['interactions']:,} | {r['items']:,} | {r['users']:,} | {r['data']['wall_s']:.1f} ({r['data']['rss_mib'] / 1024:.2f}) | {embed} | "
        f"{epoch} | {peak} | {_s(tr.get('export_s'))} | {_s(e8.get('seconds'), 2)} | {_s(e1.get('seconds'), 2)} | {ratio} |"
    )


def _yes(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def targets(saved: dict) -> list[str]:
    """The issue's cost targets, each read off the saved figures (CPU rows unless named)."""
    rows = ["| target | measured | met |", "| --- | --- | --- |"]
    ml = saved.get("ml100k")
    if ml and ml.get("quality"):  # a 3-seed code A/B (scale.py --from-ab)
        q, walls = ml["quality"], ", ".join(f"{w:.0f}" for w in ml["after"]["walls"])
        held = q["ci95"][1] >= 0
        rows.append(
            f"| ML-100K `train --stage all` ≤ 300 s alone (CPU), test NDCG@10 not lower (paired CI of new − old includes or exceeds 0) | "
            f"{ml['after']['wall']:.0f} s, mean of seeds {' '.join(map(str, ml['seeds']))} ({walls} s; before: {ml['before']['wall']:.0f} s in the same run); "
            f"new − old NDCG@10 {q['mean']:+.4f} [{q['ci95'][0]:+.4f}, {q['ci95'][1]:+.4f}] | {_yes(ml['after']['wall'] <= 300 and held)} |"
        )
    elif ml:
        when = f"on {ml['before']['date']}" if ml["before"].get("date") else "in the same run"
        rows.append(f"| ML-100K `train --stage all` ≤ 300 s alone (CPU) | {ml['after']['wall']:.0f} s (before: {ml['before']['wall']:.0f} s {when}) | {_yes(ml['after']['wall'] <= 300)} |")
    start = (ml or {}).get("startup")
    if start:
        x = start["recommend_history_s"] / start["import_torch_s"]
        when = f" ({ml['startup_date']})" if ml.get("startup_date") and ml["startup_date"] != ml["date"] else ""
        rows.append(
            f"| `recommend --history` from a cold process ≤ 1.5× `python -c \"import torch\"` (issue 22) | {start['recommend_history_s']:.2f} s vs "
            f"{start['import_torch_s']:.2f} s: × {x:.2f} (`--user`, numpy only: {start['recommend_user_s']:.2f} s){when} | {_yes(x <= 1.5)} |"
        )
    cpu = {r["size"]: r for r in saved.get("cpu", {}).get("rows", []) if r.get("train", {}).get("rc") == 0}
    if "1m" in cpu:
        gb = cpu["1m"]["train"]["rss_mib"] / 1024
        rows.append(f"| 1M interactions / 20k items: train peak RSS ≤ 3 GB | {gb:.2f} GB | {_yes(gb <= 3)} |")
    if "100k" in cpu and "1m@2k" in cpu:
        x = cpu["1m@2k"]["train"]["epoch_s"] / cpu["100k"]["train"]["epoch_s"]
        rows.append(f"| epoch time at most linear in interactions at a fixed catalogue (10× interactions: ≤ 10×) | × {x:.1f} | {_yes(x <= 10)} |")
    if "1m@2k" in cpu and "1m" in cpu:
        x = cpu["1m"]["train"]["rss_mib"] / cpu["1m@2k"]["train"]["rss_mib"]
        rows.append(f"| peak memory flat in catalogue size (10× items at 1M interactions: ≤ 1.2×) | × {x:.2f} | {_yes(x <= 1.2)} |")
    for kind in ("cpu", "cuda"):
        for r in saved.get(kind, {}).get("rows", []):
            e8, e1 = r.get("evaluate_8", {}), r.get("evaluate_1", {})
            if e8.get("rc") == 0 and e1.get("rc") == 0:
                x = e8["seconds"] / e1["seconds"]
                rows.append(f"| 8-order evaluate ≤ 2× one order ({LABELS[kind]}, {r['size']}) | × {x:.2f} | {_yes(x <= 2)} |")
    return rows if len(rows) > 2 else []


def render_section(saved: dict) -> list[str]:
    """Markdown lines of the section (empty when no scale figures are saved)."""
    if not saved:
        return []
    out = [
        "## Cost at scale (synthetic data sets)",
        "",
        "`benchmarks/scale.py`: seeded synthetic data sets shaped like ML-100K scaled up (`benchmarks/synthetic.py`: Zipf item "
        "popularity, favourite genres, log-normal history lengths, a quarter of consecutive ratings in the same second), each "
        "step one `ur4rec` process timed from outside; peak RSS read from the kernel for that process. *epoch s*: one epoch of "
        "stage 1 (`train --stage pretrain_sasrec --epochs 1`, where the training time goes), full softmax, computed in chunks "
        "once a batch's logits pass 256 MiB (`training/chunked_loss.py`; 512 MiB before 2026-12-04). *export s*: writing the serving index (8 tie orders), "
        "the end of the same command. *evaluate s*: the scoring and ranking seconds of `ur4rec evaluate` (test split, full "
        "ranking) with 8 and with 1 tie orders; the last column is their ratio.",
        "",
        "![seconds per epoch and peak memory against interactions, log-log](scale.svg)",
        "",
    ]
    goals = targets(saved)
    if goals:
        out += ["### Cost targets", "", *goals, ""]
    ml = saved.get("ml100k")
    if ml and ml.get("quality"):
        out += _ab_section(ml)
    elif ml:
        out += [
            "### ML-100K, the default job alone (`train --stage all --device cpu`, seed 42)",
            "",
            f"`{ml['command']}` on {ml['date']}, {ml['machine']}." + (f" {ml['note']}" if ml.get("note") else ""),
            ("Before: the default run of docs/benchmarks.json, " + ml["before"]["date"] + "." if ml["before"].get("date") else
             "Before: the code before this round of changes (`--before-src`), run just before *after* in the same run.")
            + " One seed each: the test NDCG@10 shows the run is sound, not that quality held (that takes the 3-seed benchmark).",
            "",
            *_stage_rows(ml),
        ]
        out += [
            f"| **command wall** | **{ml['before']['wall']:.1f}** | **{ml['after']['wall']:.1f}** |",
            f"| test NDCG@10 | {ml['before']['ndcg10']:.4f} | {ml['after']['ndcg10']:.4f} |",
            "",
        ]
    for kind in ("cpu", "cuda"):
        run = saved.get(kind)
        if not run:
            continue
        rate = _texts_per_s(run["rows"])
        out += [
            f"### {LABELS[kind]}: {run['machine']}",
            "",
            f"`{run['command']}` on {run['date']}, train batch size {run['batch_size']}; whole script {run['total_s'] / 60:.1f} min."
            + (f" {run['note']}" if run.get("note") else ""),
            "",
            "| interactions | items | users | data s (GB) | embed texts s | epoch s | train peak RSS GB | export s | evaluate s, 8 orders | 1 order | 8 / 1 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *(_row(r, rate) for r in run["rows"]),
            "",
        ]
        for line in (_growth(run["rows"]), _fixed(run["rows"])):
            if line:
                out += [line, ""]
    return out


def _fixed(rows: list[dict]) -> str:
    """The two controlled comparisons: 10x interactions at one catalogue; 10x catalogue at one interaction count."""
    by = {r["size"]: r for r in rows if r.get("train", {}).get("rc") == 0}
    parts = []
    if "100k" in by and "1m@2k" in by:
        a, b = by["100k"]["train"], by["1m@2k"]["train"]
        parts.append(f"10× interactions at a fixed 2,000-item catalogue (100k → 1m@2k): epoch time × {b['epoch_s'] / a['epoch_s']:.1f} (linear: × 10)")
    if "1m@2k" in by and "1m" in by:
        a, b = by["1m@2k"]["train"], by["1m"]["train"]
        parts.append(f"10× catalogue at 1M interactions (1m@2k → 1m): train peak RSS × {b['rss_mib'] / a['rss_mib']:.2f} (flat: × 1), epoch time × {b['epoch_s'] / a['epoch_s']:.1f}")
    return ("Controlled comparisons: " + "; ".join(parts) + ".") if parts else ""


def _growth(rows: list[dict]) -> str:
    """One line: how epoch seconds and peak RSS grow per 10x interactions (log-log slopes)."""
    ok = [r for r in rows if r.get("train", {}).get("rc") == 0 and "@" not in r["size"]]
    if len(ok) < 2:
        return ""
    parts = []
    for a, b in zip(ok, ok[1:]):
        k = math.log10(b["interactions"] / a["interactions"])
        t = math.log10(b["train"]["epoch_s"] / a["train"]["epoch_s"]) / k
        m = math.log10(b["train"]["rss_mib"] / a["train"]["rss_mib"]) / k
        parts.append(f"{a['interactions']:,} → {b['interactions']:,}: epoch time ∝ n^{t:.2f}, peak RSS ∝ n^{m:.2f}")
    return "Growth (log-log slope per step; interactions and catalogue both grow 10×, so 1.0 is linear in interactions at a growing catalogue): " + "; ".join(parts) + "."


def write_picture(saved: dict, path: Path) -> None:
    """Two log-log panels (seconds per epoch, peak train RSS GB) against interactions, one line per device kind
    (the sizes whose catalogue grows with the interactions; the controlled 1m@2k row is in the table)."""
    w, h, pad = 360, 260, 50
    panels = [("seconds per epoch (stage 1)", lambda r: r["train"]["epoch_s"]), ("peak train RSS, GB", lambda r: r["train"]["rss_mib"] / 1024)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{h}" font-family="sans-serif" font-size="11">']
    for p, (title, value) in enumerate(panels):
        x0 = p * w
        series = {
            k: [(r["interactions"], value(r)) for r in run["rows"] if r.get("train", {}).get("rc") == 0 and "@" not in r["size"]]
            for k, run in saved.items()
            if k in LABELS
        }
        points = [pt for s in series.values() for pt in s]
        if not points:
            continue
        lx = [math.log10(x) for x, _ in points]
        ly = [math.log10(max(y, 1e-3)) for _, y in points]
        xlo, xhi = math.floor(min(lx)), math.ceil(max(lx))
        ylo, yhi = math.floor(min(ly)), math.ceil(max(ly))
        xhi, yhi = max(xhi, xlo + 1), max(yhi, ylo + 1)
        sx = lambda v: x0 + pad + (math.log10(v) - xlo) / (xhi - xlo) * (w - 1.5 * pad)  # noqa: E731
        sy = lambda v: h - pad + (-(math.log10(max(v, 1e-3)) - ylo) / (yhi - ylo)) * (h - 1.6 * pad)  # noqa: E731
        parts.append(f'<text x="{x0 + w / 2}" y="16" text-anchor="middle" font-weight="bold">{title}</text>')
        for e in range(xlo, xhi + 1):
            x = sx(10**e)
            parts.append(f'<line x1="{x:.1f}" y1="{sy(10**ylo):.1f}" x2="{x:.1f}" y2="{sy(10**yhi):.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{x:.1f}" y="{h - pad + 15}" text-anchor="middle">1e{e}</text>')
        for e in range(ylo, yhi + 1):
            y = sy(10**e)
            parts.append(f'<line x1="{sx(10**xlo):.1f}" y1="{y:.1f}" x2="{sx(10**xhi):.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{x0 + pad - 5}" y="{y + 4:.1f}" text-anchor="end">{10.0**e:g}</text>')
        parts.append(f'<text x="{x0 + w / 2}" y="{h - 12}" text-anchor="middle">interactions</text>')
        for k, pts in series.items():
            if not pts:
                continue
            path_d = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(pts))
            parts.append(f'<path d="{path_d}" fill="none" stroke="{COLOURS[k]}" stroke-width="2"/>')
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{COLOURS[k]}"/>' for x, y in pts]
        if p == 0:  # a slope-1 guide through the first point of the first series: linear growth
            x1, y1 = next(pts[0] for pts in series.values() if pts)
            x2 = 10.0**xhi
            y2 = min(y1 * x2 / x1, 10.0**yhi)
            x2 = x1 * y2 / y1
            parts.append(f'<path d="M{sx(x1):.1f},{sy(y1):.1f} L{sx(x2):.1f},{sy(y2):.1f}" stroke="#999" stroke-dasharray="4 3" fill="none"/>')
            parts.append(f'<text x="{sx(x2) - 4:.1f}" y="{sy(y2) + 12:.1f}" fill="#999" text-anchor="end">linear</text>')
        for i, k in enumerate(k for k in series if series[k]):
            parts.append(f'<text x="{x0 + pad + 8}" y="{34 + 14 * i}" fill="{COLOURS[k]}">{LABELS[k]}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", "utf-8")


def _ab_section(ml: dict) -> list[str]:
    """The ML-100K before/after table of a 3-seed code A/B (scale.py --from-ab)."""
    seeds = " ".join(map(str, ml["seeds"]))
    q = ml["quality"]
    out = [
        f"### ML-100K, the default job alone (`train --stage all --device cpu`, seeds {seeds})",
        "",
        f"`{ml['command']}` on {ml['date']}, {ml['machine']}." + (f" {ml['note']}" if ml.get("note") else ""),
        "Before and after are two versions of the code (`--a-src`, `--b-src`), each running the default job per seed, one job at a "
        "time in one run (before seed 0, after seed 0, before seed 1, ...); wall seconds are means over the seeds. Test NDCG@10: "
        "per user averaged over the seeds, new − old with a paired bootstrap 95% CI over users.",
        "",
        *_stage_rows(ml),
    ]
    walls = lambda arm: ", ".join(f"{w:.0f}" for w in ml[arm]["walls"])  # noqa: E731
    out += [
        f"| **command wall** (per seed: before {walls('before')}; after {walls('after')}) | **{ml['before']['wall']:.1f}** | **{ml['after']['wall']:.1f}** |",
        *([f"| peak RSS of the training process, largest over seeds | {ml['before']['peak_rss_mb'] / 1024:.2f} GB | {ml['after']['peak_rss_mb'] / 1024:.2f} GB |"]
          if "peak_rss_mb" in ml["before"] and "peak_rss_mb" in ml["after"] else []),
        f"| test NDCG@10, mean over seeds | {ml['before']['ndcg10']:.4f} | {ml['after']['ndcg10']:.4f} |",
        f"| new − old test NDCG@10 [95% CI] | | {q['mean']:+.4f} [{q['ci95'][0]:+.4f}, {q['ci95'][1]:+.4f}] |",
        "",
    ]
    return out


def _stage_rows(ml: dict) -> list[str]:
    """The before/after table's header and one row per stage."""
    after = {s["stage"]: s["wall_s"] for s in ml["after"]["stages"]}
    rows = ["| stage | before s | after s |", "| --- | --- | --- |"]
    return rows + [f"| {st['stage']} | {st['wall_s']:.1f} | {_s(after.get(st['stage']))} |" for st in ml["before"]["stages"]]
