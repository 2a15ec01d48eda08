"""One Rich console for humans (stderr) and a plain channel for machine output (stdout); the one
progress factory (a bar on a terminal, a plain line every 30 s off one) and third-party bars kept quiet."""

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


HEARTBEAT_S = 30.0  # off a terminal, a long step prints where it is at least this often


def make_progress(transient: bool = True):
    """A Rich progress bar on the stderr console; off a terminal (a log file, CI) no bar is drawn and
    each task prints one plain line at least every 30 s instead (done/total, its status, time left)."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Progress(Progress):
        def __init__(self, *columns: Any, **kw: Any) -> None:
            super().__init__(*columns, **kw)
            self._last: dict[Any, float] = {}

        def update(self, task_id: Any, **kw: Any) -> None:
            super().update(task_id, **kw)
            self._heartbeat(task_id)

        def advance(self, task_id: Any, advance: float = 1) -> None:
            super().advance(task_id, advance)
            self._heartbeat(task_id)

        def _heartbeat(self, task_id: Any) -> None:
            if not self.disable or _state["quiet"]:
                return
            now = time.monotonic()
            last = self._last.setdefault(task_id, now)
            if last < 0:  # its final line is out
                return
            task = self._tasks[task_id]
            elapsed = task.elapsed or 0.0
            done = task.total is not None and task.completed >= task.total
            # Every 30 s, and once at the end of a task that ran that long (its final count).
            if now - last < HEARTBEAT_S and not (done and elapsed >= HEARTBEAT_S):
                return
            self._last[task_id] = -1.0 if done else now
            total = f"/{task.total:,.0f}" if task.total is not None else ""
            line = f"{task.description}: {task.completed:,.0f}{total}, {elapsed:.0f} s elapsed"
            if task.time_remaining is not None and not done:
                line += f", about {duration(task.time_remaining)} left"
            status = task.fields.get("status")
            info(line + (f" · {status}" if status else ""))

    return _Progress(
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
