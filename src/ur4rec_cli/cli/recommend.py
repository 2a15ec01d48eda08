"""`ur4rec recommend` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def command(ctx: typer.Context) -> None:
    raise typer.Exit(1)
