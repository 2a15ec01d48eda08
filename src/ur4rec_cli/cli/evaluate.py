"""`ur4rec evaluate`: HR@k, NDCG@k and MRR of a trained stage or a baseline, printed beside the protocol,
with the per-slice table and (``--compare``) every stage against popularity and the stage before."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ur4rec_cli.cli._common import DatasetOpt, JsonOpt, app_context

KHelp = "Cutoffs for HR@k and NDCG@k: one or more values after one flag, e.g. --k 5 10 20 (also --k 5,10,20)."


def parse_ks(first: str | None, extra: list[str] | None) -> list[int] | None:
    """The --k values: the option's own value plus the bare values Click left after it."""
    from ur4rec_cli.errors import ConfigError

    if first is None:
        if extra:
            raise ConfigError(f"unexpected argument {extra[0]!r} (cutoffs go after --k, e.g. --k 5 10 20)")
        return None
    values: list[int] = []
    for token in [first, *(extra or [])]:
        for part in token.replace(",", " ").split():
            try:
                value = int(part)
            except ValueError:
                raise ConfigError(f"--k: {part!r} is not an integer (e.g. --k 5 10 20)") from None
            if value < 1:
                raise ConfigError(f"--k: every cutoff must be a positive integer, got {value}")
            values.append(value)
    if not values:
        raise ConfigError("--k needs at least one positive integer (e.g. --k 5 10 20)")
    return sorted(set(values))


def command(
    ctx: typer.Context,
    k: Annotated[str | None, typer.Option("--k", metavar="K [K ...]", help=KHelp, show_default=False)] = None,
    split: Annotated[str | None, typer.Option("--split", help="test (default) or valid.", show_default=False)] = None,
    protocol: Annotated[
        str | None,
        typer.Option("--protocol", help="full (default: rank every unseen item) or sampled (target + N negatives).", show_default=False),
    ] = None,
    negatives: Annotated[
        int | None, typer.Option("--negatives", help="Negatives per user for --protocol sampled [default: 100].", show_default=False)
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Stage to evaluate [default: the final stage]; 'popularity', 'content_knn' or 'late_fusion' (stage-1 SASRec + eval.fusion_weight x content-KNN) for a baseline.", show_default=False),
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Run folder [default: main].", show_default=False)] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps.", show_default=False)] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write one JSON line per user: user, target, rank (0-based), candidates.", show_default=False),
    ] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Popularity and every trained stage in one table, same protocol.")] = False,
    chart: Annotated[
        Path | None,
        typer.Option("--chart", help="Also write a PNG bar chart of HR@10, NDCG@10 and MRR per model (needs matplotlib).", show_default=False),
    ] = None,
    dataset: DatasetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.console import emit_json, info

    # Values after the first one of `--k 5 10 20` arrive as extra arguments (the command allows them).
    ks = parse_ks(k, list(ctx.args))
    settings = app_context(ctx).dataset_settings(
        {
            "eval": {"k": ks, "split": split, "protocol": protocol, "negatives": negatives},
            "train": {"run": run, "device": device},
        },
        dataset,
    )
    result = {"dataset": api.dataset_name(settings), **api.evaluate(settings, stage=stage, output=output, compare=compare)}
    if output is not None:
        info(f"wrote {result['users']} per-user ranks to {output}")
    if chart is not None:
        _write_chart(result, chart)
    if json_out:
        emit_json(result)
        return
    print_result(result)


def _write_chart(result: dict[str, Any], path: Path) -> None:
    """A grouped bar chart of the compare rows (or the one evaluated model)."""
    from ur4rec_cli.console import info, warn
    from ur4rec_cli.training.curves import write_bar_chart

    rows = result.get("compare") or [{"name": result["stage"], "metrics": result["metrics"]}]
    metrics = [m for m in ("HR@10", "NDCG@10", "MRR") if m in result["metrics"]]
    title = f"{result['protocol']} ranking, {result['split']} split, {result['users']:,} users"
    if write_bar_chart({row["name"]: row["metrics"] for row in rows}, metrics, path, title):
        info(f"wrote bar chart {path}")
    else:
        warn(f"no chart written to {path}: matplotlib is not installed (pip install 'ur4rec[plot]')")


