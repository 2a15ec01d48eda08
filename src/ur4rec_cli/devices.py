"""Device selection shared by every command that runs torch, after a check that torch and
torchvision work together (a pair from two indexes is one clear line, not an internal error)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ur4rec_cli.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    import torch


_CHECKED: list[bool] = []


def check_torch_pairing() -> None:
    """torch and torchvision must come from one build: a mixed pair (e.g. torch's CPU index and
    torchvision from PyPI) fails deep inside transformers or open_clip with an unrelated-looking
    message ("Could not import module 'PreTrainedModel'"). Checked once per process."""
    if _CHECKED:
        return
    try:
        import torchvision  # noqa: F401  (registers its C++ operators against this torch)
    except ImportError as exc:
        if getattr(exc, "name", None) == "torchvision":
            _CHECKED.append(True)  # absent: open_clip's own import error says so when it is needed
            return
        raise ConfigError(_pairing_line(exc)) from None
    except (RuntimeError, OSError, AttributeError) as exc:  # "operator torchvision::nms does not exist", a missing .so
        raise ConfigError(_pairing_line(exc)) from None
    _CHECKED.append(True)


def _pairing_line(exc: BaseException) -> str:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    why = " ".join(str(exc).split())[:120]
    return (
        f"torch {v('torch')} and torchvision {v('torchvision')} do not work together ({why}): reinstall both from one index, "
        "e.g. pip install --force-reinstall torch torchvision (CPU only: add --index-url https://download.pytorch.org/whl/cpu)"
    )


def resolve_device(spec: str | None) -> "torch.device":
    """``auto`` -> cuda, else mps, else cpu; an explicit device that is absent is one clear error.
    The torch / torchvision pairing is checked first (every command that runs torch comes here)."""
    check_torch_pairing()
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise DeviceError(f"--device {spec}: not a valid CUDA device (use cuda or cuda:N)") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    if spec == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceError("--device mps: Apple MPS is not available on this machine (use --device cpu or auto)")
        return torch.device("mps")
    raise DeviceError(f"--device {spec}: unknown device (choose auto, cpu, cuda, cuda:N or mps)")
