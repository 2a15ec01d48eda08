"""`ur4rec recommend`: top-N unseen items for a user from the exported index (numpy, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ur4rec_cli.cli._common import DatasetOpt, JsonOpt, app_context


def command(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Raw user id as in the source data (e.g. 42).", show_default=False)] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many items.")] = 10,
    explain: Annotated[
        bool, typer.Option("--explain", help="Add the user's modality and expert gate weights and each item's strongest modality.")
    ] = False,
    all_users: Annotated[bool, typer.Option("--all", help="Every user's top N into --output FILE (JSON lines).")] = False,
    output: Annotated[Path | None, typer.Option("--output", help="File for --all.", show_default=False)] = None,
    run: Annotated[str | None, typer.Option("--run", help="Run folder [default: main].", show_default=False)] = None,
    dataset: DatasetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.console import emit_json, info

    settings = app_context(ctx).dataset_settings({"train": {"run": run}}, dataset)
    result = {"dataset": api.dataset_name(settings), **api.recommend(settings, user=user, top=top, explain=explain, all_users=all_users, output=output)}
    if all_users:
        info(f"wrote the top {result['top']} of {result['users']:,} users to {result['output']} ({result['seconds']:.2f} s)")
        if json_out:
            emit_json(result)
        return
    if json_out:
        emit_json(result)
        return
    print_result(result, explain)


def print_result(result: dict[str, Any], explain: bool) -> None:
    """Rank, item id, title, year, genres, score (and the strongest modality with --explain)."""
    from rich.table import Table

    from ur4rec_cli.console import out

    out.print(
        f"user {result['user']} of {result.get('dataset', '?')} ({result['history']} items seen, never recommended)"
        f" - stage {result['stage'] or '?'}",
        markup=False,
    )
    # One line per item in 80 columns: long titles and genre lists are cut here (--json has them whole).
    title_w, genres_w = (26, 0) if explain else (28, 18)
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("rank", "right"), ("item", "right"), ("title", "left"), ("year", "right"), ("genres", "left"), ("score", "right")):
        if name != "genres" or genres_w:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
    if explain:
        table.add_column("top modality")
    for row in result["items"]:
        cells = [
            str(row["rank"]),
            str(row["item_id"]),
            _cut(row["title"] or "", title_w),
            "" if row["year"] is None else str(row["year"]),
        ]
        if genres_w:
            cells.append(_cut(", ".join(row["genres"]), genres_w))
        cells.append(f"{row['score']:.4f}")
        if explain:
            top = row.get("top_modality")
            cells.append(f"{top} ({row['contributions'][top]:+.3f})" if top else "-")
        table.add_row(*cells)
    out.print(table)
    if explain:
        gates = result.get("explain", {})
        if gates.get("modality"):
            out.print("modality gates: " + ", ".join(f"{m} {w:.3f}" for m, w in gates["modality"].items()), markup=False)
        for m, ws in gates.get("experts", {}).items():
            out.print(f"  {m} experts: " + ", ".join(f"{w:.3f}" for w in ws), markup=False)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
