#!/usr/bin/env python
"""docs/benchmarks-llm.md: texts of a real LLM (the local backend) for a whole data set, and UR4Rec V2 on them.

    ur4rec --home L data
    /usr/bin/time -v ur4rec --home L llm --backend local --json | tee run.json   # long; resumable
    python benchmarks/llm_texts.py --local-home L --template-home T --out docs/llm_texts.json
    python benchmarks/llm_speed.py --home L --out docs/llm_speed.json                # the side-by-side
    python benchmarks/llm_page.py --home L [--run-json run.json] [--comparison docs/llm_texts.json] [--speed docs/llm_speed.json]
    python benchmarks/llm_page.py --render docs/benchmarks-llm.json                  # page only

Measured from what the home holds: the answers in its cache (each records its seconds and
tokens), `llm --dry-run` (prompts still to send, first answers already rejected), and, once the run
is complete, its `--json` summary (where every text came from). A run still in progress is
measured as it stands and the page says how far it got; nothing is extrapolated into a figure
except the dry run's own time estimate, which is labelled as one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml100k import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks-llm.md"
FIGURES = ROOT / "docs" / "benchmarks-llm.json"
METRICS = ["HR@10", "NDCG@10", "MRR"]


def measure(home: Path, run_json: Path | None, comparison: Path | None, speed: Path | None = None) -> dict:
    """The figures of the local-LLM texts in ``home`` (complete or not) and, if given, the training comparison."""
    dry, _ = cli(home, "llm", "--backend", "local", "--dry-run")
    conf, _ = cli(home, "config")
    cap = int(conf["settings"]["llm"]["local_max_tokens"])
    records = []
    # A complete run's dry run reuses the texts and names no cache: it is the home's own.
    cache = Path(dry.get("cache") or home / "cache" / "llm" / f"{dry['dataset']}.jsonl")
    for line in cache.read_text("utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line being written right now
            continue
        if rec.get("backend") == "local" and rec.get("model") == dry["model"]:
            records.append(rec)
    if not records:
        raise SystemExit(f"no local answers of {dry['model']} in {cache}")
    seconds = sum(float(r["seconds"]) for r in records)
    out_tok = sum(int(r["usage"]["output"]) for r in records)
    in_tok = sum(int(r["usage"]["input"]) for r in records)
    start = min(float(r["time"]) - float(r["seconds"]) for r in records)
    gen = {
        "model": dry["model"],
        "dataset": dry["dataset"],
        "prompt_versions": sorted({r["prompt_version"] for r in records}),
        "answers": len(records),
        "answers_by_kind": {k: sum(r["kind"] == k for r in records) for k in ("item", "user")},
        "prompts_total": dry["items"]["total"] + dry["users"]["total"],
        "requests_to_send": dry.get("requests_to_send", 0),
        "second_tries_to_send": dry.get("second_tries_to_send"),
        "complete": dry.get("requests_to_send", 0) == 0,
        "generation_seconds": round(seconds, 1),
        "span_seconds": round(max(float(r["time"]) for r in records) - start, 1),
        "tokens_per_s": round(out_tok / seconds, 2),
        "seconds_per_answer": round(seconds / len(records), 2),
        "output_tokens_per_answer": round(out_tok / len(records), 1),
        "input_tokens_per_answer": round(in_tok / len(records), 1),
        "max_tokens": cap,
        "at_max_tokens": sum(int(r["usage"]["output"]) >= cap for r in records),
        "estimate_left": dry.get("estimate"),
        "examples": _examples(records),
    }
    from llm_texts import generation  # the answer checks' verdict on every first answer in the cache

    gen["first_tries"] = generation(home)["first_tries"]
    if run_json is not None:
        lines = [ln for ln in run_json.read_text("utf-8").splitlines() if ln.strip()]
        run = json.loads(lines[-1])
        gen["run"] = {k: run.get(k) for k in ("sources", "speed", "tokens", "requests", "complete")}
    elif gen["complete"]:  # where each text came from, as the texts artifact records it
        manifest = home / "features" / gen["dataset"] / "texts" / "manifest.json"
        if manifest.is_file():
            gen["run"] = {"sources": json.loads(manifest.read_text("utf-8"))["extra"].get("sources")}
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
        "generation": gen,
    }
    if comparison is not None and comparison.is_file():
        figures["comparison"] = json.loads(comparison.read_text("utf-8"))
    if speed is not None and speed.is_file():
        figures["speed"] = json.loads(speed.read_text("utf-8"))
    return figures


def render_speed(sp: dict) -> list[str]:
    """The one-run side-by-side of llama.cpp one prompt at a time and the batched engine."""
    out = [
        "## One prompt at a time vs batched",
        "",
        f"`python benchmarks/llm_speed.py --home L --out docs/llm_speed.json` on {sp['date']}, {sp['machine']}, nothing else "
        f"running: the same {sp['prompts']} prompts (half item, half user prompts of the data set), the same model file "
        f"({sp['model']}), temperature {sp['settings']['temperature']}, at most {sp['settings']['local_max_tokens']} tokens per answer.",
        "",
        "| path | load | s/answer | output tokens/s | whole data set, load included (projection) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in sp["rows"].items():
        load = f"{r['load_seconds']:.1f} s"
        if "load_seconds_from_gguf" in r:
            load = f"{r['load_seconds_from_gguf']:.1f} s first run (dequantize + cache), then {r['load_seconds']:.1f} s"
        out.append(f"| {name}{' (' + r['engine'] + ')' if r.get('engine') else ''} | {load} | {r['seconds_per_answer']:.3f} | "
                   f"{r['output_tokens_per_s']:.1f} | {r['whole_dataset_seconds'] / 60:.1f} min for {sp['dataset_prompts']:,} prompts |")  # fmt: skip
    out += [
        "",
        f"Batched / one at a time: **{sp['ratio_tokens_per_s']:.2f}×** the output tokens/s; "
        f"**{sp['ratio_whole_dataset']:.2f}×** over a whole-data-set first run, load included.",
        "",
    ]
    return out


def _examples(records: list[dict], per_kind: int = 5) -> list[dict]:
    """Ten first-try answers: five items and five users spread evenly over the ids."""
    from ur4rec_cli.features.llm.prompts import PROMPT_VERSION

    out = []
    for kind in ("item", "user"):
        mine = sorted((r for r in records if r["kind"] == kind and r.get("prompt_version") == PROMPT_VERSION), key=lambda r: r["id"])
        picks = [mine[round(j * (len(mine) - 1) / max(1, per_kind - 1))] for j in range(min(per_kind, len(mine)))] if mine else []
        out += [{"kind": r["kind"], "id": r["raw_id"], "text": r["text"]} for r in picks]
    return out


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def render(f: dict) -> str:
    g = f["generation"]
    out = [
        "# Benchmarks: texts from a real LLM",
        "",
        f"Produced by `python benchmarks/llm_page.py` on {f['date']}, {f['machine']}, no GPU, from the "
        f"answers of `ur4rec llm --backend local` ({g['model']}, prompt version {', '.join(g['prompt_versions'])}) "
        f"on {g['dataset']}. The figures are saved in benchmarks-llm.json beside this page.",
        "",
        "    ur4rec --home L data",
        "    ur4rec --home L llm --backend local --json | tee run.json",
        "    python benchmarks/llm_speed.py --home L --out docs/llm_speed.json",
        "    python benchmarks/llm_texts.py --local-home L --template-home T --seeds 0 1 2 --out docs/llm_texts.json",
        "    python benchmarks/llm_page.py --home L --run-json run.json --comparison docs/llm_texts.json --speed docs/llm_speed.json",
        "",
    ]
    if f.get("speed"):
        out += render_speed(f["speed"])
    out += ["## Generation", ""]
    if not g["complete"]:
        out += [
            f"**Partial run**: measured while the run was going, {g['answers']:,} answers in the cache "
            f"({g['answers_by_kind']['item']:,} item, {g['answers_by_kind']['user']:,} user prompts); "
            f"{g['requests_to_send']:,} of the data set's prompts still to send. Rejections and fallbacks are final only "
            "when every entry is settled.",
            "",
        ]
    out += [
        "| figure | value |",
        "| --- | --- |",
        f"| answers generated | {g['answers']:,} |",
        f"| generation time (sum of per-answer seconds) | {g['generation_seconds']:,.1f} s |",
        f"| wall span, first to last answer | {g['span_seconds']:,.1f} s |",
        f"| output tokens/s | {g['tokens_per_s']:.2f} |",
        f"| seconds per answer | {g['seconds_per_answer']:.2f} |",
        f"| tokens per answer (in / out) | {g['input_tokens_per_answer']:.1f} / {g['output_tokens_per_answer']:.1f} |",
        f"| answers cut at max_tokens ({g['max_tokens']}) | {g['at_max_tokens']:,} |",
    ]
    for kind, c in (g.get("first_tries") or {}).items():
        if c["answered"]:
            why = ", ".join(f"{n} {r}" for r, n in sorted(c["reasons"].items())) or "none"
            out.append(f"| {kind}: first answers checked / accepted / rejected (why) | {c['answered']:,} / {c['accepted']:,} / {c['rejected']:,} ({why}) |")
    if g.get("estimate_left") and not g["complete"]:
        e = g["estimate_left"]
        out.append(f"| dry-run estimate for the rest (an estimate, not a measurement) | {e['seconds'] / 3600:.1f} h at {e['tokens_per_s']} tokens/s |")
    run = g.get("run") or {}
    if run.get("sources"):
        for kind, c in run["sources"].items():
            out.append(
                f"| {kind}: first answer kept / second try kept / template fallback | "
                f"{c.get('llm', 0):,} / {c.get('llm-retry', 0):,} / {c.get('template', 0):,} (rejected first answers: {c.get('rejected', 0):,}) |"
            )
    out += ["", "Examples (first-try answers of five items and five users spread over the ids, text as cleaned when it was answered):", ""]
    out += [f"- {e['kind']} {e['id']}: {e['text']}" for e in g["examples"]]
    out += [""]
    out += ["## UR4Rec V2 on these texts vs on template texts", ""]
    comp = f.get("comparison")
    if not comp or not comp.get("seeds"):
        out += [
            "Not measured yet: it needs the texts of every entry (`benchmarks/llm_texts.py` refuses incomplete texts).",
            "",
        ]
    else:
        d = comp["ndcg10_diff_local_minus_template"]
        out += [
            f"`python benchmarks/llm_texts.py --seeds {' '.join(map(str, comp['seeds']))}`: test split, full ranking, "
            "same stage-1 SASRec per seed in both arms. Mean ± std over seeds.",
            "",
            "| texts | " + " | ".join(METRICS) + " |",
            "| --- | " + " | ".join("---" for _ in METRICS) + " |",
            *(f"| {arm} | " + " | ".join(_fmt(comp["arms"][arm][m]) for m in METRICS) + " |" for arm in ("template", "local")),
            "",
            f"local − template NDCG@10: {d['mean']:+.4f}, paired bootstrap 95% CI [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] "
            f"({d['users']} users, per-user NDCG@10 averaged over {d['seeds']} seed(s)).",
            "",
        ]
        if comp.get("slices"):
            out += [
                "By the test item's training-interaction count (the same per-user NDCG@10, averaged over the seeds):",
                "",
                "| target item | users | template | local | local − template (95% CI) |",
                "| --- | --- | --- | --- | --- |",
                *(f"| {r['slice']} | {r['users']} | {r['template']:.4f} | {r['local']:.4f} | {r['diff']:+.4f} [{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}] |" for r in comp["slices"]),
                "",
            ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="home whose cache holds the local backend's answers")
    ap.add_argument("--run-json", type=Path, help="the --json summary of the finished `ur4rec llm --backend local`")
    ap.add_argument("--comparison", type=Path, help="the JSON benchmarks/llm_texts.py wrote")
    ap.add_argument("--speed", type=Path, help="the JSON benchmarks/llm_speed.py wrote")
    ap.add_argument("--render", type=Path, metavar="JSON", help="rewrite --out from saved figures (nothing measured)")
    ap.add_argument("--out", type=Path, default=PAGE)
    args = ap.parse_args()
    if args.render:
        figures = json.loads(args.render.read_text("utf-8"))
    elif args.home:
        figures = measure(args.home, args.run_json, args.comparison, args.speed)
        (args.out.with_suffix(".json")).write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n", "utf-8")
    else:
        ap.error("give --home (measure) or --render JSON")
    args.out.write_text(render(figures), "utf-8")


if __name__ == "__main__":
    main()
