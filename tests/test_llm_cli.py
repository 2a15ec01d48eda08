"""`ur4rec llm --backend openai` end to end against a real chat-completions server on 127.0.0.1.

The fixture dataset (7 items, 4 users: 11 prompts) keeps every run small; embeddings are off here
(`--no-embed`), the real-data test covers them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import FIXTURES, signal_when
from openai_server import ChatServer, Fault, chat_server, default_answer

KEY = "sk-LEAK-CANARY-7f3a9c0e51d24b68"
N_PROMPTS = 11  # 7 items + 4 users


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture ML-100K prepared once; tests copy its dataset artifact into their own home."""
    from ur4rec_cli.api import prepare_data
    from ur4rec_cli.settings import load_settings

    home = tmp_path_factory.mktemp("tiny-home")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("UR4REC_")}
    try:
        prepare_data(load_settings(None, {"home": home, "data": {"source": str(FIXTURES / "ml-100k")}}))
    finally:
        os.environ.update(saved)
    return home / "datasets"


@pytest.fixture
def home(tiny_dataset: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(tiny_dataset, isolated_home / "datasets")
    monkeypatch.setenv("UR4REC_LLM__API_KEY", KEY)
    monkeypatch.setenv("UR4REC_LLM__RETRY_BASE_DELAY", "0.01")
    return isolated_home


@pytest.fixture
def server():
    with chat_server(api_key=KEY) as s:
        yield s


def _prompts() -> list[str]:
    """The user messages `ur4rec llm` sends for the fixture dataset, built the way it builds them."""
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import load_settings

    settings = load_settings()
    ds, _ = load_dataset(settings)
    h = settings.llm.history_items
    return [p.user for p in P.build_prompts(ds, "item", h) + P.build_prompts(ds, "user", h)]


def _cache_file(home: Path) -> Path:
    return home / "cache" / "llm" / "ml-100k.jsonl"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]  # raises on any invalid line


def _texts(home: Path, group: str) -> list[str]:
    return [r["text"] for r in _jsonl(home / "features" / "ml-100k" / "texts" / f"{group}.jsonl")]


def _llm(cli, server: ChatServer, *args: str):
    return cli("llm", "--backend", "openai", "--base-url", server.base_url, "--model", "test-model", "--no-embed", *args)


def test_openai_run_with_faults_then_reruns(cli, home: Path, server: ChatServer) -> None:
    """Retried faults, texts from the answers, a rerun and a --force rerun without a single request."""
    server.fail_next(Fault.status(429, retry_after=0.2))
    server.fail_next(Fault.status(500))
    server.fail_next(Fault.reply('```\n"A cleaned-up answer."\n```', match="Movie: "))
    r = cli("llm", "--base-url", server.base_url, "--model", "test-model", "--no-embed", "--json")  # auto: a key is set
    assert r.code == 0, r
    assert "llm backend: openai (auto: an API key is configured)" in r.stderr
    summary = json.loads(r.stdout)
    assert summary["backend"] == "openai" and summary["complete"] is True
    assert summary["items"] == {"total": 7, "done": 7, "cached": 0, "failed": 0, "remaining": 0}
    assert summary["users"] == {"total": 4, "done": 4, "cached": 0, "failed": 0, "remaining": 0}
    assert summary["requests"] == {"sent": N_PROMPTS + 2, "retries": 2}
    assert summary["tokens"]["input"] > 0 and summary["tokens"]["output"] > 0
    prompts = _prompts()
    assert set(server.requests) == set(prompts) and sum(server.requests.values()) == N_PROMPTS + 2
    items, users = _texts(home, "items"), _texts(home, "users")
    assert len(items) == 7 and len(users) == 4
    # One item got the fenced, quoted reply (cleaned); every other text is its prompt's own answer.
    assert items.count("A cleaned-up answer.") == 1
    others = [t for t in items + users if t != "A cleaned-up answer."]
    assert len(set(others)) == 10 and set(others) <= {default_answer(p) for p in prompts}
    assert len(_jsonl(_cache_file(home))) == N_PROMPTS
    manifest = json.loads((home / "features" / "ml-100k" / "texts" / "manifest.json").read_text())
    assert manifest["extra"]["backend"] == "openai" and manifest["extra"]["model"] == "test-model"

    sent = sum(server.requests.values())
    again = _llm(cli, server, "--json")
    assert again.code == 0, again
    assert json.loads(again.stdout)["texts"]["status"] == "cached"
    forced = _llm(cli, server, "--force", "--json")
    assert forced.code == 0, forced
    fs = json.loads(forced.stdout)
    assert fs["texts"]["status"] == "written" and fs["items"]["cached"] == 7 and fs["users"]["cached"] == 4
    assert fs["requests"]["sent"] == 0
    assert sum(server.requests.values()) == sent  # neither rerun asked the endpoint anything
    assert sorted(_texts(home, "items")) == sorted(items)

    # The key is nowhere: not in any output, not in any file of the store.
    for out in (r.stdout, r.stderr, again.stdout, again.stderr, forced.stdout, forced.stderr):
        assert KEY not in out
    for path in home.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert all(req.auth == f"Bearer {KEY}" for req in server.log)  # ... yet it was sent


