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
    for line in to_toml(report):
        out.print(line, markup=False, soft_wrap=True)


_SECRETS = {("llm", "api_key"), ("clip", "tmdb_api_key")}


def to_toml(report: dict) -> list[str]:
    """The resolved settings as a valid TOML file: unset values and secrets as comments."""
    import json

    found = "found" if report["config_file_exists"] else "not found"
    lines = [
        f"# config file: {report['config_file']} ({found})",
        f"# home: {report['home']}",
        "# precedence: flags > UR4REC_* environment (nested with __) > config file > defaults",
    ]
    for section, values in report["settings"].items():
        if not isinstance(values, dict):
            continue
        lines += ["", f"[{section}]"]
        for key, value in values.items():
            if (section, key) in _SECRETS:
                lines.append(f"# {key} = ... (secret: {'set' if value else 'not set'}; never printed)")
            elif value is None:
                lines.append(f"# {key} = (not set)")
            else:
                # JSON strings, numbers, booleans and flat arrays are valid TOML values.
                lines.append(f"{key} = {json.dumps(value)}")
    return lines
