"""CLIP image features of items that arrive after training (`items add`), made as the run's catalogue features were.

A run whose model reads the image modality was trained on one `clip` artifact (its checkpoint
names it: ``digests.clip``); that artifact's manifest names the CLIP model and weights. A new
item gets a feature from the same model: its poster (the CSV's ``poster`` column, a path
relative to the CSV) through the image tower, or, without a poster, the poster-like prompt
(``prompts.poster_prompt`` in the catalogue's noun) through the text tower, exactly the fallback of
catalogue items without an image. Features are L2-normalised like the artifact's rows. The
current `clip` settings must resolve to the same weights; otherwise one line says what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli.errors import ConfigError

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings


def new_item_image_features(settings: "Settings", dataset_name: str, digests: dict[str, str], rows: list[dict[str, Any]]) -> tuple[np.ndarray, str]:
    """([M, d] float32 features, how they were made) for new items' rows ({"title", "year", "genres", "poster"})."""
    import torch

    from ur4rec_cli.devices import resolve_device
    from ur4rec_cli.features.images.clip import encode_text_tokens, open_rgb
    from ur4rec_cli.features.images.prompts import poster_prompt
    from ur4rec_cli.features.images.weights import load_model, resolve_weights
    from ur4rec_cli.store import ArtifactStore

    store = ArtifactStore(settings.home)
    man = store.load(store.features_dir(dataset_name, "clip"), kind="clip")
    if man is None or man.digest != digests.get("clip"):
        raise ConfigError("the CLIP features this run was trained on are no longer in the home (`ur4rec clip` ran since): "
                          "new items' images cannot be read alike; train the run again")  # fmt: skip
    weights = resolve_weights(settings, download=False)
    now = {"model": weights.model, "pretrained": weights.pretrained, "checkpoint_sha256": weights.checkpoint_sha256}
    differ = sorted(k for k, v in now.items() if man.extra.get(k) != v)
    if differ:
        was = ", ".join(f"{k} {man.extra.get(k)!r}" for k in differ)
        raise ConfigError(f"this run's CLIP features came from {was}; the clip settings now give {', '.join(f'{k} {now[k]!r}' for k in differ)}: set them back")
    device = str(resolve_device(settings.clip.device))
    model, preprocess, tokenizer = load_model(weights, device)
    feats, from_image = [], 0
    noun = man.extra.get("noun", "movie")  # the catalogue's prompts (features written before nouns: movies)
    with torch.inference_mode():
        for r in rows:
            if r.get("poster"):
                out = model.encode_image(preprocess(open_rgb(Path(r["poster"])))[None].to(device))
                from_image += 1
            else:
                out = encode_text_tokens(model, tokenizer([poster_prompt(r, noun)]).to(device))
            feats.append(torch.nn.functional.normalize(out.float(), dim=-1).cpu().numpy()[0])
    how = f"CLIP {weights.model} ({weights.pretrained}): {from_image} poster(s), {len(rows) - from_image} title prompt(s)"
    return np.stack(feats).astype(np.float32), how
