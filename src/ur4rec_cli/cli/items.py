"""`ur4rec items add FILE`: new items into a trained run's index, scored from their content (serving/new_items.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ur4rec_cli.cli._common import DatasetOpt, JsonOpt, app_context

app = typer.Typer(help="Items that arrived after training.", no_args_is_help=True, add_completion=False)


@app.command("add")
def add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The data set's item format (u.item) or a CSV with title, year, genres (item_id, poster optional).", show_default=False)],
    run: Annotated[str | None, typer.Option("--run", help="Run folder [default: main].", show_default=False)] = None,
    text: Annotated[str, typer.Option("--text", help="New items' descriptions: auto (as the run's own item texts were made: template or the same LLM) or template.")] = "auto",
    dataset: DatasetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Score new items with the run's content path and append them to its index (`recommend` can return them)."""
    from ur4rec_cli import api
    from ur4rec_cli.console import emit_json, info

    settings = app_context(ctx).dataset_settings({"train": {"run": run}}, dataset)
    result = api.add_items(settings, file, text)
    if json_out:
        emit_json(result)
        return
    shown = ", ".join(result["added"][:10]) + (f" and {len(result['added']) - 10} more" if len(result["added"]) > 10 else "")
    info(f"added {len(result['added'])} item(s){': ' + shown if shown else ''}; {result['skipped']} already in the index; "
         f"{result['items_in_index']:,} items in {result['index']}")  # fmt: skip
    if result.get("text"):
        info(f"new items' text: {result['text']}")
