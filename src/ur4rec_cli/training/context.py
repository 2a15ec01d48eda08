"""What every stage of one `train` call shares: the data set, its features, the device, the run folder;
and the model arguments it builds them with, ``model.content_stage1 = auto`` and ``model.hidden = auto``
resolved for the data set (``TUNED_ON``: ML-100K's shape, whose defaults were chosen on its validation)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.training.distributed import DistContext

# ML-100K (users, items): the data set whose validation chose the default schedule (the fixed epoch
# counts, training/epoch_rule.py) and stage 1 on item IDs alone (model.content_stage1). A cold-item
# variant keeps both counts (its cold items stay in the catalogue), so it keeps those defaults too.
TUNED_ON = (943, 1682)

if TYPE_CHECKING:
    import torch

    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.settings import Settings
    from ur4rec_cli.store import Manifest

# Feature buffers live in the model but come from the feature artifacts, never from a checkpoint.
FEATURE_BUFFERS = ("item_text", "user_text", "image", "present")


@dataclass
class TrainContext:
    """What every stage of one `train` call shares."""

    settings: "Settings"
    dataset: "Dataset"
    dataset_manifest: "Manifest"
    device: "torch.device"
    modalities: list[str]
    features: dict[str, np.ndarray] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    run_dir: Path = Path(".")
    dist: DistContext = field(default_factory=DistContext)
    estimate: Any = None  # estimate.JobEstimate of the whole call, set by stages.train
    _known: Any = None

    def known(self) -> np.ndarray:
        """[n_items + 1] bool: the items training sees (``trainer.known_items``), computed once."""
        if self._known is None:
            from ur4rec_cli.training.trainer import known_items

            self._known = known_items(self.dataset, self.settings.train.learn_validation)
        return self._known

    def catalogue(self) -> "torch.Tensor | None":
        """The known items' ids on the device (the softmax runs over them only), or None when every item is known."""
        import torch

        known = self.known()
        return None if known.all() else torch.from_numpy(np.nonzero(known[1:])[0] + 1).to(self.device)


def prepare_context(settings: "Settings", dist: DistContext | None = None) -> TrainContext:
    """Dataset and features, prepared with the configured defaults when missing (rank 0 first under torchrun)."""
    import torch

    from ur4rec_cli.console import info
    from ur4rec_cli.devices import resolve_device
    from ur4rec_cli.training.distributed import barrier, local_device

    dist = dist or DistContext()
    device = local_device(resolve_device(settings.train.device), dist)
    if settings.train.num_threads:
        torch.set_num_threads(settings.train.num_threads)
    if not dist.is_main:
        barrier(dist)  # rank 0 prepares (downloads, encodes) first; the others then load its artifacts
    try:
        ctx = _prepare(settings, device, dist)
    finally:
        if dist.is_main:
            barrier(dist)
    info(f"training on {device}" + (f" x {dist.world_size} ranks" if dist.enabled else "") + f"; MoE modalities: {', '.join(ctx.modalities) or 'none'}")
    return ctx


def _prepare(settings: "Settings", device: "torch.device", dist: DistContext) -> TrainContext:
    from ur4rec_cli.console import warn
    from ur4rec_cli.data.prepare import ensure_dataset
    from ur4rec_cli.runs import run_dir

    dataset, dman = ensure_dataset(settings)
    modalities = list(settings.model.modalities)
    ctx = TrainContext(settings, dataset, dman, device, modalities, digests={"dataset": dman.digest}, run_dir=run_dir(settings), dist=dist)
    if "user_text" in modalities or "item_text" in modalities:
        from ur4rec_cli.features.llm.texts import ensure_text_embeddings

        item_text, user_text, tman = ensure_text_embeddings(settings, dataset, dman)
        ctx.features["item_text"], ctx.features["user_text"] = item_text, user_text
        ctx.digests["text_emb"] = tman.digest
    if "image" in modalities:
        image, reason = _image_features(settings, dman)
        if image is None:
            modalities.remove("image")
            note = f"image modality off: {reason}"
            ctx.notes.append(note)
            warn(note)
        else:
            ctx.features["image"], ctx.digests["clip"] = image
    return ctx


def _image_features(settings: "Settings", dman: "Manifest") -> tuple[Any, str]:
    from ur4rec_cli.features.images import clip
    from ur4rec_cli.features.images.weights import weights_available

    loaded = clip.load_clip_features(settings, dman, allow_random=settings.train.allow_random_clip)
    if loaded is None:
        ok, reason = weights_available(settings)
        if not ok:
            return None, f"no CLIP weights ({reason}); run `ur4rec clip` once weights are available"
        clip.extract_clip_features(settings)
        loaded = clip.load_clip_features(settings, dman, allow_random=settings.train.allow_random_clip)
        if loaded is None:
            return None, "CLIP features were extracted but are not usable (random weights?)"
    image, man = loaded
    return (image, man.digest), ""


def tuned_on(dataset: "Dataset") -> bool:
    """Whether the data set has ML-100K's shape (``TUNED_ON``; its cold variants too), where the defaults were chosen."""
    return (dataset.n_users, dataset.n_items) == TUNED_ON


def content_stage1(settings: "Settings", dataset: "Dataset") -> bool:
    """``model.content_stage1`` for this data set: auto is on everywhere but ML-100K (and its cold
    variants), whose defaults were chosen on its validation without it (docs/model.md, issue 34)."""
    value = settings.model.content_stage1
    return not tuned_on(dataset) if value == "auto" else bool(value)


def hidden_size(settings: "Settings", dataset: "Dataset") -> int:
    """``model.hidden`` for this data set: auto is 64 on ML-100K (and its cold variants), whose defaults
    were chosen with it, and 128 on any other (chosen on Scientific's validation: docs/model.md, lever 46)."""
    value = settings.model.hidden
    return (64 if tuned_on(dataset) else 128) if value == "auto" else int(value)


def model_args(ctx: TrainContext) -> dict[str, Any]:
    """The model's only constructor input (asdict of ModelArgs), stored in every checkpoint."""
    from ur4rec_cli.models.ur4rec import ModelArgs

    m = ctx.settings.model
    args = ModelArgs(
        n_items=ctx.dataset.n_items,
        n_users=ctx.dataset.n_users,
        max_len=m.max_len,
        hidden=hidden_size(ctx.settings, ctx.dataset),
        layers=m.layers,
        heads=m.heads,
        dropout=m.dropout,
        init_std=m.init_std,
        expert_dim=m.expert_dim,
        sub_experts=m.sub_experts,
        modalities=list(ctx.modalities),
        item_adaptor=m.item_adaptor,
        padding_sink=m.padding_sink,
        anchor=m.sasrec_anchor,
        content_stage1=content_stage1(ctx.settings, ctx.dataset),
    )
    return asdict(args)


def new_model(ctx: TrainContext):
    """A freshly initialised UR4RecV2 with the context's features in its buffers."""
    import torch

    from ur4rec_cli.runs import build_model, set_cold_neighbours

    model = build_model(model_args(ctx))
    model.set_features(**{k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in ctx.features.items()})
    model.set_known(torch.from_numpy(ctx.known()))
    set_cold_neighbours(model, ctx.settings)  # training's validation scores unknown items as evaluate does
    return model
