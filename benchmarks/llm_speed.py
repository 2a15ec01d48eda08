#!/usr/bin/env python
"""One prompt at a time (llama.cpp) vs batched (the local backend's engine): same prompts, same GGUF, one run.

    python benchmarks/llm_speed.py --home L --out docs/llm_speed.json      # after `ur4rec --home L data`
    python benchmarks/llm_page.py --home L --run-json run.json --speed docs/llm_speed.json

The prompts are the data set's own first-try prompts, half item and half user prompts spread over
the ids (``--prompts 64``). Both engines answer with the same settings as `ur4rec llm --backend
local` (temperature, max_tokens, seed, threads). The batched engine is timed twice: from the GGUF
(dequantized, then saved as safetensors, as a first run does) and from that safetensors cache, as
every later run loads. "Whole data set" adds the load to the measured seconds per answer times the
data set's prompt count; it is a projection, labelled so. llama-cpp-python must be installed (the
`test` extra has it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path


def prompts_for(home: Path, n: int):
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.features.llm import prompts as P
    from ur4rec_cli.settings import load_settings

    settings = load_settings(None, {"home": home, "llm": {"backend": "local"}})
    dataset, _ = load_dataset(settings)
    items = P.build_prompts(dataset, "item", settings.llm.history_items)
    users = P.build_prompts(dataset, "user", settings.llm.history_items)
    half = n // 2
    pick = lambda xs, k: [xs[round(j * (len(xs) - 1) / max(1, k - 1))] for j in range(k)]  # noqa: E731
    return settings, pick(items, n - half) + pick(users, half), len(items) + len(users)


def llama_one_at_a_time(model_path: Path, prompts, settings, threads: int) -> dict:
    from llama_cpp import Llama

    from ur4rec_cli.features.llm.local import SEED

    cfg = settings.llm
    t0 = time.perf_counter()
    llm = Llama(model_path=str(model_path), n_ctx=2048, n_threads=threads, seed=SEED, verbose=False)
    load = time.perf_counter() - t0
    out_tok, texts = 0, []
    t0 = time.perf_counter()
    for p in prompts:
        llm.set_seed(SEED)
        r = llm.create_chat_completion(messages=p.messages(), max_tokens=cfg.local_max_tokens, temperature=cfg.temperature, seed=SEED)
        out_tok += int(r["usage"]["completion_tokens"])
        texts.append(r["choices"][0]["message"]["content"])
    gen = time.perf_counter() - t0
    return {"load_seconds": load, "generation_seconds": gen, "output_tokens": out_tok, "texts": texts}


def batched(model, prompts, settings, threads: int, home: Path) -> dict:
    from ur4rec_cli.features.llm.batched import hf_folder
    from ur4rec_cli.features.llm.local import make_generator

    shutil.rmtree(hf_folder(home, model), ignore_errors=True)  # time the first run's conversion too
    # The engine exactly as `ur4rec llm --backend local` builds it, on the CPU with the same threads.
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"device": "cpu", "local_threads": threads})})
    first = make_generator(settings, model)
    from_gguf = first.load_seconds
    del first
    gen = make_generator(settings, model)
    t0 = time.perf_counter()
    answers = gen.answer(prompts)
    seconds = time.perf_counter() - t0
    return {
        "engine": gen.label,
        "load_seconds_from_gguf": from_gguf,
        "load_seconds": gen.load_seconds,
        "generation_seconds": seconds,
        "output_tokens": sum(a.output_tokens for a in answers),
        "texts": [a.content for a in answers],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="a home with the data set (and the default GGUF, fetched if missing)")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from ur4rec_cli.features.llm.local import resolve_model

    settings, prompts, total = prompts_for(args.home, args.prompts)
    model = resolve_model(settings)
    rows = {"llama.cpp, one prompt at a time": llama_one_at_a_time(model.path, prompts, settings, args.threads)}
    rows["batched (ur4rec llm --backend local)"] = batched(model, prompts, settings, args.threads, args.home)
    for r in rows.values():
        r["seconds_per_answer"] = r["generation_seconds"] / len(prompts)
        r["output_tokens_per_s"] = r["output_tokens"] / r["generation_seconds"]
        # A first run: the batched engine's load includes dequantizing the GGUF and caching it.
        r["whole_dataset_seconds"] = r.get("load_seconds_from_gguf", r["load_seconds"]) + r["seconds_per_answer"] * total
    one, many = rows.values()
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} threads",
        "model": model.label,
        "prompts": len(prompts),
        "dataset_prompts": total,
        "settings": {k: getattr(settings.llm, k) for k in ("temperature", "local_max_tokens")},
        "rows": rows,
        "ratio_tokens_per_s": many["output_tokens_per_s"] / one["output_tokens_per_s"],
        "ratio_whole_dataset": one["whole_dataset_seconds"] / many["whole_dataset_seconds"],
    }
    args.out.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n", "utf-8")
    for name, r in rows.items():
        print(f"{name}: load {r.get('load_seconds_from_gguf', r['load_seconds']):.1f} s (then {r['load_seconds']:.1f} s), {r['seconds_per_answer']:.3f} s/answer, {r['output_tokens_per_s']:.1f} output tokens/s")
    print(f"ratio (output tokens/s): {figures['ratio_tokens_per_s']:.2f}x; whole data set, load included: {figures['ratio_whole_dataset']:.2f}x")


if __name__ == "__main__":
    main()
