"""CLIP features of every item: the poster image when there is a usable one, else the CLIP text
embedding of a prompt in the data set's words (``prompts.py``; same model, same space).

Artifact ``<home>/features/<name>/clip/`` (kind ``clip``): ``image.npy`` float32
``[n_items + 1, d]`` L2-normalised with row 0 (padding) zero, and ``provenance.json`` saying per
item which path it took. Its inputs (dataset digest, fingerprint of the images used, weights)
decide cache reuse: a rerun with the same inputs never loads the model.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.console import info, make_progress, warn
from ur4rec_cli.devices import resolve_device
from ur4rec_cli.data.prepare import dataset_name
from ur4rec_cli.errors import ConfigError, WeightsError
from ur4rec_cli.features.images.weights import Weights, checkpoint_sha, load_model, resolve_weights
from ur4rec_cli.features.images.posters import poster_path, safe_name
from ur4rec_cli.features.images.prompts import poster_prompt, prompt_key
from ur4rec_cli.store import ArtifactStore, Manifest, sha256_json

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.settings import Settings

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
# Bump when the prompt wording or the feature recipe changes: cached artifacts are keyed by it.
RECIPE_VERSION = "c1"


# Weights ---------------------------------------------------------------------------------------
# Images ----------------------------------------------------------------------------------------
def _scan_folder(folder: Path) -> dict[str, Path]:
    """stem -> file for every image in the folder; .jpg beats .jpeg beats .png beats .webp."""
    found: dict[str, tuple[int, Path]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise ConfigError(f"cannot read the image folder {folder}: {exc.strerror or exc}") from None
    for e in entries:
        ext = os.path.splitext(e.name)[1].lower()
        if ext in IMAGE_EXTS and e.is_file():
            rank = IMAGE_EXTS.index(ext)
            stem = e.name[: -len(ext)]
            if stem not in found or rank < found[stem][0]:
                found[stem] = (rank, Path(e.path))
    return {stem: p for stem, (_, p) in found.items()}


def _select_images(settings: "Settings", dataset: "Dataset") -> list[tuple[str, Path] | None]:
    """Per item (internal order): ("images" | "posters", file) or None. The user's folder wins."""
    folder = settings.clip.images
    user = {}
    if folder is not None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"image folder not found: {folder} (--images)")
        user = _scan_folder(folder)
    out: list[tuple[str, Path] | None] = []
    for raw in dataset.item_ids:
        p = user.get(raw) or user.get(safe_name(raw))
        if p is not None:
            out.append(("images", p))
            continue
        poster = poster_path(settings.home, raw)
        out.append(("posters", poster) if poster.is_file() else None)
    return out


def _fingerprint(chosen: list[tuple[str, Path] | None]) -> str:
    rows = []
    for i, c in enumerate(chosen):
        if c is not None:
            st = c[1].stat()
            rows.append([i, c[0], c[1].name, st.st_size, st.st_mtime_ns])
    return sha256_json(rows)


def open_rgb(path: Path):
    from PIL import Image

    # verify() catches truncated and garbled files that open() alone would accept.
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        return img.convert("RGB")


# Inference -------------------------------------------------------------------------------------
def _encode(model, batches, device: str, encode: str, progress, task) -> list[np.ndarray]:
    import torch

    outs = []
    amp = torch.autocast("cuda", dtype=torch.float16) if device.startswith("cuda") else _null()
    with torch.inference_mode(), amp:
        for batch in batches:
            x = batch.to(device, non_blocking=True)
            feats = model.encode_image(x) if encode == "image" else encode_text_tokens(model, x)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
            outs.append(feats.cpu().numpy().astype(np.float32))
            progress.advance(task, len(batch))
    return outs


