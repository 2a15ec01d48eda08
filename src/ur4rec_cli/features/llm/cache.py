"""Append-only JSONL cache of LLM answers: one flushed line per answer as it arrives.

A run killed at any point loses at most the requests in flight: every finished answer is on disk,
and a torn last line (killed mid-write) is skipped on reading, never fatal. A file with such a line
(or a duplicated key) is rewritten atomically, one valid line per key, by :meth:`AnswerCache.repair`
(at the latest before the next append), so the cache on disk stays valid JSONL; an append that
meets a full disk is cut back off (``diskspace.append_line``). Reading alone (a dry run) never writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, TextIO

from ur4rec_cli.diskspace import append_line
from ur4rec_cli.errors import DataError


def cache_key(*, backend: str, model: str, prompt_version: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """sha256 of everything that changes the answer."""
    blob = json.dumps(
        {"backend": backend, "model": model, "prompt_version": prompt_version, "messages": messages, "params": params},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    """The answers of one dataset, keyed by :func:`cache_key`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self.needs_repair = False
        self._fh: TextIO | None = None
        self._read()

    def _read(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DataError(f"cannot read the LLM cache {self.path}: {exc}") from None
        lines = 0
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            lines += 1
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                    raise ValueError("not an answer record")
                self.entries[str(rec["key"])] = rec
            except (ValueError, KeyError, TypeError):
                # A torn or hand-damaged line: that answer is simply asked again.
                self.skipped_lines += 1
        self.needs_repair = bool(self.skipped_lines) or lines != len(self.entries)

    def repair(self) -> None:
        """Replace a damaged file by its valid records, one line per key (temp file + rename)."""
        if not self.needs_repair:
            return
        from ur4rec_cli.store import atomic_write_text

        self.close()
        body = "".join(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n" for rec in self.entries.values())
        try:
            atomic_write_text(self.path, body)
        except OSError as exc:
            raise DataError(f"cannot rewrite the LLM cache {self.path}: {exc}") from None
        self.needs_repair = False

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def append(self, record: dict[str, Any]) -> None:
        """Write one answer as a line and flush it to the OS before returning."""
        if self._fh is None or self._fh.closed:  # closed: a disk-full append (diskspace.append_line)
            self.repair()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()
            self._fh = open(self.path, "a", encoding="utf-8")
            if torn:  # start on a fresh line so the torn one can't swallow this record
                self._fh.write("\n")
        append_line(self._fh, self.path, json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.entries[str(record["key"])] = record

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
