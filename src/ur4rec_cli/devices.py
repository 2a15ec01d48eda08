"""Device selection shared by every command that runs torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ur4rec_cli.errors import DeviceError

if TYPE_CHECKING:
    import torch


def resolve_device(spec: str | None) -> "torch.device":
    """``auto`` -> cuda, else mps, else cpu; an explicit device that is absent is one clear error."""
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
