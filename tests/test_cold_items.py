"""The cold-item protocol (`data --cold-items`), the known-items softmax and content-only item vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test_evaluate_protocols import clustered_dataset
from ur4rec_cli.data.cold import ColdView, split_cold
from ur4rec_cli.data.dataset import Dataset
from ur4rec_cli.settings import load_settings
from ur4rec_cli.store import ArtifactStore


def test_cold_split_of_the_real_ml100k(cli, ml100k) -> None:
    full = Dataset.load(ml100k / "datasets" / "ml-100k")
    r = cli("data", "--cold-items", "0.2", "--json")
    assert r.code == 0, r
    s = json.loads(r.stdout)
    interacted = int((np.bincount(full.seq_items, minlength=full.n_items + 1)[1:] > 0).sum())
    assert s["name"] == "ml-100k-cold20" and s["cold_items"] == round(0.2 * interacted) and s["items"] == full.n_items
    ds = Dataset.load(Path(s["path"]))
    cold = set(ds.cold.items.tolist())
    # A cold item is in no sequence: no training history, no validation or warm test target.
    assert not cold & set(ds.seq_items.tolist())
    assert ds.n_interactions + len(ds.cold.targets) + ds.cold.dropped == full.n_interactions
    assert s["cold_cases"] == len(ds.cold.targets) > 5000  # enough cases for a paired CI
    from ur4rec_cli.training.trainer import known_items

    assert cold <= set(np.nonzero(~known_items(ds, True))[0].tolist())  # every cold item is unknown to training
    # Each case's history is the user's warm items that came before it, in the sorted sequence.
    view = ColdView(ds)
    rng = np.random.default_rng(0)
    for c in rng.choice(view.eval_users(), 200, replace=False):
        u, target = int(ds.cold.users[c - 1]), int(view.targets(np.array([c]))[0])
        seq = full.sequence(u)
        at = [i for i, it in enumerate(seq) if it == target]
        assert len(at) == 1 and target in cold
        expected = [it for it in seq[: at[0]] if it not in cold]
        assert view.history(int(c)).tolist() == expected and len(expected) >= 1
        assert np.array_equal(view.times(int(c)), full.times(u)[: at[0]][[it not in cold for it in seq[: at[0]]]])
    # Served from the store the second time; another seed is another variant.
    again = json.loads(cli("data", "--cold-items", "0.2", "--json").stdout)
    assert again["cached"] and again["cold_items"] == s["cold_items"]
    other = json.loads(cli("data", "--cold-items", "0.2", "--cold-seed", "1", "--json").stdout)
    assert other["name"] == "ml-100k-cold20s1" and not other["cached"]


@pytest.mark.parametrize("args, says", [(["--cold-items", "1.5"], "cold_items"), (["--cold-items", "-0.1"], "cold_items")])
def test_cold_share_out_of_range_is_one_line(cli, ml100k, args: list[str], says: str) -> None:
    r = cli("data", *args)
    assert r.code == 2 and says in r.stderr and "Traceback" not in r.stderr, r


def test_cold_share_leaving_nothing_is_a_data_error() -> None:
    from ur4rec_cli.errors import DataError

    with pytest.raises(DataError, match="choose a share"):
        split_cold(clustered_dataset(n_users=10, n_items=10, length=5), 0.01, 0)


def test_softmax_over_known_items_equals_the_masked_full_softmax(monkeypatch: pytest.MonkeyPatch) -> None:
    from ur4rec_cli.training import chunked_loss
    from ur4rec_cli.training.trainer import softmax_loss

    g = torch.Generator().manual_seed(0)
    items = torch.randn(31, 8, generator=g)
    catalogue = torch.tensor([i for i in range(1, 31) if i % 4])  # items 4, 8, ... are unknown
    targets = catalogue[torch.randint(0, len(catalogue), (50,), generator=g)]
    vecs = torch.randn(50, 8, generator=g)
    logits = vecs @ items[1:].T
    unknown = torch.tensor([i % 4 == 0 for i in range(1, 31)])
    expected = torch.nn.functional.cross_entropy(logits.masked_fill(unknown, float("-inf")), targets - 1, reduction="sum")
    for budget in (1 << 26, 64):  # the plain loss, then the chunked one
        monkeypatch.setattr(chunked_loss, "LOGITS_BUDGET", budget)
        w = items.clone().requires_grad_(True)
        got = softmax_loss(vecs, w, targets, catalogue=catalogue, reduction="sum")
        assert float(got.detach()) == pytest.approx(float(expected), rel=1e-5)
        got.backward()
        assert float(w.grad[4].abs().sum()) == 0.0 and float(w.grad[1].abs().sum()) > 0  # an unknown item is not even a negative


def _model(n_items: int = 12, text: torch.Tensor | None = None):
    from ur4rec_cli.models.ur4rec import ModelArgs, UR4RecV2

    torch.manual_seed(0)
    model = UR4RecV2(ModelArgs(n_items=n_items, n_users=4, max_len=8, hidden=16, expert_dim=8, modalities=["item_text"], text_dim=6, item_adaptor=True))
    model.set_features(item_text=text if text is not None else torch.randn(n_items + 1, 6))
    torch.nn.init.normal_(model.item_adaptor.experts[0].weight, std=0.1)  # a trained adaptor is not zero
    return model


def test_an_unknown_item_is_scored_from_its_content_alone() -> None:
    model = _model()
    known = torch.ones(13, dtype=torch.bool)
    known[5] = False
    model.set_known(known)
    model.eval()
    before = model.item_vectors().detach().clone()
    with torch.no_grad():
        model.sasrec.encoder.item_emb.weight[5] += 3.0  # its ID embedding is not read
        model.sasrec.encoder.item_emb.weight[6] += 3.0  # a known item's is
    after = model.item_vectors().detach()
    assert torch.equal(after[5], before[5]) and not torch.equal(after[6], before[6])
    assert float(after[5].abs().sum()) > 0  # content: the adaptor's offset and the retriever keys
    # ID dropout draws only in training; a checkpoint without `known` loads with every item known.
    model.id_dropout = 0.5
    table = model.item_table().detach()
    assert torch.equal(model._drop_ids(table), table)  # only in training
    model.train()
    dropped = model._drop_ids(table)
    assert not torch.equal(dropped, model._drop_ids(table)) and torch.equal(dropped[5], table[5])  # unknown: nothing to drop
    swapped = (dropped != table).any(dim=1)
    assert 2 <= int(swapped.sum()) <= 10 and torch.allclose(dropped[swapped] - table[swapped], (model.unknown_id - model.sasrec.item_vectors())[swapped])
    state = {k: v for k, v in model.state_dict().items() if k != "known"}
    fresh = _model()
    fresh.load_state_dict(state)
    assert bool(fresh.known.all())


def test_content_only_vector_ranks_a_planted_cold_item() -> None:
    """Two clusters of items whose texts tell them apart; one item of cluster A never occurs in
    training. Trained with ID dropout, the model ranks it among cluster A's items for cluster-A
    users and below them for cluster-B users: its content alone places it."""
    from ur4rec_cli.data.sequences import pad_left
    from ur4rec_cli.training.trainer import softmax_loss

    ds = clustered_dataset(n_users=80, n_items=24, length=10)  # odd users: items 1..12, even users: 13..24
    planted = 3
    rng = np.random.default_rng(0)
    centre = rng.normal(size=(2, 6))
    text = np.zeros((25, 6), dtype=np.float32)
    for i in range(1, 25):
        text[i] = centre[0 if i <= 12 else 1] + 0.1 * rng.normal(size=6)
    model = _model(24, torch.from_numpy(text))
    torch.nn.init.zeros_(model.item_adaptor.experts[0].weight)
    known = torch.ones(25, dtype=torch.bool)
    known[planted] = False
    model.set_known(known)
    model.id_dropout = 0.3
    seqs = [np.array([i for i in ds.history(u, "train") if i != planted]) for u in range(1, ds.n_users + 1)]
    x = torch.from_numpy(pad_left([s[:-1] for s in seqs], 8))
    y = torch.from_numpy(pad_left([s[1:] for s in seqs], 8))
    users = torch.arange(1, ds.n_users + 1)
    catalogue = torch.tensor([i for i in range(1, 25) if i != planted])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(150):
        vecs, items, aux = model.sequence_loss_inputs(x, users, x != 0)
        loss = softmax_loss(vecs, items, y[x != 0], catalogue=catalogue)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        scores = model.user_vectors(x, users) @ model.item_vectors().T
    a_users = [u - 1 for u in range(1, 81, 2)]
    b_users = [u - 1 for u in range(2, 81, 2)]
    b_best = scores[a_users][:, 13:25].max(dim=1).values
    a_worst = scores[b_users][:, 1:13].max(dim=1).values
    assert float((scores[a_users, planted] > b_best).float().mean()) >= 0.9  # above every cluster-B item for A users
    assert float((scores[b_users, planted] < scores[b_users][:, 13:25].min(dim=1).values).float().mean()) >= 0.9
    assert a_worst.shape[0] == 40


@pytest.fixture(scope="module")
def cold_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cold-item variant of a synthetic data set (as the `ml-100k` artifact), all stages trained."""
    from ur4rec_cli import api

    home = tmp_path_factory.mktemp("cold-home")
    ds = split_cold(clustered_dataset(n_users=120, n_items=60, length=15), 0.2, 0)
    store = ArtifactStore(home)
    with store.write(store.dataset_dir("ml-100k"), kind="dataset") as tmp:
        ds.save(tmp)
    overrides = {
        "home": home,
        "train": {"epochs": 2, "device": "cpu", "batch_size": 32, "id_dropout": 0.2, "learn_validation": False},
        "model": {"modalities": [], "max_len": 20, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 2},
    }
    result = api.train(load_settings(None, overrides))
    (home / "train.json").write_text(json.dumps(result, default=str))
    return home


