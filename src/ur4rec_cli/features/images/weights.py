"""Where CLIP weights come from: open_clip tags, the hub cache, a local checkpoint, random weights.

Resolution never downloads unless asked, notices an unreachable hub with one short probe, and
hashes a local checkpoint so that features made from other weights are never reused.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ur4rec_cli.console import info
from ur4rec_cli.errors import ConfigError, WeightsError
from ur4rec_cli.store import sha256_file

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings

_PROBE_TIMEOUT_S = 3.0
# How many model builds this process did; tests read it to prove cache reuse loads nothing.
MODEL_LOADS = {"count": 0}


@dataclass
class Weights:
    model: str
    pretrained: str  # tag, "none", or "checkpoint"
    path: str | None  # local file to load, None for random weights
    tag_cfg: dict[str, Any]
    checkpoint_sha256: str | None = None

    @property
    def random(self) -> bool:
        return self.pretrained == "none"


def _how_to() -> str:
    return "pass --checkpoint FILE, run once online to cache them, or use --pretrained none (random weights, tests only)"


def _check_model(model: str) -> None:
    import open_clip

    if model not in open_clip.list_models():
        raise ConfigError(f"unknown open_clip model {model!r} (clip.model); e.g. ViT-B-32, ViT-B-16, ViT-L-14")


def _tag_cfg(model: str, tag: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none known"
        raise ConfigError(f"unknown pretrained tag {tag!r} for {model} (clip.pretrained); tags: {known}, or 'none'")
    return dict(cfg)


def _hf_candidates(cfg: dict[str, Any]) -> tuple[str, list[str]] | None:
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hub = cfg.get("hf_hub") or ""
    if not hub:
        return None
    # Same split as open_clip: "org/repo/" -> default file name, "org/repo/file.pt" -> that file.
    repo, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    names = []
    if filename == HF_WEIGHTS_NAME:
        names.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    return repo, names + [filename]


def _cached_file(cfg: dict[str, Any]) -> str | None:
    """The tag's weights file when it is already on disk (HF hub cache or open_clip's URL cache)."""
    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return str(cfg["file"])
    hf = _hf_candidates(cfg)
    if hf is not None:
        from huggingface_hub import try_to_load_from_cache

        repo, names = hf
        for name in names:
            hit = try_to_load_from_cache(repo_id=repo, filename=name)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    url = cfg.get("url") or ""
    if url:
        local = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _reachable(url: str) -> bool:
    # huggingface_hub retries unreachable hosts for ~half a minute per file; a 3 s TCP probe
    # lets an offline run fail at once instead. Behind a proxy a direct probe proves nothing.
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return True
    parsed = urllib.parse.urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    try:
        with socket.create_connection((host, parsed.port or (443 if parsed.scheme == "https" else 80)), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def resolve_weights(settings: "Settings", *, download: bool) -> Weights:
    """Which weights to load; downloads a tag's weights when allowed and reachable."""
    cfg = settings.clip
    _check_model(cfg.model)
    if cfg.checkpoint is not None:
        sha = checkpoint_sha(settings)
        return Weights(cfg.model, "checkpoint", str(Path(cfg.checkpoint).expanduser()), {}, checkpoint_sha256=sha)
    tag = cfg.pretrained.strip()
    if tag.lower() == "none":
        return Weights(cfg.model, "none", None, {})
    tag_cfg = _tag_cfg(cfg.model, tag)
    cached = _cached_file(tag_cfg)
    if cached is not None or not download:
        return Weights(cfg.model, tag, cached, tag_cfg)
    missing = f"CLIP weights {cfg.model}/{tag} are not in the local cache and cannot be downloaded"
    if _offline():
        raise WeightsError(f"{missing} (HF_HUB_OFFLINE is set): {_how_to()}")
    if tag_cfg.get("hf_hub"):
        probe = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    else:
        probe = tag_cfg.get("url", "")
    if not _reachable(probe):
        raise WeightsError(f"{missing} ({urllib.parse.urlparse(probe).hostname} is unreachable): {_how_to()}")
    import open_clip

    info(f"downloading CLIP weights {cfg.model}/{tag} (once; cached afterwards)")
    try:
        path = open_clip.download_pretrained(tag_cfg)
    except (OSError, RuntimeError, ValueError) as exc:
        raise WeightsError(f"{missing} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}): {_how_to()}") from None
    if not path or not os.path.isfile(path):
        raise WeightsError(f"{missing}: {_how_to()}")
    return Weights(cfg.model, tag, str(path), tag_cfg)


def checkpoint_sha(settings: "Settings") -> str | None:
    if settings.clip.checkpoint is None:
        return None
    path = Path(settings.clip.checkpoint).expanduser()
    if not path.is_file():
        raise WeightsError(f"CLIP checkpoint not found: {path} (clip.checkpoint / --checkpoint)")
    return sha256_file(path)


def weights_available(settings: "Settings") -> tuple[bool, str]:
    """Whether CLIP weights can be loaded without the network: (ok, reason). Never downloads."""
    try:
        w = resolve_weights(settings, download=False)
    except (WeightsError, ConfigError) as exc:
        return False, str(exc)
    if w.pretrained == "none":
        return True, f"random weights for {w.model} (--pretrained none)"
    if w.path is None:
        return False, f"CLIP weights {w.model}/{w.pretrained} are not in the local cache: {_how_to()}"
    return True, f"{w.model}/{w.pretrained} from {w.path}"


def load_model(w: Weights, device: str):
    import open_clip
    import torch

    if w.random:
        # Random weights are seeded so that --pretrained none is reproducible.
        torch.manual_seed(0)
    kwargs: dict[str, Any] = {}
    if w.tag_cfg:
        # A tag's weights come with their own activation and preprocessing; a bare file path
        # would lose them (openai weights need QuickGELU).
        kwargs["force_quick_gelu"] = bool(w.tag_cfg.get("quick_gelu", False))
        for key, arg in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation"), ("resize_mode", "image_resize_mode")):
            if w.tag_cfg.get(key) is not None:
                kwargs[arg] = w.tag_cfg[key]
    # open_clip logs "initialized randomly" on the root logger; the artifact says so already.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(w.model, pretrained=w.path, device=device, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        where = w.path or w.model
        raise WeightsError(f"cannot load CLIP weights from {where}: {str(exc).splitlines()[0][:200]}") from None
    finally:
        logging.disable(previous)
    MODEL_LOADS["count"] += 1
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(w.model)
