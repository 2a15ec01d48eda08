"""`ur4rec recommend`: top-N unseen items for a user from the exported index (numpy, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ur4rec_cli.cli._common import DatasetOpt, JsonOpt, app_context


def command(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Raw user id as in the source data (e.g. 42).", show_default=False)] = None,
    history: Annotated[
        str | None,
        typer.Option("--history", help="Someone not in the data set: raw item ids, oldest first (e.g. 50,172,181); runs the trained encoder.", show_default=False),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many items.")] = 10,
    explain: Annotated[
        bool, typer.Option("--explain", help="Split each score into the parts that add up to it (sequence model, each modality) and show the user's gate weights.")
    ] = False,
    new: Annotated[
        bool,
        typer.Option("--new", help="Only new items: those added after training (items add) or without any interaction in the data set (cold items)."),
    ] = False,
    all_users: Annotated[bool, typer.Option("--all", help="Every user's top N into --output FILE (JSON lines).")] = False,
    output: Annotated[Path | None, typer.Option("--output", help="File for --all.", show_default=False)] = None,
    run: Annotated[str | None, typer.Option("--run", help="Run folder [default: main].", show_default=False)] = None,
    dataset: DatasetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.console import emit_json, info
    from ur4rec_cli.errors import ConfigError

    settings = app_context(ctx).dataset_settings({"train": {"run": run}}, dataset)
    if history is not None:
        if user is not None or all_users or explain:
            raise ConfigError("--history stands alone: not with --user, --all or --explain")
        result = {"dataset": api.dataset_name(settings), **api.recommend(settings, history=history, top=top, new=new)}
    else:
        result = {
            "dataset": api.dataset_name(settings),
            **api.recommend(settings, user=user, top=top, explain=explain, all_users=all_users, output=output, new=new),
        }
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
    """Rank, item id, title, then what the catalogue has (year; brand; genres, else the most
    specific category, else tags), score; with --explain: the score's parts instead of the middle columns."""
    from rich.table import Table

    from ur4rec_cli.console import out

    out.print(
        f"user {result['user']} of {result.get('dataset', '?')} ({result['history']} items seen, never recommended)"
        f" - stage {result['stage'] or '?'}" + (" - new items only" if result.get("new") else ""),
        markup=False,
    )
    rows = result["items"]
    # One line per item in the terminal's width (80 columns in a pipe): long titles and label lists
    # are cut to what is left beside the fixed columns (--json has them whole).
    parts = list(rows[0]["contributions"]) if explain and rows else []
    middle = [] if explain else _middle_columns(rows)
    if explain:
        # rank, item, score and one column per part, each with its 3-character column separator
        fixed = 4 + 5 + 6 + sum(max(7, len(_SHORT.get(p, p)) + 2) for p in parts) + 3 * (4 + len(parts) - 1)
        title_w = max(10, out.width - fixed)
    else:
        # rank, item, score (and year) and the 3-character gaps between all columns
        room = max(46, out.width - (15 + (4 if "year" in middle else 0) + 3 * (3 + len(middle))))
        text_cols = [c for c in middle if c != "year"]
        # The title takes up to 3/5 of the room (less when the titles are short), the other text columns share the rest.
        need = {c: max(len(_shown(r, c)) for r in rows) for c in text_cols}
        title_need = max((len(r["title"] or "") for r in rows), default=0)
        title_w = min(max(28, room * 3 // 5), max(title_need, room - sum(need.values()))) if text_cols else room
        widths, left = {}, room - title_w
        for k, c in enumerate(sorted(text_cols, key=need.__getitem__)):  # the narrowest first, each up to its fair share
            widths[c] = max(10, min(need[c], left // (len(text_cols) - k)))
            left -= widths[c]
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("rank", "right"), ("item", "right"), ("title", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in middle:
        table.add_column(_HEADER.get(name, name), justify="right" if name == "year" else "left")
    table.add_column("score", justify="right")
    for part in parts:
        table.add_column(f"= {_SHORT.get(part, part)}" if part == parts[0] else f"+ {_SHORT.get(part, part)}", justify="right")
    for row in rows:
        cells = [str(row["rank"]), str(row["item_id"]), _cut(row["title"] or "", title_w)]
        for name in middle:
            if name == "year":
                cells.append("" if row.get("year") is None else str(row["year"]))
            else:
                cells.append(_cut(_shown(row, name), widths[name]))
        cells.append(f"{row['score']:.3f}")
        cells += [f"{row['contributions'][p]:+.3f}" for p in parts]
        table.add_row(*cells)
    out.print(table)
    if result.get("user_text"):
        out.print(f"user text: {result['user_text']}", markup=False)
    if explain:
        if parts:
            out.print("score = the sum of its parts, each the dot product of the user's and the item's", markup=False)
            out.print("vectors of that part (seq: SASRec state and item token; the others: a", markup=False)
            out.print("modality's gated experts" + ("; seq1: the frozen stage-1 SASRec" if "stage-1 sequence" in parts else "")
                      + ("; knn: content-KNN's cosine, weighted" if "content-KNN" in parts else "") + "; docs/usage.md)", markup=False)
        gates = result.get("explain", {})
        if gates.get("modality"):
            out.print("modality gates: " + ", ".join(f"{m} {w:.3f}" for m, w in gates["modality"].items()), markup=False)
        for m, ws in gates.get("experts", {}).items():
            out.print(f"  {m} experts: " + ", ".join(f"{w:.3f}" for w in ws), markup=False)


_HEADER = {"categories": "category"}


def _middle_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The columns between title and score: year when an item has one, brand when one has a brand,
    and one label column (genres, else categories, else tags; genres whenever the catalogue has them)."""
    cols = ["year"] if any(r.get("year") is not None for r in rows) else []
    if any(r.get("brand") for r in rows):
        cols.append("brand")
    label = next((k for k in ("genres", "categories", "tags") if any(r.get(k) for r in rows)), None)
    if label is None and rows and "brand" not in rows[0] and "categories" not in rows[0]:
        label = "genres"  # a movie catalogue keeps its genres column, empty or not
    return cols + ([label] if label else [])


def _shown(row: dict[str, Any], name: str) -> str:
    value = row.get(name) or ""
    if name == "categories" and value:
        return str(value[-1])  # a category path: its most specific step
    return ", ".join(value) if isinstance(value, list) else str(value)


_SHORT = {"sequence": "seq", "user_text": "user txt", "item_text": "item txt", "image": "image", "stage-1 sequence": "seq1", "content-KNN": "knn"}


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