def print_result(result: dict[str, Any]) -> None:
    """The metrics table with the protocol, split, users, candidates, stage and checkpoint beside it."""
    from ur4rec_cli.console import out

    cand = result["candidates"]
    if result["protocol"] == "full":
        cand_text = f"all items not in the fed history (~{cand['median']:,}; {cand['min']:,}..{cand['max']:,})"
    else:
        cand_text = f"{cand['max']} (target + {result['negatives']} sampled negatives, seed {result['seed']})"
    for label, value in (
        ("dataset", result.get("dataset", "?")),
        ("protocol", result["protocol"]),
        ("split", result["split"]),
        ("users", f"{result['users']:,}"),
        ("candidates", cand_text),
        ("stage", result["stage"]),
        ("checkpoint", result["checkpoint"] or "-"),
    ):
        out.print(f"{label:<11} {value}", markup=False, soft_wrap=True)
    out.print(result["description"], markup=False, soft_wrap=True)

    # Plain aligned lines rather than a Rich table: a table is cut to the terminal (or 80 columns
    # in a pipe), and every number here must stay whole.
    keys = list(result["metrics"])
    rows = result.get("compare") or [{"name": result["stage"], "metrics": result["metrics"]}]
    name_w = max(5, *(len(row["name"]) for row in rows))
    header = ["model".ljust(name_w), *(key.rjust(max(7, len(key))) for key in keys)]
    if "compare" in result:
        cut = next((row["vs_popularity"]["metric"] for row in rows if row.get("vs_popularity")), "NDCG@10")
        header.append(f"Δ{cut} vs popularity [95% CI]")
    lines = ["  ".join(header)]
    notes: list[str] = []
    for i, row in enumerate(rows):
        cells = [row["name"].ljust(name_w), *(f"{row['metrics'][key]:.4f}".rjust(max(7, len(key))) for key in keys)]
        if "compare" in result:
            ci = row.get("vs_popularity")
            cells.append(f"{ci['mean_diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]" if ci else "-")
            same = _same_as_earlier(rows, i)
            if same is not None:
                cells.append("(=)")
                notes.append(
                    f"(=) {row['name']} ranks exactly like {same}: no epoch of it beat its start on validation, "
                    "so it kept the weights it started from"
                )
        lines.append("  ".join(cells))
    lines.insert(1, "-" * len(lines[0]))
    steps = [row for row in rows if row.get("vs_previous")]
    if steps:
        notes.append(f"stage over the stage before it, one run ({steps[0]['vs_previous']['metric']}, paired 95% CI over users):")
        for row in steps:
            v = row["vs_previous"]
            verdict = "no evidence either way" if v["low"] <= 0 <= v["high"] else ("better" if v["low"] > 0 else "worse")
            notes.append(f"  {row['name']} - {v['previous']}: {v['mean_diff']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}] ({verdict})")
        notes.append("  a CI that spans zero: this run cannot tell the two apart (docs/benchmarks.md pairs them over 3 seeds)")
    for line in [*lines, *notes, *_slice_lines(result), *_cold_lines(result)]:
        out.print(line, markup=False, soft_wrap=True)


def _cold_lines(result: dict[str, Any]) -> list[str]:
    """The cold test cases of a cold-item variant, among every item and on the new-items shelf: one
    line per model (every model of --compare)."""
    rows = [r for r in (result.get("compare") or [{"name": result["stage"], **result}]) if r.get("cold")]
    if not rows:
        return []
    keys = list(rows[0]["cold"]["metrics"])
    name_w = max(5, *(len(r["name"]) for r in rows))
    lines: list[str] = []
    for title, pick in (("cold items", lambda r: r["cold"]), ("new-items shelf", lambda r: r["cold"].get("shelf"))):
        if pick(rows[0]) is None:
            continue
        lines += ["", f"{title}, {pick(rows[0])['cases']:,} cases: {pick(rows[0])['description']}"]
        lines.append("  ".join(["model".ljust(name_w), *(key.rjust(max(7, len(key))) for key in keys)]))
        for r in rows:
            lines.append("  ".join([r["name"].ljust(name_w), *(f"{pick(r)['metrics'][key]:.4f}".rjust(max(7, len(key))) for key in keys)]))
    return lines


def _slice_lines(result: dict[str, Any]) -> list[str]:
    """The metrics per slice at one cutoff (10 when asked for), in 80 columns; --json has every metric."""
    slices = result.get("slices")
    if not slices:
        return []
    k = 10 if 10 in result["k"] else result["k"][0]
    keys = [f"HR@{k}", f"NDCG@{k}", "MRR"]
    titles = {"target_popularity": "by the target item's training interactions", "history_length": "by the length of the fed history"}
    lines = [""]
    for cut, rows in slices.items():
        lines.append(f"{titles.get(cut, cut)} ({result['stage']}):")
        lines.append(f"  {'slice':<16}{'cases':>7}" + "".join(f"{key:>10}" for key in keys))
        for row in rows:
            m = row["metrics"]
            lines.append(f"  {row['slice']:<16}{row['cases']:>7,}" + "".join(f"{m[key]:>10.4f}" if m else f"{'-':>10}" for key in keys))
    return lines


def _same_as_earlier(rows: list[dict[str, Any]], i: int) -> str | None:
    """The earlier trained stage whose metrics equal row i's (a stage that kept its start weights)."""
    from ur4rec_cli.settings import STAGES

    prev = rows[i - 1] if i else None
    if prev is None or rows[i]["name"] not in STAGES or prev["name"] not in STAGES:  # baselines have no predecessor
        return None
    return prev["name"] if prev["metrics"] == rows[i]["metrics"] else None
