"""`ur4rec data`: fetch, verify and split the data set, then print its summary."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ur4rec_cli.cli._common import ForceOpt, JsonOpt, app_context


def command(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="auto | grouplens | mirror | PATH (ml-100k.zip or its folder, ML-1M zip/folder, RecBole atomic files). [default: auto]",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="ml-100k | ml-1m: which release grouplens downloads. [default: ml-100k]", show_default=False),
    ] = None,
    min_rating: Annotated[
        float | None,
        typer.Option("--min-rating", help="Keep only ratings >= R (default: every rating counts).", show_default=False),
    ] = None,
    cold_items: Annotated[
        float | None,
        typer.Option(
            "--cold-items",
            help="Cold-item protocol: hold this share of the interacted items (e.g. 0.2) out of training and validation; "
            "every interaction with one becomes a test case (docs/evaluation.md). [default: 0, off]",
            show_default=False,
        ),
    ] = None,
    cold_seed: Annotated[
        int | None, typer.Option("--cold-seed", help="Seed of the cold-item draw. [default: 0]", show_default=False)
    ] = None,
    noun: Annotated[
        str | None,
        typer.Option("--noun", help="What the items are, in every text (movie, product, book, ...). [default: from the data set]", show_default=False),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Name of the dataset artifact (default: derived from the source).", show_default=False),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the prepared data sets and which one later commands use; prepares nothing.")
    ] = False,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.console import emit_json

    if list_:
        listing = api.list_datasets(app_context(ctx).settings())
        emit_json(listing) if json_out else _print_list(listing)
        return
    overrides = {"data": {"source": source, "dataset": dataset, "min_rating": min_rating, "name": name,
                          "cold_items": cold_items, "cold_seed": cold_seed, "noun": noun}}  # fmt: skip
    settings = app_context(ctx).settings(overrides)
    summary = api.prepare_data(settings, force=force)
    if json_out:
        emit_json(summary)
    else:
        _print_table(summary)


def _print_table(s: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from ur4rec_cli.console import out

    table = Table(title=f"dataset {s['name']}", show_header=False, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rows = [
        ("users", f"{s['users']:,}"),
        ("items", f"{s['items']:,}"),
        ("interactions", f"{s['interactions']:,}"),
        ("density", f"{s['density']:.4%}"),
        (
            "sequence length min/median/mean/max",
            f"{s['seq_len_min']} / {s['seq_len_median']:g} / {s['seq_len_mean']:.1f} / {s['seq_len_max']}",
        ),
        ("train interactions", f"{s['train_interactions']:,}"),
        ("valid users / test users", f"{s['valid_users']:,} / {s['test_users']:,}"),
        ("train-only users (< 3 interactions)", f"{s.get('train_only_users', s['users'] - s['valid_users']):,}"),
        *([("cold items / cold test cases", f"{s['cold_items']:,} / {s['cold_cases']:,} (share {s['cold_share']:g}, seed {s['cold_seed']})")]
          if "cold_items" in s else []),
        *([("items are", f"{s['noun']} (--noun or data.noun sets it)")] if "noun" in s else []),
        *([("feedback", "explicit (a rating column)" if s["feedback"] == "explicit" else "implicit (no rating column: no rating is said)")]
          if "feedback" in s else []),
        *((f"item column {col}", role) for col, role in (s.get("item_columns") or {}).items()),
        ("source", str(s["source"])),
        ("cached", "yes" if s["cached"] else "no"),
        ("path", str(s["path"])),
    ]
    for key, value in rows:
        table.add_row(Text(key), Text(value))  # Text: a path (or column) with [brackets] is not markup
    out.print(table)
    out.print(Text(f"later commands (llm, clip, train, evaluate, recommend) now use {s['name']}; --dataset NAME picks another"))


def _print_list(listing: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from ur4rec_cli.console import out

    if not listing["datasets"]:
        out.print(Text(f"no data set is prepared in {listing['home']}: run `ur4rec data`"))
        return
    table = Table(title=f"data sets in {listing['home']}", title_justify="left")
    for col, justify in (("", "left"), ("name", "left"), ("users", "right"), ("items", "right"), ("interactions", "right"), ("source", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in listing["datasets"]:
        table.add_row(
            "*" if row["current"] else "",
            Text(row["name"]),
            f"{row['users']:,}" if row["users"] is not None else "?",
            f"{row['items']:,}" if row["items"] is not None else "?",
            f"{row['interactions']:,}" if row["interactions"] is not None else "?",
            Text(str(row["source"])),
        )
    out.print(table)
    out.print("* = current: the data set llm, clip, train, evaluate and recommend use unless given --dataset NAME")
