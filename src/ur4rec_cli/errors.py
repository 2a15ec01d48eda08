"""Exception types of the library; the CLI maps each to one line on stderr and an exit code.
An allocation failure from torch becomes a ResourceError naming the setting to lower (``out_of_memory``);
a full disk a DiskFullError naming the path and its free space (``diskspace.py``)."""

from __future__ import annotations


class Ur4recError(Exception):
    """Base class of every error the library raises on purpose."""

    exit_code = 1


class ConfigError(Ur4recError):
    """Settings, flags, environment or config file are invalid."""

    exit_code = 2


class DataError(Ur4recError):
    """A data file is missing, corrupt, truncated or malformed."""

    exit_code = 3


class ChecksumError(DataError):
    """A downloaded or given file does not match its pinned hash."""


class DownloadError(DataError):
    """A source could not be fetched (network, HTTP status, package index)."""


class ArtifactMissingError(Ur4recError):
    """A command needs an artifact that an earlier command should have written."""

    exit_code = 4


class StageOrderError(ArtifactMissingError):
    """A training stage was asked for before its predecessor's checkpoint exists."""


class DeviceError(Ur4recError):
    """The requested device (cuda, mps) is not available."""

    exit_code = 5


class LLMError(Ur4recError):
    """The LLM endpoint refused or failed in a way retrying cannot fix."""

    exit_code = 6


class WeightsError(Ur4recError):
    """Model weights (CLIP, sentence-transformers) cannot be found or loaded."""

    exit_code = 7


class UnknownUserError(Ur4recError):
    """A user id that the dataset does not contain."""

    exit_code = 8


class UnknownItemError(Ur4recError):
    """An item id that the dataset does not contain."""

    exit_code = 8


class EvaluationError(Ur4recError):
    """Evaluation met an impossible state, e.g. a NaN score."""

    exit_code = 9


class BusyError(Ur4recError):
    """Another process is writing the same run (runlock.py): one writer at a time."""

    exit_code = 11


class ResourceError(Ur4recError):
    """The machine ran out of a resource (memory) for the size of the job as configured."""

    exit_code = 10


class DiskFullError(ResourceError):
    """A write failed for want of disk space (ENOSPC, EDQUOT, EFBIG); ``diskspace.py`` words it."""

    exit_code = 12

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def then(self, what: str) -> "DiskFullError":
        """The same error, its last clause (what to run once space is freed) replaced by ``what``."""
        head = str(self).rsplit("; then ", 1)[0]
        return DiskFullError(f"{head}; then {what}", self.path)


class DivergedError(Ur4recError):
    """Training met a non-finite loss or gradient norm, or an index holds non-finite vectors."""

    exit_code = 13


# The setting that bounds the memory of each command's largest allocation.
MEMORY_SETTINGS = {
    "train": "train.batch_size (UR4REC_TRAIN__BATCH_SIZE), or set train.loss=sampled for a large catalogue",
    "evaluate": "eval.batch_size (UR4REC_EVAL__BATCH_SIZE)",
    "llm": "--batch-size (the local backend) or llm.embedding_batch_size",
    "clip": "clip.batch_size (UR4REC_CLIP__BATCH_SIZE)",
}


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: torch reports a failed CPU allocation as a
    RuntimeError ("[enforce fail at alloc_cpu.cpp] ... can't allocate memory: you tried to allocate
    N bytes"), CUDA as OutOfMemoryError (a RuntimeError, "CUDA out of memory")."""
    text = str(exc)
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and ("allocate memory" in text or "out of memory" in text.lower()))


def out_of_memory(exc: BaseException, command: str | None) -> ResourceError | None:
    """A ResourceError naming the setting to lower when ``exc`` is an allocation failure, else None."""
    if not is_out_of_memory(exc):
        return None
    text = " ".join(str(exc).split())
    detail = text[text.find("you tried") :] if "you tried" in text else text[:160]
    hint = MEMORY_SETTINGS.get(command or "", "the batch size of this command")
    return ResourceError(f"out of memory{f' in `ur4rec {command}`' if command else ''} ({detail}): lower {hint}")
