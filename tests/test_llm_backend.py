"""The openai backend through the real `openai` client against a real chat-completions server.

Retries (429 with Retry-After, 5xx, timeouts, malformed replies), the errors that must not be
retried (400/401/403, quota), tolerant parsing of answers, and the circuit breaker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openai_server import ChatServer, Fault, chat_server, default_answer
from ur4rec_cli.errors import LLMError
from ur4rec_cli.features.llm.backends import RunStats, run_openai
from ur4rec_cli.features.llm.cleanup import parse_answer
from ur4rec_cli.features.llm.cache import AnswerCache
from ur4rec_cli.features.llm.prompts import SYSTEM_PROMPT, Prompt
from ur4rec_cli.settings import LLMConfig

KEY = "sk-test-backend-0123456789abcdef"


@pytest.fixture
def server():
    with chat_server(api_key=KEY) as s:
        yield s


def _cfg(server: ChatServer, **kw) -> LLMConfig:
    base = {"base_url": server.base_url, "model": "test-model", "concurrency": 2, "max_retries": 3, "retry_base_delay": 0.01, "timeout": 5.0}
    return LLMConfig(**{**base, **kw})


def _prompts(n: int) -> list[Prompt]:
    return [Prompt("item", i, str(i), f"Movie: Test film {i} (1995)\nGenres: Drama") for i in range(1, n + 1)]


def _run(server: ChatServer, tmp_path: Path, prompts: list[Prompt], key: str = KEY, **cfg) -> tuple[RunStats, AnswerCache]:
    cache = AnswerCache(tmp_path / "answers.jsonl")
    try:
        stats = run_openai(prompts, [f"key-{p.index}" for p in prompts], cache, _cfg(server, **cfg), key, {"model": "test-model"})
    finally:
        cache.close()
    return stats, cache


def test_success_concurrency_and_request_shape(server: ChatServer, tmp_path: Path) -> None:
    server.delay = 0.05
    prompts = _prompts(6)
    stats, cache = _run(server, tmp_path, prompts, concurrency=2, temperature=0.5, max_tokens=77)
    assert (stats.done, stats.failed, stats.sent, stats.retries) == (6, 0, 6, 0)
    assert server.requests == {p.user: 1 for p in prompts}
    assert 1 <= server.max_in_flight <= 2  # the concurrency limit holds
    body = server.log[0].body
    assert body["model"] == "test-model" and body["temperature"] == 0.5 and body["max_tokens"] == 77
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert server.log[0].auth == f"Bearer {KEY}"
    # Every answer is on disk, one valid JSON line each, with its usage.
    lines = (tmp_path / "answers.jsonl").read_text("utf-8").splitlines()
    records = {r["key"]: r for r in map(json.loads, lines)}
    assert len(lines) == 6 and set(records) == {f"key-{i}" for i in range(1, 7)}
    for p in prompts:
        rec = records[f"key-{p.index}"]
        assert rec["text"] == default_answer(p.user) and rec["kind"] == "item" and rec["id"] == p.index
        assert rec["usage"]["input"] > 0 and rec["usage"]["output"] > 0
    assert stats.input_tokens == sum(r["usage"]["input"] for r in records.values()) > 0


def test_429_retry_after_is_honoured(server: ChatServer, tmp_path: Path) -> None:
    server.fail_next(Fault.status(429, retry_after=0.4), times=2)
    [prompt] = _prompts(1)
    stats, cache = _run(server, tmp_path, [prompt], retry_base_delay=0.01)
    assert (stats.done, stats.sent, stats.retries) == (1, 3, 2)
    assert [r.status for r in server.log] == [429, 429, 200]
    times = server.times_of(prompt.user)
    # The backoff alone would wait ~10-20 ms; Retry-After (0.4 s) wins.
    assert all(b - a >= 0.4 for a, b in zip(times, times[1:])), times
    assert cache.get("key-1")["text"] == default_answer(prompt.user)


def test_500_is_retried(server: ChatServer, tmp_path: Path) -> None:
    server.fail_next(Fault.status(500), times=2)
    server.fail_next(Fault.status(503))
    stats, _ = _run(server, tmp_path, _prompts(1))
    assert (stats.done, stats.sent, stats.retries) == (1, 4, 3)
    assert [r.status for r in server.log] == [500, 500, 503, 200]


def test_slow_reply_times_out_and_is_retried(server: ChatServer, tmp_path: Path) -> None:
    server.fail_next(Fault.slow(3.0))
    [prompt] = _prompts(1)
    stats, cache = _run(server, tmp_path, [prompt], timeout=0.4)
    assert (stats.done, stats.sent, stats.retries) == (1, 2, 1)
    assert server.requests[prompt.user] == 2
    assert cache.get("key-1")["text"] == default_answer(prompt.user)


def test_malformed_replies_are_retried(server: ChatServer, tmp_path: Path) -> None:
    server.fail_next(Fault.raw(b"this is not json"))
    server.fail_next(Fault.reply("   "))  # an empty answer is no answer
    server.fail_next(Fault.raw(b'{"id": "x", "object": "chat.completion", "choices": []}'))
    stats, cache = _run(server, tmp_path, _prompts(1))
    assert (stats.done, stats.sent, stats.retries) == (1, 4, 3)
    assert len(cache.entries) == 1


@pytest.mark.parametrize(
    ("fault", "label"),
    [
        (Fault.status(400, message="model qwen-nope does not exist"), "bad request (HTTP 400)"),
        (Fault.status(403, message="not allowed"), "forbidden (HTTP 403)"),
        (Fault.status(404, message="no such model"), "not found (HTTP 404)"),
        (Fault.status(429, message="You exceeded your current quota, please check your plan and billing details."), "quota exhausted (HTTP 429)"),
    ],
)
def test_unfixable_errors_are_not_retried(server: ChatServer, tmp_path: Path, fault: Fault, label: str) -> None:
    server.fail_next(fault)
    with pytest.raises(LLMError, match=r"LLM endpoint http://127\.0\.0\.1:\d+/v1 \(model test-model\): ") as info:
        _run(server, tmp_path, _prompts(1))
    assert label in str(info.value) and fault.content in str(info.value)
    assert len(server.log) == 1  # exactly one request: no retry


def test_bad_key_is_not_retried_and_never_echoed(server: ChatServer, tmp_path: Path) -> None:
    wrong = "sk-wrong-key-that-must-stay-secret"
    with pytest.raises(LLMError) as info:
        _run(server, tmp_path, _prompts(1), key=wrong)
    message = str(info.value)
    assert "API key rejected (HTTP 401)" in message and "Incorrect API key provided: ***" in message
    assert wrong not in message and len(server.log) == 1
    assert not (tmp_path / "answers.jsonl").exists()


def test_retries_used_up_then_the_breaker_stops_the_run(server: ChatServer, tmp_path: Path) -> None:
    # One prompt out of retries is a failure the run survives (the others still finish) ...
    server.fail_next(Fault.status(500, match="Test film 1 "), times=2)
    stats, cache = _run(server, tmp_path, _prompts(3), max_retries=1, concurrency=1)
    assert (stats.done, stats.failed, stats.failed_keys) == (2, 1, ["key-1"])
    assert set(cache.entries) == {"key-2", "key-3"}
    assert "HTTP 500" in stats.last_error
    # ... but an endpoint failing prompt after prompt stops the run instead of backing off forever.
    before = server.requests.copy()
    server.fail_next(Fault.status(502), times=100)
    prompts = _prompts(8)
    with pytest.raises(LLMError, match=r"giving up: 3 prompts in a row failed after 1 retries each .* rerun to resume"):
        _run(server, tmp_path, prompts, max_retries=1, concurrency=1)
    new = server.requests - before
    assert [new[p.user] for p in prompts[:3]] == [2, 2, 2]
    assert all(new[p.user] == 0 for p in prompts[3:])  # the rest is never sent


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("A quiet drama about loss.", "A quiet drama about loss."),
        ('"A quiet drama about loss."', "A quiet drama about loss."),
        ("“A quiet drama about loss.”", "A quiet drama about loss."),
        ("```\nA quiet drama about loss.\n```", "A quiet drama about loss."),
        ('```text\n"A quiet drama about loss."\n```', "A quiet drama about loss."),
        ("```A quiet drama about loss.```", "A quiet drama about loss."),
        ("**Description:** A quiet drama\n about   loss.", "A quiet drama about loss."),
        ("Summary: 'Likes noir.'", "Likes noir."),
        ("", ""),
        (None, ""),
    ],
)
def test_parse_answer(content: str | None, expected: str) -> None:
    assert parse_answer(content, 200) == expected


def test_parse_answer_cuts_long_answers_within_the_limit() -> None:
    sentences = "A quiet drama about loss. It follows a family over a long winter. " * 10
    cut = parse_answer(sentences, 100)
    assert len(cut) <= 100 and cut.endswith(".") and sentences.startswith(cut)
    words = "word " * 100
    cut = parse_answer(words, 60)
    assert len(cut) <= 60 and cut.endswith("…") and not cut.endswith(" …")
    cut = parse_answer("x" * 500, 60)  # no space at all
    assert len(cut) == 60 and cut.endswith("…")


def test_malformed_content_is_cleaned_through_the_client(server: ChatServer, tmp_path: Path) -> None:
    server.fail_next(Fault.reply('```markdown\n"A tense thriller set on a night train."\n```', match="film 1 "))
    server.fail_next(Fault.reply("Description: " + "A long and winding answer that goes on. " * 20, match="film 2 "))
    stats, cache = _run(server, tmp_path, _prompts(2), max_chars=120)
    assert stats.done == 2 and stats.retries == 0
    assert cache.get("key-1")["text"] == "A tense thriller set on a night train."
    long = cache.get("key-2")["text"]
    assert len(long) <= 120 and long.startswith("A long and winding answer") and long.endswith(".")
    assert cache.get("key-2")["raw"].startswith("Description: ")  # the raw reply is kept


def test_answer_cache_tolerates_and_rewrites_damaged_lines(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    good = [{"key": f"k{i}", "text": f"answer {i}"} for i in range(3)]
    dup = {"key": "k1", "text": "answer 1, asked again"}
    body = "\n".join(json.dumps(r) for r in good[:2]) + "\nnot json at all\n" + json.dumps(dup) + "\n" + json.dumps(good[2])
    path.write_text(body + '\n{"key": "k9", "te', "utf-8")  # a torn last line
    cache = AnswerCache(path)
    assert cache.skipped_lines == 2 and set(cache.entries) == {"k0", "k1", "k2"}
    assert cache.get("k1")["text"] == "answer 1, asked again"  # the later line wins
    assert path.read_text("utf-8").endswith('"te') and cache.needs_repair  # reading never writes
    cache.repair()
    rewritten = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [r["key"] for r in rewritten] == ["k0", "k1", "k2"]  # valid JSONL, one line per key
    cache.append({"key": "k3", "text": "answer 3"})
    cache.close()
    assert [json.loads(line)["key"] for line in path.read_text("utf-8").splitlines()] == ["k0", "k1", "k2", "k3"]
    assert AnswerCache(path).skipped_lines == 0
    # A file whose last line lacks its newline (but is whole) is appended to on a fresh line.
    path.write_text(json.dumps(good[0]), "utf-8")
    cache = AnswerCache(path)
    cache.append({"key": "k5", "text": "answer 5"})
    cache.close()
    assert [json.loads(line)["key"] for line in path.read_text("utf-8").splitlines()] == ["k0", "k5"]
