"""`ur4rec clip --fetch-posters` against a real local HTTP server speaking TMDB's endpoints."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from clip_data import item_meta, write_dataset, write_image
from tmdb_server import Movie, TMDBServer, TMDBState, jpeg_bytes

KEY = "0123456789abcdef0123456789abcdef"
# TMDB knows items 1-4 of the synthetic catalog (item 4 only by its alternate title), not item 5.
MOVIES = [
    Movie(862, "Toy Story", "1995-10-30", "/toy.jpg"),
    Movie(710, "GoldenEye", "1995-11-16", "/goldeneye.jpg"),
    Movie(711, "GoldenEye: The Game", "1997-08-25", None),
    Movie(629, "The Usual Suspects", "1995-07-19", "/usual.jpg"),
    Movie(99, "Yao a yao yao dao waipo qiao", "1995-05-02", "/triad.jpg"),
]
IMAGES = {"/toy.jpg": jpeg_bytes((200, 30, 30)), "/goldeneye.jpg": jpeg_bytes((30, 200, 30)),
          "/usual.jpg": jpeg_bytes((30, 30, 200)), "/triad.jpg": jpeg_bytes((200, 200, 30))}


@pytest.fixture
def tmdb():
    with TMDBServer(TMDBState(api_key=KEY, movies=MOVIES, images=dict(IMAGES))) as srv:
        yield srv


@pytest.fixture
def tmdb_env(tmdb: TMDBServer, monkeypatch: pytest.MonkeyPatch) -> TMDBServer:
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    monkeypatch.setenv("UR4REC_CLIP__TMDB_BASE_URL", tmdb.base_url)
    monkeypatch.setenv("UR4REC_CLIP__TMDB_IMAGE_URL", tmdb.image_url)
    monkeypatch.setenv("UR4REC_CLIP__TMDB_RATE", "500")
    return tmdb


def _settings():
    from ur4rec_cli.settings import load_settings

    return load_settings(None, {})


def _items(n: int = 5) -> list[tuple[str, dict]]:
    return list(item_meta(n).items())


def test_fetch_downloads_matches_and_reports_misses(isolated_home: Path, tmdb_env: TMDBServer) -> None:
    from ur4rec_cli.features.images.posters import fetch_posters

    tmdb_env.state.fail_next = 1  # one 429 first: retried, not fatal
    report = fetch_posters(_settings(), _items())
    assert report.downloaded == 4 and report.errors == 0
    assert report.unmatched == ["Nowhere Film Nobody Knows (1994)"]
    posters = isolated_home / "cache" / "posters"
    assert sorted(p.name for p in posters.glob("*.jpg")) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    assert (posters / "1.jpg").read_bytes() == IMAGES["/toy.jpg"]
    assert (posters / "4.jpg").read_bytes() == IMAGES["/triad.jpg"]  # found through its alternate title
    lookups = [json.loads(line) for line in (posters / "lookups.jsonl").read_text().splitlines()]
    assert {r["item"]: r["tmdb_id"] for r in lookups} == {"1": 862, "2": 710, "3": 629, "4": 99, "5": None}
    # The article moved back to the front for the query, the key sent as api_key.
    assert any("query=The+Usual+Suspects" in r and f"api_key={KEY}" in r for r in tmdb_env.search_requests())


def test_rerun_is_cached_and_resumes(isolated_home: Path, tmdb_env: TMDBServer) -> None:
    from ur4rec_cli.features.images.posters import fetch_posters

    fetch_posters(_settings(), _items())
    n_search, n_all = len(tmdb_env.search_requests()), len(tmdb_env.state.requests)
    again = fetch_posters(_settings(), _items())
    assert again.downloaded == 0 and again.already_cached == 4 and again.lookups_cached == 1
    assert again.unmatched == ["Nowhere Film Nobody Knows (1994)"]  # the miss is remembered, not re-asked
    assert len(tmdb_env.state.requests) == n_all
    # An interrupted run: one poster lost. The rerun downloads it without searching again.
    (isolated_home / "cache" / "posters" / "2.jpg").unlink()
    resumed = fetch_posters(_settings(), _items())
    assert resumed.downloaded == 1 and len(tmdb_env.search_requests()) == n_search
    assert (isolated_home / "cache" / "posters" / "2.jpg").read_bytes() == IMAGES["/goldeneye.jpg"]


def test_bearer_token_and_bad_key(isolated_home: Path, tmdb: TMDBServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from ur4rec_cli.errors import ConfigError
    from ur4rec_cli.features.images.posters import fetch_posters

    token = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ0ZXN0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    tmdb.state.api_key = token
    monkeypatch.setenv("UR4REC_CLIP__TMDB_BASE_URL", tmdb.base_url)
    monkeypatch.setenv("UR4REC_CLIP__TMDB_IMAGE_URL", tmdb.image_url)
    monkeypatch.setenv("TMDB_API_KEY", token)
    report = fetch_posters(_settings(), _items(1))
    assert report.downloaded == 1
    assert all("api_key" not in r for r in tmdb.search_requests())
    monkeypatch.setenv("TMDB_API_KEY", "wrong")
    with pytest.raises(ConfigError, match="HTTP 401") as exc:
        fetch_posters(_settings(), _items(3)[1:])
    assert "wrong" not in str(exc.value)


def test_unreachable_tmdb_is_one_error(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from ur4rec_cli.errors import DownloadError
    from ur4rec_cli.features.images import posters

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(posters, "MAX_RETRIES", 0)
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    monkeypatch.setenv("UR4REC_CLIP__TMDB_BASE_URL", f"http://127.0.0.1:{port}/3")
    monkeypatch.setenv("UR4REC_CLIP__TMDB_RATE", "500")
    with pytest.raises(DownloadError, match="unreachable.*rerun to resume") as exc:
        posters.fetch_posters(_settings(), list(item_meta(10).items()))
    assert KEY not in str(exc.value)


def test_rate_limiter_spaces_calls() -> None:
    from ur4rec_cli.features.images.posters import _RateLimiter

    limiter = _RateLimiter(50.0)
    t0 = time.monotonic()
    for _ in range(6):
        limiter.wait()
    assert time.monotonic() - t0 >= 5 / 50 - 0.005


def test_fetch_posters_without_key_is_a_clear_error(isolated_home: Path, cli) -> None:
    write_dataset(isolated_home)
    r = cli("clip", "--fetch-posters", "--pretrained", "none")
    assert r.code == 2 and "TMDB_API_KEY" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r


def test_cli_fetches_then_uses_posters_user_folder_wins(isolated_home: Path, tmp_path: Path, tmdb_env: TMDBServer, cli) -> None:
    write_dataset(isolated_home, n_items=8)
    images = tmp_path / "images"
    write_image(images / "1.png", seed=1)  # the user's own poster of Toy Story
    r = cli("clip", "--images", str(images), "--fetch-posters", "--pretrained", "none", "--json")
    assert r.code == 0, r
    out = json.loads(r.stdout)
    assert all("Toy+Story" not in q for q in tmdb_env.search_requests())  # never looked up
    assert out["posters"]["downloaded"] == 3 and "Nowhere Film Nobody Knows (1994)" in out["posters"]["unmatched"]
    assert (out["items"], out["from_image"], out["from_posters"], out["from_text"], out["skipped"]) == (8, 4, 3, 4, 0)
    assert "no TMDB poster for" in r.stderr and "Synthetic Movie 6" in r.stderr
    prov = json.loads((isolated_home / "features" / "ml-100k" / "clip" / "provenance.json").read_text())
    assert prov[0]["file"] == "images/1.png" and prov[1]["file"] == "posters/2.jpg" and prov[4]["source"] == "text"
