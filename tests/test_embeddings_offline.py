"""The default text encoder ships with the plain install; an unreachable hub costs one quick probe."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_default_encoder_is_the_bundled_copy_without_touching_the_network(monkeypatch) -> None:
    from ur4rec_cli.features import embeddings

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def no_network(*a, **k):
        raise AssertionError("the default encoder must not probe the hub")

    monkeypatch.setattr(embeddings, "_hub_reachable", no_network)
    resolved = embeddings.resolve_model(embeddings.DEFAULT_MODEL)
    assert resolved.source == embeddings.BUNDLED_SOURCE and Path(resolved.location).is_dir()


def test_other_hub_names_notice_an_unreachable_hub_once(monkeypatch) -> None:
    import os

    from ur4rec_cli.features import embeddings

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(embeddings, "_hub_reachable", lambda *a, **k: calls.append(1) or False)
    resolved = embeddings.resolve_model("someone/some-model")
    assert resolved.source == "hub cache" and os.environ["HF_HUB_OFFLINE"] == "1" and calls == [1]
    with pytest.raises(embeddings.WeightsError, match="not in the local cache: pass a local model folder"):
        embeddings.load_encoder("someone/some-model", "cpu")
