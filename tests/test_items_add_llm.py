"""`items add` on a run trained on LLM item descriptions: new items are described by the same backend,
model and prompt (a real OpenAI-compatible server on 127.0.0.1), through the answer cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from openai_server import ChatServer, Fault, chat_server, default_answer
from test_items_add import two_genre_dataset
from ur4rec_cli.features.llm import prompts as P
from ur4rec_cli.store import ArtifactStore

KEY = "sk-items-add-test"


@pytest.fixture(scope="module")
def server():
    with chat_server(api_key=KEY) as s:
        yield s


def _llm_env(server: ChatServer) -> dict[str, str]:
    return {"UR4REC_LLM__API_KEY": KEY, "UR4REC_LLM__BASE_URL": server.base_url, "UR4REC_LLM__MODEL": "test-model",
            "UR4REC_LLM__RETRY_BASE_DELAY": "0.01", "UR4REC_LLM__MAX_RETRIES": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def llm_home(tmp_path_factory: pytest.TempPathFactory, server: ChatServer) -> Path:
    """A small data set whose texts came from the server (openai backend), one run trained on them."""
    from ur4rec_cli import api
    from ur4rec_cli.settings import load_settings

    home = tmp_path_factory.mktemp("llm-items-home")
    store = ArtifactStore(home)
    with store.write(store.dataset_dir("ml-100k"), kind="dataset") as tmp:
        two_genre_dataset(n_users=24, n_items=16, length=8).save(tmp)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("UR4REC_")}
    os.environ.update(_llm_env(server))
    try:
        overrides = {
            "home": home,
            "llm": {"backend": "openai"},
            "train": {"epochs": 1, "device": "cpu", "batch_size": 16},
            "model": {"modalities": ["item_text"], "max_len": 10, "hidden": 16, "expert_dim": 8, "layers": 1, "tie_orders": 1},
        }
        settings = load_settings(None, overrides)
        assert api.generate_texts(settings)["backend"] == "openai"
        api.train(settings)
    finally:
        for k in _llm_env(server):
            os.environ.pop(k, None)
        os.environ.update(saved)
    return home


@pytest.fixture
def home(llm_home: Path, isolated_home: Path, server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UR4REC_HOME", str(llm_home))
    for k, v in _llm_env(server).items():
        monkeypatch.setenv(k, v)
    return llm_home


def _added(home: Path) -> list[dict]:
    folder = home / "runs" / "ml-100k" / "main" / "index"
    return json.loads((folder / "added_items.json").read_text("utf-8")) if (folder / "added_items.json").exists() else []


def _prompt(title: str, year: int, genres: list[str], raw_id: str, strict: bool = False) -> str:
    make = P.strict_item_prompt_of if strict else P.item_prompt_of
    return make({"title": title, "year": year, "genres": genres}, raw_id, 1, "movie").user


def test_new_items_are_described_by_the_runs_own_llm_once(cli, home: Path, server: ChatServer, tmp_path: Path) -> None:
    new = tmp_path / "new.csv"
    new.write_text("item_id,title,year,genres\n501,Curse of the Lake,1991,Horror|Thriller\n502,Puppies on Parade,1993,Children's|Musical\n", "utf-8")
    first, second = _prompt("Curse of the Lake", 1991, ["Horror", "Thriller"], "501"), _prompt("Puppies on Parade", 1993, ["Children's", "Musical"], "502")
    server.fail_next(Fault.reply("Too short."), times=2)  # both first answers are rejected by the answer checks
    before = {p: server.answered[p] for p in (first, second)}
    r = cli("items", "add", str(new), "--json")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["added"] == ["501", "502"]
    assert "openai descriptions (test-model" in out["text"]
    rows = {a["id"]: a for a in _added(home)}
    # Both first prompts went to the server as `ur4rec llm` words them; each rejected first answer got the stricter second prompt.
    assert server.answered[first] == before[first] + 1 and server.answered[second] == before[second] + 1
    retried = [i for i, p in (("501", first), ("502", second)) if rows[i]["text"] != default_answer(p)]
    for i in retried:
        title, year, genres = ("Curse of the Lake", 1991, ["Horror", "Thriller"]) if i == "501" else ("Puppies on Parade", 1993, ["Children's", "Musical"])
        assert rows[i]["text"] == default_answer(_prompt(title, year, genres, i, strict=True))
    assert len(retried) == 2 and "2 llm-retry" in out["text"]
    # The same file again: nothing added, nothing asked.
    asked = sum(server.answered.values())
    again = json.loads(cli("items", "add", str(new), "--json").stdout)
    assert again["added"] == [] and sum(server.answered.values()) == asked


def test_changed_llm_settings_are_one_line_and_write_nothing(cli, home: Path, server: ChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = tmp_path / "new.csv"
    new.write_text("title,year,genres\nThe Quiet Cabin,1994,Horror\n", "utf-8")
    monkeypatch.setenv("UR4REC_LLM__MODEL", "another-model")
    n, asked = len(_added(home)), sum(server.requests.values())
    r = cli("items", "add", str(new))
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "model differ" in r.stderr and "--text template" in r.stderr
    assert len(_added(home)) == n and sum(server.requests.values()) == asked
    # --text template: no request, the template description, and a warning that says why it differs.
    r = cli("items", "add", str(new), "--text", "template", "--json")
    assert r.code == 0, r.stderr
    assert "trained on openai descriptions" in r.stderr and sum(server.requests.values()) == asked
    assert _added(home)[-1]["text"] == P.template_item_text_of({"title": "The Quiet Cabin", "year": 1994, "genres": ["Horror"]}, "x", "movie")
    assert cli("items", "add", str(new), "--text", "gpt").code == 2


def test_a_failing_server_writes_nothing_and_the_rerun_asks_only_what_is_missing(cli, home: Path, server: ChatServer, tmp_path: Path) -> None:
    new = tmp_path / "new.csv"
    new.write_text("item_id,title,year,genres\n601,Marsh Lights,1995,Horror\n602,Sing Along Summer,1996,Musical\n", "utf-8")
    ok, bad = _prompt("Marsh Lights", 1995, ["Horror"], "601"), _prompt("Sing Along Summer", 1996, ["Musical"], "602")
    server.fail_next(Fault.status(500, match="Sing Along Summer"), times=2)  # 1 try + 1 retry (max_retries 1)
    n = len(_added(home))
    r = cli("items", "add", str(new))
    assert r.code == 6 and len(r.stderr.strip().splitlines()) == 1 and "run the command again" in r.stderr
    assert len(_added(home)) == n and server.answered[ok] == 1 and server.answered[bad] == 0
    r = cli("items", "add", str(new), "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["added"] == ["601", "602"]
    assert server.answered[ok] == 1 and server.answered[bad] == 1  # the answered one came from the cache


def test_texts_no_longer_in_the_home_give_template_descriptions_with_a_warning(home: Path, capsys: pytest.CaptureFixture) -> None:
    """When `ur4rec llm` ran again after training, the run's texts (named by its checkpoint) are
    gone: their spec is unknown, so new items get template descriptions and a warning says why."""
    from ur4rec_cli.features.llm.new_items import describe_new_items, run_text_spec
    from ur4rec_cli.settings import load_settings

    settings = load_settings()
    assert run_text_spec(settings, "ml-100k", {"text_emb": "0" * 64}) is None  # another text_emb than the home's
    digest = ArtifactStore(home).load(home / "features" / "ml-100k" / "text_emb", kind="text_emb").digest
    spec = run_text_spec(settings, "ml-100k", {"text_emb": digest})
    assert spec is not None and spec["backend"] == "openai" and spec["model"] == "test-model"
    rows = [{"id": "777", "title": "Echo Valley", "year": 1997, "genres": ["Western"]}]
    texts, how = describe_new_items(settings, "ml-100k", None, rows, noun="movie")
    assert texts == [P.template_item_text_of(rows[0], "777", "movie")] and how.startswith("template descriptions")
    assert "no longer in the home" in capsys.readouterr().err
