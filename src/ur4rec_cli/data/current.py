"""Which prepared data set the later commands read: chosen once by `ur4rec data`, recorded in the home.

Precedence, highest first: ``--dataset NAME`` on the command; data settings the user configured
(``UR4REC_DATA__*`` or the TOML file's ``[data]``); the home's current data set (the last one
`ur4rec data` prepared or served); the default (ML-100K). ``data.noun`` describes a prepared data
set and picks none: set alone, the current one is read, with the noun carried over so that loading
it compares the two (data/prepare.py: a mismatch is one line, never a silently ignored setting).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ur4rec_cli.errors import ConfigError
from ur4rec_cli.store import ArtifactStore, atomic_write_json

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings

CURRENT_FILE = "current-dataset.json"
DESCRIBING = frozenset({"noun"})  # data settings that describe a prepared data set without choosing one


def record_current(home: Path, name: str) -> None:
    """Make ``name`` the home's current data set."""
    atomic_write_json(Path(home).expanduser() / CURRENT_FILE, {"dataset": name})


def current_name(home: Path) -> str | None:
    """The home's current data set, or None when none was recorded (or the record is unreadable)."""
    try:
        name = json.loads((Path(home).expanduser() / CURRENT_FILE).read_text("utf-8"))["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and name else None


def prepared_datasets(home: Path) -> list[dict[str, Any]]:
    """Every data set artifact in the home (sorted by name), with its counts and source."""
    store = ArtifactStore(home)
    root = store.home / "datasets"
    found: list[dict[str, Any]] = []
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        man = store.load(folder, kind="dataset", verify=False)
        if man is None:
            continue
        try:
            summary = json.loads((folder / "summary.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        found.append({
            "name": folder.name,
            "source": man.extra.get("source", ""),
            "users": summary.get("users"),
            "items": summary.get("items"),
            "interactions": summary.get("interactions"),
            "created": man.created,
            "path": str(folder),
        })
    return found


def list_datasets(home: Path) -> dict[str, Any]:
    """What `ur4rec data --list` prints: the prepared data sets and which one is current."""
    current = current_name(home)
    rows = prepared_datasets(home)
    for row in rows:
        row["current"] = row["name"] == current
    return {"home": str(Path(home).expanduser()), "current": current, "datasets": rows}


def select_dataset(settings: "Settings", requested: str | None = None) -> "Settings":
    """Settings whose data section names the data set this command reads (see the module doc)."""
    home = settings.home
    prepared = {row["name"]: row for row in prepared_datasets(home)}
    if requested is not None:
        name = requested.strip()
        if name not in prepared:
            raise ConfigError(f"no prepared data set {name!r} in {Path(home).expanduser()}; {_choices(prepared)}")
    elif _configured(settings):
        return settings  # data settings from env or TOML: they win over the home's record
    else:
        name = current_name(home) or ""
        if name not in prepared:
            return settings  # nothing recorded (or it was deleted): the configured default
    return settings.model_copy(update={"data": _data_config_of(settings, name)})


def _configured(settings: "Settings") -> bool:
    """True when env or TOML gave a data setting that chooses a data set a value other than its default."""
    fields = type(settings.data).model_fields
    chosen = settings.data.model_fields_set - DESCRIBING
    return any(getattr(settings.data, f) != fields[f].get_default(call_default_factory=True) for f in chosen)


def _data_config_of(settings: "Settings", name: str) -> Any:
    """The data settings the artifact was made with, so that a rebuild would make the same data set."""
    from ur4rec_cli.settings import DataConfig

    man = ArtifactStore(settings.home).load(ArtifactStore(settings.home).dataset_dir(name), kind="dataset", verify=False)
    recorded = dict((man.settings if man is not None else {}).get("data") or {})
    recorded["name"] = name
    recorded |= {f: getattr(settings.data, f) for f in DESCRIBING & settings.data.model_fields_set}  # checked on load, not dropped
    try:
        return DataConfig(**recorded)
    except (ValueError, TypeError):  # written by another version: keep the name, the rest configured
        return settings.data.model_copy(update={"name": name})


def _choices(prepared: dict[str, Any]) -> str:
    if not prepared:
        return "none is prepared yet: run `ur4rec data` (or `ur4rec data --source PATH`) first"
    return "prepared: " + ", ".join(sorted(prepared)) + " (`ur4rec data --list` shows them)"
