"""`ur4rec clip` with the real open_clip ViT-B-32 (random weights, CPU) on generated images.

The model is built once for the module (the ``built`` fixture); the other tests read that
artifact, reuse it from the store, or stop before any model is built.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from clip_data import write_dataset, write_image

N_ITEMS = 20
GOOD = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12]  # items with a usable image
CORRUPT = [9, 10]  # garbage bytes, truncated JPEG


def _make_images(folder: Path) -> None:
    exts = {1: "jpg", 2: "jpeg", 3: "png", 4: "webp", 5: "JPG", 6: "png", 7: "png", 8: "png"}
    for item, ext in exts.items():
        write_image(folder / f"{item}.{ext}", seed=item)
    (folder / "9.jpg").write_bytes(b"this is not an image")
    whole = write_image(folder / "10.jpg", seed=10, size=(200, 200)).read_bytes()
    (folder / "10.jpg").write_bytes(whole[: len(whole) // 3])
    write_image(folder / "11.png", seed=1234)
    write_image(folder / "12.png", seed=1234)  # same picture as item 11
    write_image(folder / "999.png", seed=999)  # not an item of the dataset
    (folder / "notes.txt").write_text("not an image either")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One real extraction for the whole module."""
    from ur4rec_cli.features.images.clip import extract_clip_features
    from ur4rec_cli.features.images.weights import MODEL_LOADS
    from ur4rec_cli.settings import load_settings

    root = tmp_path_factory.mktemp("clip")
    home, images = root / "home", root / "images"
    _, dman = write_dataset(home, n_items=N_ITEMS)
    _make_images(images)
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith("UR4REC_"):
                mp.delenv(var)
        mp.setenv("UR4REC_CONFIG", str(root / "no-config.toml"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        settings = load_settings(None, {"home": home, "clip": {"images": images, "pretrained": "none", "batch_size": 4, "device": "cpu"}})
        before = MODEL_LOADS["count"]
        report = extract_clip_features(settings)
    return SimpleNamespace(home=home, images=images, report=report, loads=MODEL_LOADS["count"] - before, dman=dman, settings=settings)


def _folder(home: Path) -> Path:
    return home / "features" / "ml-100k" / "clip"


def test_features_shape_norms_and_counts(built: SimpleNamespace) -> None:
    r = built.report
    assert built.loads == 1
    assert (r["items"], r["from_image"], r["from_text"], r["skipped"]) == (N_ITEMS, len(GOOD), N_ITEMS - len(GOOD), len(CORRUPT))
    assert r["random_weights"] is True and r["pretrained"] == "none" and r["dim"] == 512 and r["cached"] is False
    assert sorted(r["skipped_files"]) == ["images/10.jpg", "images/9.jpg"]
    feats = np.load(_folder(built.home) / "image.npy")
    assert feats.shape == (N_ITEMS + 1, 512) and feats.dtype == np.float32
    assert not feats[0].any()
    np.testing.assert_allclose(np.linalg.norm(feats[1:], axis=1), 1.0, atol=1e-5)


def test_provenance_per_item(built: SimpleNamespace) -> None:
    prov = json.loads((_folder(built.home) / "provenance.json").read_text("utf-8"))
    assert len(prov) == N_ITEMS
    assert [p["item"] for p in prov] == [str(i) for i in range(1, N_ITEMS + 1)]
    sources = {int(p["item"]): p["source"] for p in prov}
    assert {i for i, s in sources.items() if s == "image"} == set(GOOD)
    assert prov[4]["file"] == "images/5.JPG"  # extension matched case-insensitively
    assert prov[8]["skipped_file"] == "images/9.jpg" and prov[8]["source"] == "text"
    assert prov[13]["prompt"] == 'A movie poster for "Synthetic Movie 14" (1994), a comedy film.'
    man = json.loads((_folder(built.home) / "manifest.json").read_text("utf-8"))
    assert man["kind"] == "clip" and man["extra"]["random_weights"] is True
    assert man["inputs"]["dataset"] == built.dman.digest and len(man["inputs"]["images"]) == 64


def test_same_picture_same_vector_and_text_differs(built: SimpleNamespace) -> None:
    feats = np.load(_folder(built.home) / "image.npy")
    assert float(feats[11] @ feats[12]) == pytest.approx(1.0, abs=1e-5)
    assert float(feats[1] @ feats[2]) < 0.9999  # different pictures, different vectors
    assert float(feats[13] @ feats[14]) < 0.9999  # different prompts, different vectors


def test_second_run_is_served_from_store_without_model(built: SimpleNamespace, cli) -> None:
    from ur4rec_cli.features.images.weights import MODEL_LOADS

    before = MODEL_LOADS["count"]
    t0 = time.perf_counter()
    r = cli("--home", str(built.home), "clip", "--images", str(built.images), "--pretrained", "none", "--json")
    elapsed = time.perf_counter() - t0
    assert r.code == 0, r
    out = json.loads(r.stdout)
    assert out["cached"] is True and MODEL_LOADS["count"] == before
    assert (out["items"], out["from_image"], out["from_text"], out["skipped"]) == (N_ITEMS, 10, 10, 2)
    assert elapsed < 5.0


def test_load_clip_features_refuses_random_unless_allowed(built: SimpleNamespace) -> None:
    from ur4rec_cli.errors import WeightsError
    from ur4rec_cli.features.images.clip import load_clip_features

    with pytest.raises(WeightsError, match="allow_random_clip"):
        load_clip_features(built.settings, built.dman)
    feats, man = load_clip_features(built.settings, built.dman, allow_random=True)
    assert feats.shape == (N_ITEMS + 1, 512) and man.kind == "clip"
    stale = SimpleNamespace(digest="0" * 64)
    assert load_clip_features(built.settings, stale, allow_random=True) is None


def test_corrupt_or_missing_artifact_loads_as_none(built: SimpleNamespace, tmp_path: Path) -> None:
    from ur4rec_cli.features.images.clip import load_clip_features

    home = tmp_path / "copy"
    shutil.copytree(built.home, home)
    settings = built.settings.model_copy(update={"home": home})
    npy = _folder(home) / "image.npy"
    npy.write_bytes(npy.read_bytes()[:-100])
    assert load_clip_features(settings, built.dman, allow_random=True) is None
    shutil.rmtree(_folder(home))
    assert load_clip_features(settings, built.dman, allow_random=True) is None


def test_pretrained_openai_offline_fails_fast_with_one_line(isolated_home: Path, cli) -> None:
    from ur4rec_cli.features.images.weights import MODEL_LOADS

    write_dataset(isolated_home)
    before = MODEL_LOADS["count"]
    t0 = time.perf_counter()
    r = cli("clip", "--pretrained", "openai")
    assert r.code == 7, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CLIP weights ViT-B-32/openai")
    assert "--checkpoint FILE" in lines[0] and "--pretrained none" in lines[0]
    assert time.perf_counter() - t0 < 30 and MODEL_LOADS["count"] == before


def test_weights_available(tmp_path: Path) -> None:
    from ur4rec_cli.features.images.weights import weights_available
    from ur4rec_cli.settings import load_settings

    ok, why = weights_available(load_settings(None, {"clip": {"pretrained": "none"}}))
    assert ok and "random" in why
    ok, why = weights_available(load_settings(None, {"clip": {"pretrained": "openai"}}))
    assert not ok and "--checkpoint" in why
    ok, why = weights_available(load_settings(None, {"clip": {"checkpoint": tmp_path / "missing.pt"}}))
    assert not ok and "missing.pt" in why
    ok, why = weights_available(load_settings(None, {"clip": {"pretrained": "no-such-tag"}}))
    assert not ok and "no-such-tag" in why


def test_missing_checkpoint_and_images_folder_are_one_line_errors(isolated_home: Path, tmp_path: Path, cli) -> None:
    write_dataset(isolated_home)
    r = cli("clip", "--checkpoint", str(tmp_path / "nope.pt"))
    assert r.code == 7 and "nope.pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r
    r = cli("clip", "--images", str(tmp_path / "no-such-dir"), "--pretrained", "none")
    assert r.code == 2 and "no-such-dir" in r.stderr, r
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    r = cli("clip", "--checkpoint", str(tmp_path / "garbage.pt"))
    assert r.code == 7 and "cannot load CLIP weights from" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r


def test_cuda_without_cuda_is_a_device_error(isolated_home: Path, cli) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    write_dataset(isolated_home)
    r = cli("clip", "--pretrained", "none", "--device", "cuda")
    assert r.code == 5 and "CUDA is not available" in r.stderr, r


def test_poster_prompt_and_titles() -> None:
    from ur4rec_cli.features.images.prompts import poster_prompt
    from ur4rec_cli.features.images.posters import natural_title

    meta = {"title": "Toy Story", "year": 1995, "genres": ["Animation", "Children's", "Comedy"]}
    assert poster_prompt(meta) == 'A movie poster for "Toy Story" (1995), an animation, children\'s, comedy film.'
    usual = {"title": "Usual Suspects, The", "year": 1995, "genres": ["Crime", "Thriller"]}
    assert poster_prompt(usual) == 'A movie poster for "The Usual Suspects" (1995), a crime, thriller film.'
    assert poster_prompt({"title": None, "year": None, "genres": ["unknown"]}) == "A movie poster."
    # Another catalogue's noun: a photo prompt from title, brand and the most specific category.
    product = {"title": "Scotch Foil Tape", "brand": "3M", "categories": ["Industrial & Scientific", "Tapes", "Adhesive Tapes"]}
    assert poster_prompt(product, "product") == 'A photo of "Scotch Foil Tape" by 3M, a product in adhesive tapes.'
    assert "movie" not in poster_prompt({"title": "Thing", "genres": ["Drama"]}, "item")
    assert natural_title("Usual Suspects, The") == "The Usual Suspects"
    assert natural_title("Misérables, Les") == "Les Misérables"
    assert natural_title("City of Lost Children, The (Cité des enfants perdus, La)") == (
        "The City of Lost Children (Cité des enfants perdus, La)"
    )


def test_changed_image_folder_rebuilds(built: SimpleNamespace, tmp_path: Path, cli) -> None:
    from ur4rec_cli.features.images.weights import MODEL_LOADS

    home, images = tmp_path / "home", tmp_path / "images"
    shutil.copytree(built.home, home)
    shutil.copytree(built.images, images)
    write_image(images / "13.png", seed=13)
    before = MODEL_LOADS["count"]
    r = cli("--home", str(home), "clip", "--images", str(images), "--pretrained", "none", "--json")
    assert r.code == 0, r
    out = json.loads(r.stdout)
    assert out["cached"] is False and MODEL_LOADS["count"] == before + 1
    assert (out["from_image"], out["from_text"]) == (len(GOOD) + 1, N_ITEMS - len(GOOD) - 1)
    old = np.load(_folder(built.home) / "image.npy")
    new = np.load(_folder(home) / "image.npy")
    np.testing.assert_allclose(new[1], old[1], atol=1e-5)  # seeded random weights: reproducible
    assert float(new[13] @ old[13]) < 0.9999


def test_rows_equal_a_fresh_model_encoding(built: SimpleNamespace) -> None:
    """Image rows = encode_image of the preprocessed file; text rows = encode_text of the prompt."""
    import torch
    from PIL import Image

    from ur4rec_cli.features.images.prompts import poster_prompt
    from ur4rec_cli.features.images.weights import Weights as _Weights, load_model as _load_model

    feats = np.load(_folder(built.home) / "image.npy")
    prov = json.loads((_folder(built.home) / "provenance.json").read_text("utf-8"))
    model, preprocess, tokenizer = _load_model(_Weights("ViT-B-32", "none", None, {}), "cpu")
    with torch.inference_mode():
        img = model.encode_image(preprocess(Image.open(built.images / "3.png").convert("RGB"))[None])
        txt = model.encode_text(tokenizer([prov[16]["prompt"], prov[13]["prompt"]]))
    img = torch.nn.functional.normalize(img, dim=-1).numpy()
    txt = torch.nn.functional.normalize(txt, dim=-1).numpy()
    np.testing.assert_allclose(feats[3], img[0], atol=1e-4)
    np.testing.assert_allclose(feats[[17, 14]], txt, atol=1e-4)
    assert prov[16]["prompt"] == poster_prompt({"title": "Synthetic Movie 17", "year": 1997, "genres": ["Comedy", "Drama"]})
