"""SIGTERM as a polite stop: the same path as Ctrl-C, exit 143.

``cli.main`` installs ``handle_sigterm`` for the length of a command. SIGTERM (what Slurm, Kubernetes,
systemd and ``timeout`` send before they kill) then raises ``Terminated``, a KeyboardInterrupt, where
Ctrl-C would raise its own: every command's interrupt handling (``train``'s resume hint, ``llm``'s
cache note) runs unchanged. Inside ``deferred()`` (renaming an artifact into place) the stop waits
for the block's end. Under torchrun, the launcher forwards the signal to every rank.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

EXIT_CODE = 143  # 128 + SIGTERM, what shells and schedulers expect of a process stopped by it


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised where Ctrl-C's KeyboardInterrupt would be."""


_state = {"received": False, "pending": False, "depth": 0}


def received() -> bool:
    """Whether SIGTERM reached this process during the current command."""
    return bool(_state["received"])


def _handler(signum: int, frame: Any) -> None:
    _state["received"] = True
    if _state["depth"]:
        _state["pending"] = True  # inside deferred(): raised when the block ends
        return
    raise Terminated()


@contextmanager
def handle_sigterm() -> Iterator[None]:
    """SIGTERM raises Terminated within the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.update(received=False, pending=False, depth=0)
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred() -> Iterator[None]:
    """A SIGTERM that arrives within the block stops the command right after it, not inside it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # the handler runs in the main thread only: nothing to defer here
        return
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"]:
            _state["pending"] = False
            raise Terminated()
