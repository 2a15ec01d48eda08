"""What is wrong with a setting, in one line: an unknown variable, a bad value (naming the flag,
variable or config file that gave it, with a guess for a typo), a list given in the environment
as plain text. ``settings.load_settings`` raises these as ``ConfigError``, passing its ``Settings``
model in (this module never imports ``settings``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ur4rec_cli.errors import ConfigError


def check_unknown_env(model: Any, extras: set[str]) -> None:
    """An ``UR4REC_*`` variable that names no setting of ``model`` (nor one of ``extras``) is an error."""
    fields = {f"UR4REC_{name.upper()}" for name in model.model_fields}
    for var in os.environ:
        if not var.startswith("UR4REC_") or var in extras:
            continue
        top = var.split("__", 1)[0]
        if top not in fields:
            raise ConfigError(f"unknown environment variable {var} (no such setting)")


def describe_error(err: Any, config_path: Path | None, overrides: dict[str, Any], root: Any) -> str:
    """One line naming the setting, where it was given (flag, variable or file) and, for a typo, a guess."""
    import difflib

    loc = tuple(str(p) for p in err.get("loc", ()))
    dotted = ".".join(loc) or "?"
    env_var = "UR4REC_" + "__".join(p.upper() for p in loc)
    node: Any = overrides
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
    if node is not None:
        where = " (from a command-line flag)"
    elif env_var in os.environ:
        where = f" (environment variable {env_var})"
    elif config_path is not None:
        where = f" (config file {config_path})"
    else:
        where = ""
    if err.get("type") == "extra_forbidden":
        model: Any = root
        for part in loc[:-1]:
            field = model.model_fields.get(part)
            model = field.annotation if field is not None else None
        known = list(getattr(model, "model_fields", {}))
        guess = difflib.get_close_matches(loc[-1] if loc else "", known, n=1)
        hint = f"; did you mean {'.'.join((*loc[:-1], guess[0]))}?" if guess else (f"; known: {', '.join(known)}" if known else "")
        return f"unknown setting {dotted}{where}{hint}"
    return f"invalid setting {dotted}: {err.get('msg', 'invalid')}{where}"


def env_parse_error(message: str, root: Any) -> str | None:
    """pydantic-settings could not decode an environment variable (a list setting given as plain
    text): the line names the variable and the form it takes, not the config file."""
    import json
    import re

    m = re.search(r'field "(\w+)" from source "EnvSettingsSource"', message)
    if m is None:
        return None
    prefix = f"UR4REC_{m.group(1).upper()}__"
    section = root.model_fields.get(m.group(1))
    fields = getattr(section.annotation, "model_fields", {}) if section is not None else {}
    for var, value in sorted(os.environ.items()):
        field = fields.get(var[len(prefix) :].lower()) if var.startswith(prefix) else None
        if field is None or getattr(field.annotation, "__origin__", None) is not list:
            continue
        try:
            json.loads(value)
        except ValueError:
            items = [int(p) if p.strip().lstrip("-").isdigit() else p.strip() for p in value.split(",") if p.strip()]
            if items:
                return f"invalid environment variable {var}={value!r}: a list setting is written as JSON, e.g. {var}='{json.dumps(items)}'"
    return f"invalid environment variable under {prefix}*: {message}"