def encode_text_tokens(model, tokens):
    """``model.encode_text`` on the tokens up to the batch's longest prompt.

    CLIP's text tower is causal and reads the end-of-text position, so the padding after it
    cannot change the result (checked against encode_text in the tests); short poster prompts
    then cost a fraction of the 77-token context on CPU.
    """
    import torch
    from open_clip.model import CLIP
    from open_clip.transformer import text_global_pool

    mask = getattr(model, "attn_mask", None)
    if type(model) is not CLIP or model.text_pool_type != "argmax" or mask is None:
        return model.encode_text(tokens)
    length = int((tokens != 0).sum(dim=1).max().item())
    length = max(1, min(length, tokens.shape[1]))
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens, "argmax")
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def _image_batches(files: list[tuple[int, Path]], preprocess, batch_size: int, good: list[int], skipped: list[tuple[int, Path, str]]):
    import torch
    from PIL import Image, UnidentifiedImageError

    pending: list[tuple[int, Any]] = []
    for index, path in files:
        try:
            tensor = preprocess(open_rgb(path))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
            skipped.append((index, path, str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__))
            continue
        pending.append((index, tensor))
        if len(pending) == batch_size:
            good.extend(i for i, _ in pending)
            yield torch.stack([t for _, t in pending])
            pending = []
    if pending:
        good.extend(i for i, _ in pending)
        yield torch.stack([t for _, t in pending])


def _text_batches(tokens, order: np.ndarray, batch_size: int):
    # Prompts of similar length share a batch, so trimming the padding saves the most.
    for start in range(0, len(order), batch_size):
        yield tokens[order[start : start + batch_size]]


# Public API ------------------------------------------------------------------------------------
@dataclass
class _Encoded:
    """What encoding every item gave: features, per-item provenance, which path each item took."""

    feats: np.ndarray
    provenance: list[dict[str, Any]]
    good: list[int]
    text_items: list[int]
    skipped: list[tuple[int, Path, str]]
    seconds: dict[str, float]


def extract_clip_features(settings: "Settings", *, force: bool = False) -> dict[str, Any]:
    """CLIP features for every item (image, else poster-like text prompt) into the store; returns counts."""
    from ur4rec_cli.data.prepare import ensure_dataset

    started = time.perf_counter()
    dataset, dman = ensure_dataset(settings)
    store = ArtifactStore(settings.home)
    folder = store.features_dir(dataset_name(settings.data), "clip")
    posters_report = _fetch_missing_posters(settings, dataset) if settings.clip.fetch_posters else None
    chosen = _select_images(settings, dataset)
    inputs = _clip_inputs(settings, dman, chosen, dataset.noun)
    if not force:
        man = store.load(folder, kind="clip")
        if man is not None and man.inputs == inputs:
            info(f"CLIP features served from the store ({folder}); --force rebuilds them")
            return _summary(man, folder, cached=True, posters=posters_report, seconds=time.perf_counter() - started)

    weights = resolve_weights(settings, download=True)
    device = str(resolve_device(settings.clip.device))
    t0 = time.perf_counter()
    model, preprocess, tokenizer = load_model(weights, device)
    load_s = time.perf_counter() - t0
    enc = _encode_items(settings, dataset, chosen, model, preprocess, tokenizer, device)
    del model
    extra = _clip_extra(settings, enc, chosen, weights, device, {"model_load_s": round(load_s, 3), **enc.seconds, "noun": dataset.noun})
    with store.write(folder, kind="clip", inputs=inputs, settings=settings.slice("clip"), extra=extra) as tmp:
        np.save(tmp / "image.npy", enc.feats)
        (tmp / "provenance.json").write_text(json.dumps(enc.provenance, ensure_ascii=False, indent=0), "utf-8")
    man = store.load(folder, kind="clip", verify=False)
    if weights.random:
        warn("CLIP features made with RANDOM weights (--pretrained none): fine for tests, meaningless for recommendations")
    return _summary(man, folder, cached=False, posters=posters_report, seconds=time.perf_counter() - started)