def test_table_output_and_limit_then_dry_run(cli, home: Path, server: ChatServer) -> None:
    from ur4rec_cli.features.llm import prompts as P

    r = _llm(cli, server, "--limit", "4")
    assert r.code == 0, r
    assert "incomplete: 7 prompts still to send; rerun to continue" in r.stdout
    assert "tokens: " in r.stdout and "requests 4" in r.stdout
    assert sum(server.requests.values()) == 4
    assert not (home / "features" / "ml-100k" / "texts").exists()  # no texts artifact until every text exists

    prompts = _prompts()
    pending = [p for p in prompts if p not in server.requests]
    dry = _llm(cli, server, "--dry-run", "--json")
    assert dry.code == 0, dry
    d = json.loads(dry.stdout)
    assert d["dry_run"] is True and d["requests_to_send"] == 7 == len(pending)
    assert d["estimated_input_tokens"] == sum(len(P.SYSTEM_PROMPT) + len(p) for p in pending) // 4 > 0
    assert d["items"]["remaining"] + d["users"]["remaining"] == 7
    assert "dry run: 7 prompt(s) to send, about" in dry.stderr
    human = _llm(cli, server, "--dry-run")
    assert human.code == 0 and f"would send 7 requests, about {d['estimated_input_tokens']:,} input tokens" in human.stdout
    assert sum(server.requests.values()) == 4  # dry runs send nothing


