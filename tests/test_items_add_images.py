"""`items add` on a run whose model reads CLIP image features: new items' posters (or title prompts)
go through the run's own CLIP model (random ViT-B-32 weights: none can be fetched here)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from clip_data import write_dataset, write_image

CLIP = {"pretrained": "none", "batch_size": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def image_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 items (posters for items 1-10), template texts, CLIP features, all four stages on item text + image."""
    from ur4rec_cli import api
    from ur4rec_cli.settings import load_settings

    home = tmp_path_factory.mktemp("image-items-home")
    write_dataset(home, n_items=20, n_users=6)
    images = home / "posters-in"
    for i in range(1, 11):
        write_image(images / f"{i}.png", seed=i)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("UR4REC_")}
    try:
        settings = load_settings(None, {
            "home": home, "llm": {"backend": "template"}, "clip": {**CLIP, "images": images},
            "train": {"epochs": 1, "device": "cpu", "batch_size": 8, "allow_random_clip": True},
            "model": {"modalities": ["item_text", "image"], "max_len": 8, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 1},
        })  # fmt: skip
        api.generate_texts(settings)
        api.extract_clip_features(settings)
        assert "image" in api.train(settings)["modalities"]
    finally:
        os.environ.update(saved)
    return home


@pytest.fixture
def home(image_home: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UR4REC_HOME", str(image_home))
    monkeypatch.setenv("UR4REC_CLIP__PRETRAINED", "none")
    monkeypatch.setenv("UR4REC_CLIP__DEVICE", "cpu")
    return image_home


def _catalogue_row(home: Path, raw_id: str) -> np.ndarray:
    from ur4rec_cli.data.dataset import Dataset

    ds = Dataset.load(home / "datasets" / "ml-100k")
    return np.load(home / "features" / "ml-100k" / "clip" / "image.npy")[ds.item_ids.index(raw_id) + 1]


def test_posters_and_title_prompts_are_read_as_the_catalogues(cli, home: Path, tmp_path: Path) -> None:
    """A new item with item 3's poster gets item 3's CLIP feature; one without a poster, the title
    prompt's, as catalogue item 15 (no image) got; both are served."""
    from ur4rec_cli.features.images.new_items import new_item_image_features
    from ur4rec_cli.runs import load_stage_model
    from ur4rec_cli.settings import load_settings

    shutil.copy(home / "posters-in" / "3.png", tmp_path / "copy-of-3.png")
    meta15 = {"title": "Synthetic Movie 15", "year": 1995, "genres": ["Comedy", "Drama"]}
    new = tmp_path / "new.csv"
    new.write_text("item_id,title,year,genres,poster\n"
                   "903,A Third Look,1999,Crime|Thriller,copy-of-3.png\n"
                   f"915,{meta15['title']},{meta15['year']},Comedy|Drama,\n", "utf-8")  # fmt: skip
    r = cli("items", "add", str(new), "--json")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["added"] == ["903", "915"] and "images: CLIP ViT-B-32 (none): 1 poster(s), 1 title prompt(s)" in out["text"]
    settings = load_settings()
    digests = load_stage_model(settings, "end_to_end").info["digests"]
    rows = [{"title": "A Third Look", "year": 1999, "genres": ["Crime", "Thriller"], "poster": str(tmp_path / "copy-of-3.png")}, meta15]
    feats, _ = new_item_image_features(settings, "ml-100k", digests, rows)
    assert np.allclose(feats[0], _catalogue_row(home, "3"), atol=1e-5)
    assert np.allclose(feats[1], _catalogue_row(home, "15"), atol=1e-5)
    added = json.loads((home / "runs" / "ml-100k" / "main" / "index" / "added_items.json").read_text("utf-8"))
    assert added[0]["poster"] == str((tmp_path / "copy-of-3.png").resolve()) and "poster" not in added[1]
    rec = json.loads(cli("recommend", "--user", "1", "--top", "22", "--json").stdout)
    assert {"903", "915"} <= {str(row["item_id"]) for row in rec["items"]}


def test_bad_posters_are_one_line_each_and_write_nothing(cli, home: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    new = tmp_path / "new.csv"
    new.write_text("title,year,genres,poster\nLost Reel,1990,Drama,missing.png\nBroken Reel,1991,Drama,broken.png\n", "utf-8")
    index = home / "runs" / "ml-100k" / "main" / "index"
    before = (index / "manifest.json").read_bytes()
    r = cli("items", "add", str(new))
    assert r.code == 3, r.stderr
    assert "line 2: poster 'missing.png' not found" in r.stderr and "line 3: poster 'broken.png' is not a readable image" in r.stderr
    assert (index / "manifest.json").read_bytes() == before


def test_other_clip_weights_are_one_line(cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = tmp_path / "new.csv"
    new.write_text("title,year,genres\nOther Weights,1992,Drama\n", "utf-8")
    monkeypatch.setenv("UR4REC_CLIP__MODEL", "ViT-B-16")
    r = cli("items", "add", str(new))
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "model 'ViT-B-32'" in r.stderr and "model 'ViT-B-16'" in r.stderr