def _clip_inputs(settings: "Settings", dman: Manifest, chosen: list[tuple[str, Path] | None], noun: str) -> dict[str, str]:
    """The artifact's cache key; needs no open_clip import, so a rerun served from the store stays fast."""
    cfg = settings.clip
    ckpt_sha = checkpoint_sha(settings)
    weights_key = f"checkpoint:{ckpt_sha}" if ckpt_sha else f"{cfg.model}:{cfg.pretrained.strip().lower()}"
    inputs = {
        "dataset": dman.digest,
        "images": _fingerprint(chosen),
        "recipe": sha256_json({"model": cfg.model, "weights": weights_key, "version": RECIPE_VERSION, **prompt_key(noun)}),
    }
    if ckpt_sha:
        inputs["checkpoint"] = ckpt_sha
    return inputs


def _encode_items(settings: "Settings", dataset: "Dataset", chosen, model, preprocess, tokenizer, device: str) -> _Encoded:
    """Every item's poster through the image tower; items without a readable one through the text tower."""
    n, batch_size = dataset.n_items, settings.clip.batch_size
    files = [(i, c[1]) for i, c in enumerate(chosen) if c is not None]
    good: list[int] = []
    skipped: list[tuple[int, Path, str]] = []
    with make_progress() as progress:
        task = progress.add_task("CLIP images", total=len(files), status="")
        t_img = time.perf_counter()
        img_parts = _encode(model, _image_batches(files, preprocess, batch_size, good, skipped), device, "image", progress, task)
        image_s = time.perf_counter() - t_img
        for _, path, why in skipped:
            warn(f"skipped unreadable image {path}: {why}")
            progress.advance(task)
        used = set(good)
        text_items = [i for i in range(n) if i not in used]
        prompts = [poster_prompt(dataset.items[i], dataset.noun) for i in text_items]
        task = progress.add_task("CLIP texts", total=len(prompts), status="")
        txt_parts: list[np.ndarray] = []
        t_txt = time.perf_counter()
        if prompts:
            tokens = tokenizer(prompts)
            order = np.argsort((tokens != 0).sum(dim=1).numpy(), kind="stable")
            sorted_parts = _encode(model, _text_batches(tokens, order, batch_size), device, "text", progress, task)
            text_feats = np.empty((len(prompts), sorted_parts[0].shape[1]), dtype=np.float32)
            text_feats[order] = np.concatenate(sorted_parts)
            txt_parts = [text_feats]
        text_s = time.perf_counter() - t_txt

    parts = [p for p in img_parts + txt_parts if len(p)]
    dim = parts[0].shape[1] if parts else int(getattr(model.visual, "output_dim", 512))
    feats = np.zeros((n + 1, dim), dtype=np.float32)
    if good:
        feats[np.asarray(good) + 1] = np.concatenate(img_parts)
    if text_items:
        feats[np.asarray(text_items) + 1] = np.concatenate(txt_parts)
    provenance: list[dict[str, Any]] = [{} for _ in range(n)]
    skipped_by_item = {i: p for i, p, _ in skipped}
    for i in good:
        src, path = chosen[i]
        provenance[i] = {"item": dataset.item_ids[i], "source": "image", "file": f"{src}/{path.name}"}
    for i, prompt in zip(text_items, prompts):
        rec = {"item": dataset.item_ids[i], "source": "text", "prompt": prompt}
        if i in skipped_by_item:
            rec["skipped_file"] = f"{chosen[i][0]}/{skipped_by_item[i].name}"
        provenance[i] = rec
    return _Encoded(feats, provenance, good, text_items, skipped, {"image_s": round(image_s, 3), "text_s": round(text_s, 3)})


