"""One writer per run folder: `train` holds ``<run>/.lock`` while it writes checkpoints and the index.

The lock is an advisory ``flock`` on the file (released by the kernel when the holder exits, even
killed, so a crash never leaves a stale lock), and the file says who holds it (pid, host, command,
start time) so that a second writer is refused with one line naming the holder. Readers
(`evaluate`, `recommend`) take no lock: every artifact is written to a temporary folder and
renamed into place (store.py), so they see the old index or the new one, never half of one.
Where ``fcntl`` does not exist (Windows) the file is created exclusively instead, and a lock whose
holder is no longer running on this host is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ur4rec_cli.errors import BusyError

LOCK_NAME = ".lock"


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('command', '?')}, since {started})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@contextmanager
def run_lock(folder: Path, command: str, what: str) -> Iterator[None]:
    """Hold the writer's lock of ``folder`` (created if missing) for the block; ``what`` names it in the refusal."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BusyError(f"{what} is being written by {_describe(_holder(path))}; wait for it to finish, or use another --run") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(me).encode())
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    while True:  # pragma: no cover - Windows
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            holder = _holder(path)
            if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                path.unlink(missing_ok=True)
                continue
            raise BusyError(f"{what} is being written by {_describe(holder)}; wait for it to finish, or use another --run") from None
    try:
        os.write(fd, json.dumps(me).encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)


def command_line() -> str:
    """What this process was started as, for the lock file ("ur4rec train --stage all")."""
    words = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
    return " ".join(words)[:200]
