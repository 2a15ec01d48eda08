"""One Rich console for humans (stderr) and a plain channel for machine output (stdout)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from typing import Any, Iterator

from rich.console import Console
from rich.markup import escape

_state = {"quiet": False}
# Human output and progress go to stderr so that stdout carries only results (tables or JSON).
console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")) or None, highlight=False, soft_wrap=True)
# Tables that are a command's result go to stdout unless --json is set.
out = Console(no_color=bool(os.environ.get("NO_COLOR")) or None, highlight=False, soft_wrap=False)


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet
    console.quiet = quiet


def is_quiet() -> bool:
    return _state["quiet"]


def info(message: str) -> None:
    """A status line for humans (stderr); silent under --quiet. Printed literally: ``[plot]`` is text, not markup."""
    console.print(escape(message))


def warn(message: str) -> None:
    """A warning (stderr); shown even under --quiet."""
    quiet = console.quiet
    console.quiet = False
    console.print(f"[yellow]warning:[/yellow] {escape(message)}")
    console.quiet = quiet


def duration(seconds: float) -> str:
    """``42 s``, ``17 min`` or ``3.6 h``: a time for a human to plan around."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def emit_json(obj: Any) -> None:
    """One JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, default=_json_default, sort_keys=False) + "\n")
    sys.stdout.flush()


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal and not under --quiet."""
    return console.is_terminal and not _state["quiet"]


def make_progress(transient: bool = True):
    """A Rich progress bar on the stderr console, disabled when stderr is not a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=transient,
        disable=not progress_enabled(),
    )


@contextlib.contextmanager
def third_party_quiet() -> Iterator[None]:
    """Loading a model without third-party progress bars in another style on our stderr
    (transformers' "Loading weights", the GGUF converter's tqdm): their stderr goes nowhere
    while the model loads; errors still raise."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass
    with contextlib.redirect_stderr(io.StringIO()):
        yield
