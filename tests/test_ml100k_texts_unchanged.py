"""ML-100K's template texts and LLM prompts stay byte for byte what they were before any catalogue
could bring its own fields and noun (issue 34), so its published figures and cached answers stand.

The digests below were produced by running ``_digests`` (as written here) against the code of
commit 39ade25, the last one before the change (``git archive 39ade25 src``, on PYTHONPATH): every
text, and every prompt's JSON messages, in internal-id order, each followed by a newline, into one
sha256. ``mirror``: ML-100K from RecBole
1.2.1's wheel (the ``ml100k`` fixture's source), parsed and split as `ur4rec data` does;
``fixture``: ``tests/fixtures/ml-100k`` through the GroupLens parser. Every text and prompt of all
1,682 items and 943 users is covered, the strict second-try prompts too, and the item metadata.
"""

from __future__ import annotations

import hashlib
import json

from conftest import FIXTURES
from ur4rec_cli.data.prepare import load_dataset, prepare_data
from ur4rec_cli.features.llm import prompts as P
from ur4rec_cli.settings import load_settings

BEFORE = {
    "mirror": {
        "items_json": "4627fd01aff632dda617234e4834c94af1c43175850375f5f275609e2ff11ffa",
        "template_items": "d65811f1739fa296ab3170fa675cc046771ad5fca796603d0d8a9a8cabe40733",
        "template_users": "f910badf42cb4b7e24ef778479a18d9f4984291c325dd998e54e8c3c4f1b2992",
        "prompts_item": "ac127f52800e0f8f3ae58463bb8284935e10443a53c33482b3937491ad9f72b0",
        "prompts_item_strict": "3d03c11ff4b603b7e24660231fd3e78e057c5ee311e0c594df79b2c0126b637c",
        "prompts_user": "736ab7939708b0bd214755fe27939cbfee15004b54af4f72bb52b1b5ff8fe754",
        "prompts_user_strict": "f8578a7d0c08ad2051632d02f626b9638b0df356ed4547d1a587a2ccfda57e93",
    },
    "fixture": {
        "items_json": "8efb3cee859c5d4fe00b86f0308742599a7c1ecd4e1a084f9e5ac1e1d6ebfe5e",
        "template_items": "ffc4bc4d32504cc8e7935ef62cf0094b67e84a2610a61f2c0db476412d3389c6",
        "template_users": "db3481e02774b017389e4dc382c809e06a79d6b450f904069825a2c1890c1157",
        "prompts_item": "41d81a08df83f98f1c96ff313352d7c15def0ba9d58622c12acc74d80e0742c8",
        "prompts_item_strict": "b4a6132b68d37450a43523b26a29bb6afd6b01f49ad561e6be634af1a5fde7fe",
        "prompts_user": "1371f9b07690d357a8fa04c388784d564486c78159885c4ab72c79682b9c11d8",
        "prompts_user_strict": "7d974b603675e4629f8a9a0cab4d78769243016ac683f9f9985375803003ca33",
    },
}


def _digests(ds) -> dict[str, str]:
    def joined(strings) -> str:
        h = hashlib.sha256()
        for s in strings:
            h.update(s.encode("utf-8") + b"\n")
        return h.hexdigest()

    items = [{"id": i, **m} for i, m in zip(ds.item_ids, ds.items)]
    out = {
        "items_json": hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest(),
        "template_items": joined(P.template_texts(ds, "item", 20)),
        "template_users": joined(P.template_texts(ds, "user", 20)),
    }
    for kind in ("item", "user"):
        for strict in (False, True):
            prompts = P.build_prompts(ds, kind, 20, strict=strict)
            out[f"prompts_{kind}{'_strict' if strict else ''}"] = joined(json.dumps(p.messages(), ensure_ascii=False) for p in prompts)
    return out


def test_ml100k_texts_and_prompts_are_byte_identical(ml100k) -> None:
    ds, _ = load_dataset(load_settings())
    assert (ds.n_users, ds.n_items, ds.noun, ds.has_rating) == (943, 1682, "movie", True)
    assert _digests(ds) == BEFORE["mirror"]
    assert P.build_prompts(ds, "item", 20)[0].system == P.SYSTEM_PROMPT == P.system_prompt("movie")


def test_grouplens_files_give_the_same_texts_as_before() -> None:
    settings = load_settings(None, {"data": {"source": str(FIXTURES / "ml-100k")}})
    prepare_data(settings)
    ds, _ = load_dataset(settings)
    assert ds.noun == "movie"
    assert _digests(ds) == BEFORE["fixture"]


def test_cache_keys_of_ml100k_texts_are_unchanged() -> None:
    """The texts artifact and the answer cache are keyed by these versions; the same bytes keep them."""
    assert (P.PROMPT_VERSION, P.STRICT_VERSION, P.TEMPLATE_VERSION) == ("v2", "s1", "t1")
