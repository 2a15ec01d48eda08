"""Shared CLI plumbing: the application object in ctx.obj, shared option aliases, output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings


@dataclass
class AppContext:
    """Global options of one invocation; commands build settings through it."""

    home: Path | None = None
    config_file: Path | None = None
    quiet: bool = False
    debug: bool = False

    def settings(self, overrides: dict[str, Any] | None = None) -> "Settings":
        """Resolve settings: flags the user set > env > TOML > defaults; --home beats UR4REC_HOME."""
        from ur4rec_cli.settings import load_settings

        merged = dict(overrides or {})
        if self.home is not None:
            merged["home"] = self.home
        return load_settings(self.config_file, merged)

    def dataset_settings(self, overrides: dict[str, Any] | None = None, dataset: str | None = None) -> "Settings":
        """Settings of a command that reads a data set: ``--dataset`` if given, else the home's current one."""
        from ur4rec_cli import api

        return api.select_dataset(self.settings(overrides), dataset)


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):  # invoked without the root callback (tests of one command)
        obj = AppContext()
        ctx.find_root().obj = obj
    return obj


# Shared option aliases ---------------------------------------------------------------------
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout; human output goes to stderr.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild even when a valid artifact exists.")]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="A prepared data set by name (`ur4rec data --list`). [default: the one `ur4rec data` prepared last]",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps.", show_default=False)
]