def test_dry_run_needs_no_key(cli, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UR4REC_LLM__API_KEY")
    dry = cli("llm", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--dry-run", "--json")
    assert dry.code == 0, dry
    assert json.loads(dry.stdout)["requests_to_send"] == N_PROMPTS
    real = cli("llm", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--no-embed")
    assert real.code == 2 and "needs an API key" in real.stderr


@pytest.mark.parametrize(
    ("code", "label"),
    [(401, "API key rejected (HTTP 401)"), (400, "bad request (HTTP 400)"), (403, "forbidden (HTTP 403)")],
)
def test_unfixable_http_errors_one_line_and_exit_6(cli, home: Path, server: ChatServer, monkeypatch: pytest.MonkeyPatch, code: int, label: str) -> None:
    if code == 401:
        wrong = "sk-wrong-key-ABCDEF0123456789"
        monkeypatch.setenv("UR4REC_LLM__API_KEY", wrong)  # the server echoes the key it got
        secret = wrong
    else:
        server.fail_next(Fault.status(code, message=f"simulated {code}"))
        secret = KEY
    r = _llm(cli, server, "--concurrency", "1")
    assert r.code == 6, r
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: LLM endpoint http://127.0.0.1:") and label in lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in r.stderr
    assert secret not in r.stdout + r.stderr
    assert sum(server.requests.values()) == 1  # not retried


def test_killed_midway_then_resumed(cli, home: Path, server: ChatServer) -> None:
    """SIGKILL after some answers are cached; the rerun sends exactly the missing prompts."""
    server.delay = 0.05
    server.hold_after = 4  # after 4 answers, hold every request: the kill lands with 2 in flight
    cmd = [sys.executable, "-m", "ur4rec_cli", "llm", "--backend", "openai", "--base-url", server.base_url,
           "--model", "test-model", "--concurrency", "2", "--no-embed"]  # fmt: skip
    cache = _cache_file(home)
    signal_when(
        cmd, lambda: cache.exists() and len(cache.read_bytes().splitlines()) >= 4 and server.in_flight == 2, signal.SIGKILL,
        within=60, wait=10, what="the kill point",
    )  # fmt: skip
    first = server.requests.copy()
    in_flight = {p for p in first if server.answered[p] == 0}
    assert sum(first.values()) == 6 and len(in_flight) == 2  # 4 answered and cached, 2 held when killed
    cached = _jsonl(cache)
    assert len(cached) == 4
    assert not (home / "features" / "ml-100k" / "texts").exists()  # no half artifact
    # A write torn by the kill: the next run must tolerate it and rewrite the file.
    with open(cache, "ab") as fh:
        fh.write(b'{"key": "0123abc", "kind": "item", "te')

    server.hold_after = None
    server.release.set()
    dry = _llm(cli, server, "--dry-run", "--json")  # a dry run sees what is missing and writes nothing
    assert json.loads(dry.stdout)["requests_to_send"] == N_PROMPTS - 4
    assert "1 unreadable line(s)" in dry.stderr and cache.read_bytes().endswith(b'"te')
    rerun = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 unreadable line(s)" in rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["complete"] is True and summary["requests"]["sent"] == N_PROMPTS - 4
    assert summary["items"]["cached"] + summary["users"]["cached"] == 4

    prompts = _prompts()
    total = server.requests
    assert set(total) == set(prompts)
    assert {p for p, n in total.items() if n != 1} == in_flight  # only the in-flight ones were asked twice
    assert all(total[p] == 2 for p in in_flight) and len(in_flight) <= 2  # <= concurrency
    final = _jsonl(cache)  # valid JSONL: the torn line is gone
    assert len(final) == N_PROMPTS == len({r["key"] for r in final})
    assert sorted(r["text"] for r in final) == sorted(default_answer(p) for p in prompts)
    assert sorted(_texts(home, "items") + _texts(home, "users")) == sorted(default_answer(p) for p in prompts)
    assert KEY not in rerun.stdout + rerun.stderr

    # A normal rerun is served from the store: zero requests.
    before = sum(total.values())
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert sum(server.requests.values()) == before
    assert Counter(total) == server.requests


def test_identical_prompts_are_sent_once(cli, isolated_home: Path, tmp_path: Path, server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """ML-100K lists some movies twice under two ids (18 identical item prompts): one request each."""
    src = shutil.copytree(FIXTURES / "ml-100k", tmp_path / "src" / "ml-100k")
    lines = (src / "u.item").read_bytes()
    (src / "u.item").write_bytes(lines + b"8" + lines.splitlines()[0][1:] + b"\n")  # Toy Story again, id 8
    (src / "u.info").write_text("4 users\n8 items\n14 ratings\n")
    monkeypatch.setenv("UR4REC_LLM__API_KEY", KEY)
    assert cli("data", "--source", str(src)).code == 0
    dry = _llm(cli, server, "--dry-run", "--json")
    assert json.loads(dry.stdout)["requests_to_send"] == N_PROMPTS  # 12 entities, 11 distinct prompts
    r = _llm(cli, server, "--json")
    assert r.code == 0, r
    assert json.loads(r.stdout)["items"]["done"] == 8
    assert len(server.requests) == N_PROMPTS and set(server.requests.values()) == {1}
    items = _texts(isolated_home, "items")
    assert len(items) == 8 and items[0] == items[7]
    assert len(_jsonl(_cache_file(isolated_home))) == N_PROMPTS


@pytest.mark.parametrize("sig, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_every_answer(home: Path, server: ChatServer, sig: int, exit_code: int) -> None:
    """Ctrl-C, and SIGTERM by the same path (termination.py)."""
    server.delay = 0.05
    server.hold_after = 3
    cmd = [sys.executable, "-m", "ur4rec_cli", "llm", "--backend", "openai", "--base-url", server.base_url,
           "--model", "test-model", "--concurrency", "2", "--no-embed"]  # fmt: skip
    cache = _cache_file(home)
    code, err = signal_when(
        cmd, lambda: cache.exists() and len(cache.read_bytes().splitlines()) >= 3 and server.in_flight == 2, sig,
        within=60, wait=30, what="the interrupt point",
    )  # fmt: skip
    assert code == exit_code, err
    assert err.strip().splitlines()[-1] == ("error: interrupted" if sig == signal.SIGINT else "error: stopped by SIGTERM"), err
    assert "interrupted: every answer received so far is in the cache" in err and "Traceback" not in err
    assert len(_jsonl(_cache_file(home))) == 3
    assert KEY not in err


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_fails_fast_and_says_nothing_is_cached(cli, home: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    t0 = time.perf_counter()
    r = cli("llm", "--backend", "openai", "--base-url", url, "--no-embed")
    elapsed = time.perf_counter() - t0
    assert r.code == 6 and elapsed < 10, (elapsed, r)
    last = r.stderr.strip().splitlines()[-1]
    assert last == f"error: cannot reach {url}: connection refused (is the server running?); nothing is cached yet", r
    assert not _cache_file(home).exists()


def test_refused_after_answers_names_the_cache(cli, home: Path, server: ChatServer) -> None:
    assert _llm(cli, server, "--limit", "3").code == 0
    assert len(_jsonl(_cache_file(home))) == 3
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    r = cli("llm", "--backend", "openai", "--base-url", url, "--model", "test-model", "--no-embed")
    assert r.code == 6
    assert r.stderr.strip().splitlines()[-1].endswith(f"3 answers are cached in {_cache_file(home)}: rerun to resume"), r


def test_dry_run_does_not_call_valid_template_texts_stale(cli, home: Path) -> None:
    assert cli("llm", "--backend", "template", "--no-embed").code == 0
    r = cli("llm", "--backend", "openai", "--dry-run", "--json")
    assert r.code == 0, r
    status = json.loads(r.stdout)["texts"]["status"]
    assert status == "valid template texts, to be replaced by openai texts"
    r = cli("llm", "--backend", "template", "--dry-run", "--json")
    assert json.loads(r.stdout)["texts"]["status"] == "cached"
