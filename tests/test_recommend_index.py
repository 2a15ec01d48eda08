"""`ur4rec recommend` from an exported index written with the exact training-export formats."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ur4rec_cli.settings import load_settings
from ur4rec_cli.store import ArtifactStore

BLOCKS = {"names": ["sasrec", "user_text", "item_text", "image"], "bounds": [[0, 4], [4, 8], [8, 12], [12, 16]]}
MODALITIES = ["user_text", "item_text", "image"]
# The same with the frozen stage-1 SASRec's block last (model.sasrec_anchor).
ANCHORED = {"names": [*BLOCKS["names"], "anchor"], "bounds": [*BLOCKS["bounds"], [16, 20]]}


def write_index(home: Path, seed: int = 0, dataset_digest: str | None = None, blocks: dict = BLOCKS) -> dict[str, np.ndarray]:
    """An index as training exports it: vectors, blocks.json, gates.npz, manifest extra."""
    settings = load_settings()
    store = ArtifactStore(home)
    data_dir = store.dataset_dir("ml-100k")
    digest = dataset_digest or store.load(data_dir, kind="dataset").digest
    summary = json.loads((data_dir / "summary.json").read_text())
    rng = np.random.default_rng(seed)
    width = blocks["bounds"][-1][1]
    users = rng.standard_normal((summary["users"] + 1, width)).astype(np.float32)
    items = rng.standard_normal((summary["items"] + 1, width)).astype(np.float32)
    users[0] = items[0] = 0
    modality = rng.dirichlet(np.ones(3), size=summary["users"] + 1).astype(np.float32)
    experts = rng.dirichlet(np.ones(3), size=(summary["users"] + 1, 3)).astype(np.float32)
    folder = store.run_dir("ml-100k", settings.train.run) / "index"
    extra = {"stage": "end_to_end", "run": "main", "modalities": MODALITIES, "dataset": digest}
    with store.write(folder, kind="index", extra=extra) as tmp:
        np.save(tmp / "user_vecs.npy", users)
        np.save(tmp / "item_vecs.npy", items)
        (tmp / "blocks.json").write_text(json.dumps(blocks))
        np.savez(tmp / "gates.npz", modality=modality, experts=experts, modalities=np.array(MODALITIES))
    return {"users": users, "items": items, "modality": modality, "experts": experts}


def seen_items(home: Path, raw_user: str) -> set[int]:
    from ur4rec_cli.data.dataset import Dataset

    ds = Dataset.load(ArtifactStore(home).dataset_dir("ml-100k"))
    u = ds.find_user(raw_user)
    return {int(ds.item_ids[i - 1]) for i in ds.sequence(u)}


@pytest.mark.slow
def test_recommend_user_json_never_seen_and_exact(cli, ml100k) -> None:
    vecs = write_index(ml100k)
    r = cli("recommend", "--user", "42", "--top", "7", "--json")
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert res["user"] == 42 and len(res["items"]) == 7
    seen = seen_items(ml100k, "42")
    ids = [row["item_id"] for row in res["items"]]
    assert not seen & set(ids) and all(isinstance(i, int) for i in ids)
    assert [row["rank"] for row in res["items"]] == list(range(1, 8))
    # Brute force: ML-100K raw item ids are 1..1682 = internal ids.
    scores = vecs["users"][42] @ vecs["items"].T
    scores[[0, *seen]] = -np.inf
    assert ids == np.argsort(-scores, kind="stable")[:7].tolist()
    assert [row["score"] for row in res["items"]] == pytest.approx(scores[ids].tolist(), rel=1e-5)
    items = {row["id"]: row for row in json.loads((ml100k / "datasets/ml-100k/items.json").read_text())}
    first = res["items"][0]
    assert first["title"] == items[str(first["item_id"])]["title"] and first["year"] == items[str(first["item_id"])]["year"]
    assert first["genres"] == items[str(first["item_id"])]["genres"]

    table = cli("recommend", "--user", "42", "--top", "3")
    assert table.code == 0, table
    assert len(table.stdout.splitlines()) == 3 + 3  # user line, column header, rule, one line per item
    for row in res["items"][:3]:
        assert row["title"][:12] in table.stdout and f" {row['item_id']} " in table.stdout


@pytest.mark.slow
@pytest.mark.parametrize("blocks", [BLOCKS, ANCHORED], ids=["plain", "anchored"])
def test_explain_parts_add_up_to_the_score(cli, ml100k, blocks: dict) -> None:
    vecs = write_index(ml100k, blocks=blocks)
    names = {"sasrec": "sequence", "anchor": "stage-1 sequence"}
    r = cli("recommend", "--user", "42", "--top", "4", "--explain", "--json")
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert list(res["explain"]["modality"]) == MODALITIES
    assert list(res["explain"]["modality"].values()) == pytest.approx(vecs["modality"][42].tolist())
    assert res["explain"]["experts"]["image"] == pytest.approx(vecs["experts"][42, 2].tolist())
    for row in res["items"]:
        u, i = vecs["users"][42], vecs["items"][row["item_id"]]
        want = {names.get(n, n): float(u[a:b] @ i[a:b]) for n, (a, b) in zip(blocks["names"], blocks["bounds"])}
        assert list(row["contributions"]) == ["sequence", *MODALITIES, *(["stage-1 sequence"] if blocks is ANCHORED else [])]
        assert row["contributions"] == pytest.approx(want, rel=1e-5)
        assert row["top_part"] == max(want, key=want.get)
        assert sum(row["contributions"].values()) == pytest.approx(row["score"], rel=1e-4)
    table = cli("recommend", "--user", "42", "--top", "4", "--explain")
    assert "modality gates: user_text" in table.stdout and "score = the sum of its parts, each the dot product" in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    assert ("+ seq1" in table.stdout and "seq1: the frozen stage-1 SASRec" in table.stdout) == (blocks is ANCHORED)
    first = res["items"][0]
    assert all(f"{first['contributions'][p]:+.3f}" in table.stdout for p in first["contributions"])


@pytest.mark.slow
def test_all_users_to_jsonl(cli, ml100k, tmp_path) -> None:
    write_index(ml100k)
    out = tmp_path / "all.jsonl"
    r = cli("recommend", "--all", "--top", "5", "--output", str(out))
    assert r.code == 0, r
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 943 and all(len(row["items"]) == 5 for row in lines)
    one = json.loads(cli("recommend", "--user", "42", "--top", "5", "--json").stdout)
    row42 = next(row for row in lines if row["user"] == 42)
    assert row42["items"] == [row["item_id"] for row in one["items"]]
    assert not seen_items(ml100k, "7") & set(next(row for row in lines if row["user"] == 7)["items"])
    assert cli("recommend", "--all").code == 2  # --all needs --output


@pytest.mark.slow
def test_unknown_user_missing_or_stale_index(cli, ml100k) -> None:
    r = cli("recommend", "--user", "42")
    assert r.code == 4 and r.stderr.startswith("error: no trained model") and r.stderr.count("\n") == 1, r
    write_index(ml100k)
    r = cli("recommend", "--user", "99999")
    assert r.code == 8 and r.stderr.startswith("error: unknown user '99999'") and r.stderr.count("\n") == 1, r
    write_index(ml100k, dataset_digest="0" * 64)
    r = cli("recommend", "--user", "42")
    assert r.code == 4 and "different dataset" in r.stderr, r


def test_no_dataset_is_one_line(cli) -> None:
    r = cli("recommend", "--user", "42")
    assert r.code == 4 and r.stderr.startswith("error: no dataset artifact") and r.stderr.count("\n") == 1, r


@pytest.mark.slow
def test_recommend_never_imports_torch_and_starts_fast(ml100k) -> None:
    write_index(ml100k)
    code = (
        "import sys, io, contextlib\nfrom ur4rec_cli.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n        main(['recommend', '--user', '42', '--json'])\n    except SystemExit as e:\n        assert not e.code, e.code\n"
        "assert len(__import__('json').loads(buf.getvalue())['items']) == 10\n"
        "print('TORCH=' + str('torch' in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "TORCH=False"

    def wall(cmd: list[str]) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True, timeout=120)
            best = min(best, time.perf_counter() - t0)
        return best

    rec = wall([sys.executable, "-m", "ur4rec_cli", "recommend", "--user", "42"])
    torch_import = wall([sys.executable, "-c", "import torch"])
    print(f"recommend --user 42: {rec:.3f} s; python -c 'import torch': {torch_import:.3f} s")
    assert rec < torch_import
