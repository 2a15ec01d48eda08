"""`ur4rec config`: the resolved settings and where they come from."""

from __future__ import annotations

import typer

from ur4rec_cli.cli._common import JsonOpt, app_context


def command(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.console import emit_json, out

    app = app_context(ctx)
    report = api.describe_config(app.settings(), app.config_file)
    if json_out:
        emit_json(report)
        return
    out.print(f"config file: {report['config_file']} ({'found' if report['config_file_exists'] else 'not found'})", markup=False)
    out.print(f"home: {report['home']}", markup=False)
    out.print("precedence: flags > UR4REC_* environment (nested with __) > config file > defaults", markup=False)
    for section, values in report["settings"].items():
        if not isinstance(values, dict):
            continue
        out.print(f"[{section}]", markup=False)
        for key, value in values.items():
            out.print(f"{key} = {value!r}", markup=False)
