"""model.cold_neighbours: an item without a training interaction borrows its ID-side blocks from its
nearest known items by item text (models/cold_neighbours.py), at scoring time only."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_models_ur4rec import N_ITEMS, _model  # noqa: E402

from ur4rec_cli.models.cold_neighbours import Neighbours, neighbour_mean  # noqa: E402
from ur4rec_cli.runs import set_cold_neighbours  # noqa: E402
from ur4rec_cli.settings import Settings  # noqa: E402


def test_neighbour_mean_is_a_softmax_of_cosines_over_the_top_k_times_the_scale() -> None:
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    rows = torch.tensor([[10.0], [20.0], [30.0], [40.0]])
    queries = torch.tensor([[2.0, 0.1], [0.0, 3.0]])  # cosine, so the length does not matter
    one = neighbour_mean(queries, keys, rows, Neighbours(k=1, temperature=0.03, scale=0.5))
    assert torch.equal(one, torch.tensor([[5.0], [10.0]]))  # the nearest row, times the scale
    two = neighbour_mean(queries, keys, rows, Neighbours(k=2, temperature=0.1, scale=1.0))
    cos = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(keys, dim=1).T
    top, idx = cos.topk(2, dim=1)
    w = torch.softmax(top / 0.1, dim=1)
    assert torch.allclose(two[:, 0], (w * rows[idx, 0]).sum(1))
    flat = neighbour_mean(queries, keys, rows, Neighbours(k=99, temperature=1e6, scale=1.0))  # k clamps; a hot softmax averages
    assert torch.allclose(flat, rows.mean(0).expand(2, 1))
    with pytest.raises(ValueError, match="no known item"):
        neighbour_mean(queries, keys[:0], rows[:0], Neighbours(1, 0.03, 1.0))


def _with_unknown(anchor: float = 1.0):
    model = _model(anchor=anchor).eval()
    torch.manual_seed(5)
    for p in model.anchor.parameters():  # an anchor unlike the live SASRec
        p.data.normal_(0, 0.1)
    known = torch.ones(N_ITEMS + 1, dtype=torch.bool)
    known[[5, 9]] = False
    model.set_known(known)
    model.item_text[5] = model.item_text[3] * 2.0  # item 5's text points where item 3's does
    return model


def test_an_unknown_item_borrows_its_nearest_known_items_id_blocks_and_keeps_its_own_keys() -> None:
    model = _with_unknown()
    with torch.no_grad():
        off = model.item_vectors().clone()
        model.set_cold_neighbours(1, scale=0.8)
        on = model.item_vectors()
    h, width = model.args.hidden, on.shape[1]
    ids = torch.zeros(width, dtype=torch.bool)
    ids[:h] = True
    ids[width - h :] = True  # the item token and the anchor's row
    assert [name for name, *_ in model.block_bounds()] == ["sasrec", "user_text", "item_text", "image", "anchor"]
    assert torch.allclose(on[5, ids], 0.8 * on[3, ids])  # borrowed from its text's twin, scaled
    assert torch.equal(on[5, ~ids], off[5, ~ids])  # the retriever keys are its own content's
    assert not torch.allclose(on[9, ids], off[9, ids])  # the other unknown item borrows too
    known = model.known.clone()
    known[[5, 9]] = False
    assert torch.equal(on[known], off[known])  # known items (and padding) do not move
    model.set_cold_neighbours(0)
    assert model.neighbours is None and torch.equal(model.item_vectors(), off)


def test_an_added_item_gets_the_vector_of_a_catalogue_item_with_the_same_content() -> None:
    model = _with_unknown()
    model.set_cold_neighbours(3, temperature=0.05, scale=0.9)
    with torch.no_grad():
        catalogue = model.item_vectors()
        added = model.new_item_vectors(model.item_text[[5, 9]].clone(), model.image[[5, 9]].clone())
    assert torch.allclose(added, catalogue[[5, 9]], atol=1e-5)


def test_the_settings_reach_the_model_and_sasrec_has_nothing_to_borrow() -> None:
    model = _with_unknown()
    set_cold_neighbours(model, Settings(model={"cold_neighbours": 4, "cold_temperature": 0.2, "cold_scale": 0.7}))
    assert model.neighbours == Neighbours(4, 0.2, 0.7)
    set_cold_neighbours(model, Settings(model={"cold_neighbours": 0}))
    assert model.neighbours is None
    set_cold_neighbours(model.sasrec, Settings())  # stage 1 alone: no unknown-item path, no error


def test_queries_are_taken_in_chunks_with_the_same_result(monkeypatch) -> None:
    from ur4rec_cli.models import cold_neighbours

    g = torch.Generator().manual_seed(3)
    queries, keys, rows = torch.randn(50, 8, generator=g), torch.randn(30, 8, generator=g), torch.randn(30, 5, generator=g)
    nb = Neighbours(4, 0.1, 0.9)
    whole = neighbour_mean(queries, keys, rows, nb)
    monkeypatch.setattr(cold_neighbours, "CHUNK_CELLS", 65)  # 2 queries per chunk
    assert torch.allclose(neighbour_mean(queries, keys, rows, nb), whole, atol=1e-6)
    assert neighbour_mean(queries[:0], keys, rows, nb).shape == (0, 5)
