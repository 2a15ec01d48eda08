"""`ur4rec clip` on the real ML-100K: generated posters for a subset, CLIP text for the rest.

The real open_clip ViT-B-32 (random weights: none can be fetched here) over all 1,682 items.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clip_data import write_image

POSTERS = 120  # items 1..POSTERS get a generated poster (raw ML-100K ids equal internal ids here)


@pytest.mark.slow
def test_features_for_every_real_item_with_the_image_text_split(ml100k: Path, tmp_path: Path, cli) -> None:
    images = tmp_path / "posters"
    for item in range(1, POSTERS + 1):
        write_image(images / f"{item}.jpg", seed=item, size=(64, 96))
    (images / "7.jpg").write_bytes(b"\xff\xd8\xff truncated")  # one broken poster: skipped, falls back to text

    r = cli("clip", "--images", str(images), "--pretrained", "none", "--device", "cpu", "--batch-size", "64", "--json")
    assert r.code == 0, r
    report = json.loads(r.stdout)
    assert report["items"] == 1682
    assert (report["from_image"], report["from_text"], report["skipped"]) == (POSTERS - 1, 1682 - POSTERS + 1, 1)

    # The same command without --json is served from the store and prints the split.
    again = cli("clip", "--images", str(images), "--pretrained", "none", "--device", "cpu")
    assert again.code == 0, again
    assert "from the store" in again.stdout
    assert f"from image: {POSTERS - 1}" in again.stdout and f"from text prompt: {1682 - POSTERS + 1}" in again.stdout

    folder = ml100k / "features" / "ml-100k" / "clip"
    feats = np.load(folder / "image.npy")
    assert feats.shape == (1683, 512) and feats.dtype == np.float32
    assert not feats[0].any()
    np.testing.assert_allclose(np.linalg.norm(feats[1:], axis=1), 1.0, atol=1e-5)
    prov = json.loads((folder / "provenance.json").read_text("utf-8"))
    by_item = {p["item"]: p for p in prov}
    assert len(by_item) == 1682
    assert {i for i, p in by_item.items() if p["source"] == "image"} == {str(i) for i in range(1, POSTERS + 1)} - {"7"}
    assert by_item["7"]["source"] == "text" and by_item["7"]["skipped_file"].endswith("7.jpg")
    # A text fallback names the real title: ML-100K item 200 is "Shining, The (1980)".
    assert "Shining" in by_item["200"]["prompt"] and "1980" in by_item["200"]["prompt"]
