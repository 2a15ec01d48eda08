"""The Python face of every command, usable without the CLI.

Each function takes a resolved :class:`~ur4rec_cli.settings.Settings` and returns plain data
(dataclasses or dicts). Heavy imports happen inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings


def describe_config(settings: "Settings", config_file: Path | None = None) -> dict[str, Any]:
    """Resolved settings (secrets masked) and where the config file is looked for."""
    from ur4rec_cli.settings import default_config_path

    path = Path(config_file) if config_file is not None else default_config_path()
    return {
        "config_file": str(path),
        "config_file_exists": path.is_file(),
        "home": str(settings.home),
        "settings": settings.public_dict(),
    }


def prepare_data(settings: "Settings", *, force: bool = False) -> dict[str, Any]:
    """Fetch, verify, parse and split the data set into the store; returns the summary dict."""
    from ur4rec_cli.data.prepare import prepare_data as impl

    return impl(settings, force=force)


def list_datasets(settings: "Settings") -> dict[str, Any]:
    """The prepared data sets in the home and which one is current."""
    from ur4rec_cli.data.current import list_datasets as impl

    return impl(settings.home)


def select_dataset(settings: "Settings", name: str | None = None) -> "Settings":
    """Settings for a command that reads a data set: ``name`` if given, else the home's current one."""
    from ur4rec_cli.data.current import select_dataset as impl

    return impl(settings, name)


def dataset_name(settings: "Settings") -> str:
    """Store name of the data set these settings read (what every result names)."""
    from ur4rec_cli.data.prepare import dataset_name as impl

    return impl(settings.data)


def generate_texts(settings: "Settings", **kwargs: Any) -> dict[str, Any]:
    """Write item descriptions and user-preference texts (LLM or template), then embed them."""
    from ur4rec_cli.features.llm.texts import generate_texts as impl

    return impl(settings, **kwargs)


def extract_clip_features(settings: "Settings", **kwargs: Any) -> dict[str, Any]:
    """CLIP features for every item (image, else text fallback); returns the provenance counts."""
    from ur4rec_cli.features.images.clip import extract_clip_features as impl

    return impl(settings, **kwargs)


def train(settings: "Settings", **kwargs: Any) -> dict[str, Any]:
    """Train one stage or all four; returns per-stage summaries. On a data set the fixed schedule was not
    tuned on, `--stage all` runs the epoch counts validation chooses (training/epoch_rule.py)."""
    from ur4rec_cli.training.epoch_rule import train as impl

    return impl(settings, **kwargs)


def evaluate(settings: "Settings", **kwargs: Any) -> dict[str, Any]:
    """Metrics of a trained stage under the configured protocol."""
    from ur4rec_cli.evaluation.run import evaluate as impl

    return impl(settings, **kwargs)


def add_items(settings: "Settings", path: Any, text: str = "auto") -> dict[str, Any]:
    """`items add`: the items of a u.item or CSV file, scored by the run's content path, appended to its index
    (``text``: "auto", descriptions made as the run's own item texts were, or "template")."""
    from ur4rec_cli.serving.new_items import add_items as add

    return add(settings, path, text)


def recommend(settings: "Settings", **kwargs: Any) -> dict[str, Any]:
    """Top-N items for a user from the exported index (numpy only), or for a history of item ids
    (``history``: raw item ids, a list or "50,172,181", of a user outside the data set, through the
    trained encoder; imports torch); ``new``: only items new to the model (the new-items shelf)."""
    history = kwargs.pop("history", None)
    if history is not None:
        from ur4rec_cli.serving.history import recommend_history

        return recommend_history(settings, history, top=kwargs.get("top", 10), new=kwargs.get("new", False))
    from ur4rec_cli.serving.recommend import recommend as impl

    return impl(settings, **kwargs)