def _clip_extra(settings: "Settings", enc: _Encoded, chosen, weights: Weights, device: str, timings: dict[str, float]) -> dict[str, Any]:
    """The manifest's ``extra``: counts per path, the weights used, where it ran, timings."""
    cfg = settings.clip
    return {
        "items": len(enc.provenance),
        "from_image": len(enc.good),
        "from_text": len(enc.text_items),
        "skipped": len(enc.skipped),
        "from_posters": sum(1 for i in enc.good if chosen[i][0] == "posters"),
        "dim": int(enc.feats.shape[1]),
        "model": weights.model,
        "pretrained": weights.pretrained,
        "checkpoint_sha256": weights.checkpoint_sha256,
        "random_weights": weights.random,
        "device": device,
        "precision": "fp16" if device.startswith("cuda") else "fp32",
        "images_folder": str(cfg.images) if cfg.images is not None else None,
        "skipped_files": [f"{chosen[i][0]}/{p.name}" for i, p, _ in enc.skipped],
        "recipe_version": RECIPE_VERSION,
        **timings,
    }


def _fetch_missing_posters(settings: "Settings", dataset: "Dataset") -> dict[str, Any]:
    from ur4rec_cli.features.images.posters import fetch_posters

    user = {}
    if settings.clip.images is not None and Path(settings.clip.images).expanduser().is_dir():
        user = _scan_folder(Path(settings.clip.images).expanduser())
    todo = [(raw, meta) for raw, meta in zip(dataset.item_ids, dataset.items) if raw not in user and safe_name(raw) not in user]
    with make_progress() as progress:
        report = fetch_posters(settings, todo, progress=progress).to_dict()
    info(f"TMDB posters: {report['downloaded']} downloaded, {report['already_cached']} already cached, "
         f"{len(report['unmatched'])} without a match, {report['errors']} errors")
    if report["unmatched"]:
        shown = "; ".join(report["unmatched"][:10])
        more = f" and {len(report['unmatched']) - 10} more" if len(report["unmatched"]) > 10 else ""
        warn(f"no TMDB poster for {len(report['unmatched'])} titles: {shown}{more}")
    return report


def _summary(man: Manifest | None, folder: Path, *, cached: bool, posters: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    ex = dict(man.extra) if man is not None else {}
    out = {
        "items": ex.get("items"),
        "from_image": ex.get("from_image"),
        "from_text": ex.get("from_text"),
        "skipped": ex.get("skipped"),
        "from_posters": ex.get("from_posters"),
        "skipped_files": ex.get("skipped_files", []),
        "dim": ex.get("dim"),
        "model": ex.get("model"),
        "pretrained": ex.get("pretrained"),
        "checkpoint_sha256": ex.get("checkpoint_sha256"),
        "random_weights": ex.get("random_weights"),
        "device": ex.get("device"),
        "timings_s": {k: ex.get(k) for k in ("model_load_s", "image_s", "text_s")},
        "path": str(folder),
        "cached": cached,
        "seconds": round(seconds, 3),
    }
    if posters is not None:
        out["posters"] = posters
    return out


def load_clip_features(settings: "Settings", dataset_manifest: Manifest, *, allow_random: bool = False) -> tuple[np.ndarray, Manifest] | None:
    """The item CLIP features ``[n_items + 1, d]`` and their manifest; None when missing, corrupt or stale.

    Features made with random weights raise WeightsError unless ``allow_random``.
    """
    folder = ArtifactStore(settings.home).features_dir(dataset_name(settings.data), "clip")
    man = ArtifactStore(settings.home).load(folder, kind="clip")
    if man is None or man.inputs.get("dataset") != dataset_manifest.digest:
        return None
    try:
        feats = np.load(folder / "image.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    items = man.extra.get("items")
    if feats.ndim != 2 or feats.dtype != np.float32 or (isinstance(items, int) and feats.shape[0] != items + 1):
        return None
    if not np.isfinite(feats).all():
        return None
    if man.extra.get("random_weights") and not allow_random:
        raise WeightsError(
            f"the CLIP features in {folder} were made with random weights (--pretrained none): rebuild them with real "
            "weights (`ur4rec clip --pretrained openai` or `--checkpoint FILE`), or set train.allow_random_clip=true "
            "(UR4REC_TRAIN__ALLOW_RANDOM_CLIP=1) to use them anyway"
        )
    return feats, man