def test_evaluate_a_cold_variant_ranks_both_test_sets(cli, cold_home: Path, isolated_home, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("UR4REC_HOME", str(cold_home))
    train = json.loads((cold_home / "train.json").read_text())
    assert "of 60 items with a training interaction" in train["loss"]  # cold items are not in the softmax
    ds = Dataset.load(cold_home / "datasets" / "ml-100k")
    r = cli("evaluate", "--json", "--output", str(tmp_path / "r.jsonl"), "--k", "10")
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert res["users"] == len(ds.eval_users()) and res["cold"]["cases"] == len(ds.cold.targets) > 50
    lines = [json.loads(x) for x in (tmp_path / "r.cold.jsonl").read_text().splitlines()]
    assert len(lines) == res["cold"]["cases"] and {str(x["target"]) for x in lines} <= {ds.item_ids[i - 1] for i in ds.cold.items}
    assert sum(row["cases"] for row in res["slices"]["target_popularity"]) == res["users"]  # the slices add up
    # Validation leaves the cold items out, in training and in `evaluate --split valid` alike.
    valid = json.loads(cli("evaluate", "--split", "valid", "--k", "10", "--json").stdout)
    assert valid["metrics"]["NDCG@10"] == pytest.approx(train["final"]["val_ndcg10"], abs=1e-9) and "cold" not in valid
    assert valid["candidates"]["max"] <= ds.n_items - len(ds.cold.items) < res["candidates"]["max"]
    human = cli("evaluate", "--k", "10")
    assert f"cold items, {res['cold']['cases']:,} cases" in human.stdout and "absent from training and validation" in human.stdout

