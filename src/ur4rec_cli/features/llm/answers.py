"""Asking a language model for every text: first tries, answer checks, stricter second tries, the template fallback.

Serves both LLM backends of `ur4rec llm` (openai-compatible endpoints and the in-process local
GGUF): answers go to ``cache/llm/<name>.jsonl`` as they arrive, so a rerun resumes where it stopped.
`items add` describes new items through the same sender, cache and answer parsing
(features/llm/new_items.py).
"""

from __future__ import annotations

from typing import Any

from ur4rec_cli import console
from ur4rec_cli.errors import ConfigError, LLMError
from ur4rec_cli.features.llm import prompts as P

KINDS = {"items": "item", "users": "user"}


def llm_texts(settings, store, dataset, name, spec, wanted, limit, dry_run, summary) -> dict[str, list[str]] | None:
    """Ask the model for every uncached prompt (a stricter second try for rejected answers); the
    texts of both groups, with where each came from, once every entry is settled."""
    from ur4rec_cli.features.llm.cache import AnswerCache, cache_key

    cfg = settings.llm
    backend = spec["backend"]
    cache = AnswerCache(store.cache_dir("llm") / f"{name}.jsonl")
    if cache.skipped_lines:
        what = "ignored" if dry_run else "dropped from the file"
        console.warn(f"{cache.skipped_lines} unreadable line(s) in {cache.path} {what} (a run killed mid-write?); those prompts are asked again")
    if not dry_run:
        cache.repair()
    # What is sent: max_chars only shapes the parsing of an answer (re-done on reuse), not the key.
    params = send_params(spec)
    model_id = spec["model"]
    plan = AnswerPlan(dataset, cfg, wanted)
    for strict, version in ((False, P.PROMPT_VERSION), (True, P.STRICT_VERSION)):
        for group in ("items", "users"):
            built = P.build_prompts(dataset, KINDS[group], cfg.history_items, strict=strict)
            plan.prompts[strict][group] = built
            plan.keys[strict][group] = [
                cache_key(backend=backend, model=model_id, prompt_version=version, messages=p.messages(), params=params) for p in built
            ]
    summary["cache"] = str(cache.path)
    record_extra = {"backend": backend, "model": model_id, "prompt_version": P.PROMPT_VERSION}
    if dry_run:
        first, second = plan.pending(cache, False), plan.pending(cache, True)
        for g in wanted:
            n_pending = sum(k not in cache for k in plan.keys[False][g])  # entities; requests_to_send counts distinct prompts
            summary[g] = {"total": len(plan.keys[False][g]), "done": 0, "cached": len(plan.keys[False][g]) - n_pending, "failed": 0, "remaining": n_pending}
        summary["requests_to_send"] = len(first) + len(second)
        # First answers already rejected by the checks: each is due a stricter second try.
        summary["second_tries_to_send"] = len(second)
        summary["estimated_input_tokens"] = sum(p.chars() for p, _ in first + second) // 4
        summary["token_estimate"] = "characters / 4"
        line = f"dry run: {summary['requests_to_send']} prompt(s) to send, about {summary['estimated_input_tokens']:,} input tokens (characters / 4)"
        if backend == "local":
            summary["estimate"] = _local_estimate(settings, cache, model_id, first + second)
            e = summary["estimate"]
            line += f"; about {console.duration(e['seconds'])} at {e['tokens_per_s']:.0f} tokens/s ({e['measured_on']})"
        if second:
            line += f"; {len(second)} of them second tries for rejected answers"
        console.info(line + "; nothing sent" + (" (rejected answers may add second tries)" if first else ""))
        return None

    send = make_sender(settings, spec, cache, record_extra)
    budget = limit
    stats_all = []
    try:
        for strict in (False, True):
            # Second tries are known only once the first answers are in: ask them after.
            pending = plan.pending(cache, strict)
            if budget is not None:
                pending = pending[: max(0, budget)]
                budget -= len(pending)
            if pending:
                stats_all.append(send(pending, strict))
    finally:
        cache.close()
    stats = merge_stats(stats_all)
    sent_keys = {k for st in stats_all for k in st.sent_keys}
    failed = {k for st in stats_all for k in st.failed_keys}
    for g in wanted:
        keys = plan.keys[False][g]
        summary[g] = {
            "total": len(keys),
            "done": sum(k in sent_keys and k not in failed for k in keys),
            "cached": sum(k in cache and k not in sent_keys for k in keys),
            "failed": sum(k in failed for k in keys),
            "remaining": sum(plan.settled(cache, g, i) is None for i in range(len(keys))),
        }
    summary["requests"] = {"sent": stats.sent, "retries": stats.retries}
    summary["tokens"] = {"input": stats.input_tokens, "output": stats.output_tokens}
    if backend == "local" and stats.seconds:
        summary["speed"] = {"seconds": round(stats.seconds, 1), "tokens_per_s": round(stats.output_tokens / stats.seconds, 1), "prompts_per_s": round(stats.done / stats.seconds, 3)}
    console.info(f"tokens used: {stats.input_tokens:,} in, {stats.output_tokens:,} out ({stats.sent} requests, {stats.retries} retries)")
    if stats.failed:
        from ur4rec_cli.features.llm.backends import cached_phrase

        raise LLMError(f"{stats.failed} prompts failed after {cfg.max_retries} retries (last: {stats.last_error}); {cached_phrase(cache)}")
    settled = {g: [plan.settled(cache, g, i) for i in range(len(plan.keys[False][g]))] for g in ("items", "users")}
    missing = {g: sum(s is None for s in settled[g]) for g in ("items", "users")}
    summary["remaining"] = sum(missing[g] for g in wanted)
    summary["sources"] = {g: count_sources(settled[g]) for g in wanted}
    if any(missing.values()):
        left = ", ".join(f"{n} {g}" for g, n in missing.items() if n)
        console.info(f"{left} still without a text: rerun to continue (no texts artifact until every text exists)")
        return None
    summary["sources"] = {g: count_sources(settled[g]) for g in ("items", "users")}
    templates = {g: P.template_texts(dataset, KINDS[g], cfg.history_items) for g in ("items", "users")}
    texts, sources = {}, {}
    for g in ("items", "users"):
        texts[g] = [t if src != "template" else templates[g][i] for i, (src, t, _) in enumerate(settled[g])]
        sources[g] = [(src, why) for src, _, why in settled[g]]
    summary["_sources"] = sources
    return texts


class AnswerPlan:
    """Which prompt each entry needs next: its first try, a stricter second one, or none (settled)."""

    def __init__(self, dataset, cfg, wanted: list[str]) -> None:
        from ur4rec_cli.features.llm.validate import rejection

        self.dataset, self.cfg, self.wanted, self._rejection = dataset, cfg, wanted, rejection
        self.prompts: dict[bool, dict[str, list[P.Prompt]]] = {False: {}, True: {}}
        self.keys: dict[bool, dict[str, list[str]]] = {False: {}, True: {}}
        self._forbidden: dict[int, list[str]] = {}

    def _check(self, cache, strict: bool, g: str, i: int) -> tuple[str | None, str | None]:
        """(text, why rejected), or (None, None) when that prompt has no answer yet."""
        rec = cache.get(self.keys[strict][g][i])
        if rec is None:
            return None, None
        text = answer_text(rec, self.cfg.max_chars, self.prompts[strict][g][i].user)
        forbidden = []
        if g == "users":
            if i not in self._forbidden:
                self._forbidden[i] = P.held_out_titles(self.dataset, i + 1)
            forbidden = self._forbidden[i]
        # The entry's own name (title, demographics) may be repeated; copying the rest of the prompt is an echo.
        if g == "items":
            name = P.title_of(self.dataset.items[i], self.dataset.item_ids[i], self.dataset.noun)
        else:
            name = P.user_profile(self.dataset, i + 1, self.cfg.history_items).demographics
        reference = self.prompts[strict][g][i].user.replace(name, " ")
        return text, self._rejection(text, reference, max_chars=self.cfg.max_chars, forbidden_titles=forbidden)

    def settled(self, cache, g: str, i: int) -> tuple[str, str, str | None] | None:
        """(source, text, why the first answer was rejected) once entry ``i`` of ``g`` needs no more prompts."""
        text, why = self._check(cache, False, g, i)
        if text is None:
            return None
        if why is None:
            return "llm", text, None
        text2, why2 = self._check(cache, True, g, i)
        if text2 is None:
            return None
        if why2 is None:
            return "llm-retry", text2, why
        return "template", "", f"{why}; second try: {why2}"

    def pending(self, cache, strict: bool) -> list[tuple[P.Prompt, str]]:
        """Distinct prompts still to send (identical prompts share one answer)."""
        out: dict[str, P.Prompt] = {}
        for g in self.wanted:
            for i, (p, k) in enumerate(zip(self.prompts[strict][g], self.keys[strict][g])):
                if k in cache or k in out:
                    continue
                if strict:
                    text, why = self._check(cache, False, g, i)
                    if text is None or why is None:  # first try not asked yet, or accepted
                        continue
                out[k] = p
        return [(p, k) for k, p in out.items()]


def count_sources(settled: list) -> dict[str, int]:
    counts = {"llm": 0, "llm-retry": 0, "template": 0, "pending": 0}
    for s in settled:
        counts["pending" if s is None else s[0]] += 1
    counts["rejected"] = counts["llm-retry"] + counts["template"]  # first answers that failed validation
    return counts


def send_params(spec: dict[str, Any]) -> dict[str, Any]:
    params = spec["params"]
    if spec["backend"] == "local":
        return {"temperature": params["temperature"], "max_tokens": params["max_tokens"], "seed": params["seed"]}
    return {"temperature": params["temperature"], "max_tokens": params["max_tokens"]}


def make_sender(settings, spec, cache, record_extra):
    """A function that sends prompts to the chosen backend and returns its RunStats (with ``sent_keys``)."""
    cfg = settings.llm
    n_cached = len(cache.entries)
    state: dict[str, Any] = {}

    def send(pending: list[tuple[P.Prompt, str]], strict: bool):
        import time

        label = "second tries" if strict else "LLM texts"
        extra = {**record_extra, "prompt_version": P.STRICT_VERSION if strict else P.PROMPT_VERSION}

        with console.make_progress() as progress:
            task = progress.add_task(label, total=len(pending), status=f"cached {n_cached}")
            t0 = time.perf_counter()

            def update(stats) -> None:
                rate = (stats.done + stats.failed) / max(1e-9, time.perf_counter() - t0)
                progress.update(task, completed=stats.done + stats.failed, status=f"{rate:.2f} prompts/s · done {stats.done} · failed {stats.failed}")

            prompts, keys = [p for p, _ in pending], [k for _, k in pending]
            if spec["backend"] == "local":
                from ur4rec_cli.features.llm.local import make_generator, run_local

                if "gen" not in state:
                    state["gen"] = gen = make_generator(settings, local_model(settings))
                    console.info(f"local model loaded from {'its safetensors cache' if gen.loaded_from == 'cache' else 'the GGUF (dequantized once, cached as safetensors)'} in {gen.load_seconds:.1f} s; {gen.label}")
                stats = run_local(state["gen"], prompts, keys, cache, cfg.max_chars, extra, update)
            else:
                from ur4rec_cli.features.llm.backends import run_openai

                api_key = settings.llm_api_key()
                if api_key is None:  # pragma: no cover - _choose_backend checked it
                    raise ConfigError("the openai backend needs an API key")
                stats = run_openai(prompts, keys, cache, cfg, api_key.get_secret_value(), extra, update)
        stats.sent_keys = set(keys)
        return stats

    return send


def merge_stats(all_stats: list):
    from ur4rec_cli.features.llm.backends import RunStats

    total = RunStats()
    for st in all_stats:
        for f in ("sent", "retries", "done", "failed", "input_tokens", "output_tokens", "seconds"):
            setattr(total, f, getattr(total, f) + getattr(st, f))
        total.failed_keys += st.failed_keys
        total.last_error = st.last_error or total.last_error
    return total


_MODELS: dict[str, Any] = {}


def local_model(settings):
    """The resolved GGUF (fetched and hashed once per process)."""
    from ur4rec_cli.features.llm.local import resolve_model

    key = str(settings.llm.local_model or settings.home)
    if key not in _MODELS:
        _MODELS[key] = resolve_model(settings)
    return _MODELS[key]


def _local_estimate(settings, cache, model_id: str, pending: list) -> dict[str, Any]:
    """Time the pending prompts would take, from the tokens/s of answers this model already gave in
    full batches (or, with none cached, of one batch of up to 32 pending prompts decoded now and not kept)."""
    from ur4rec_cli.features.llm.local import make_generator, measured_speed

    mine = [r for r in cache.entries.values() if r.get("model") == model_id and r.get("engine")]
    speed = measured_speed(mine)
    measured_on = f"measured on {int(speed['answers'])} cached answers" if speed else ""
    load = None
    if speed is None and pending:
        import time

        gen = make_generator(settings, local_model(settings))
        load = gen.load_seconds
        sample = [p for p, _ in pending][: min(32, gen.batch_size)]
        t0 = time.perf_counter()
        answers = gen.answer(sample)
        seconds = time.perf_counter() - t0
        tout = sum(a.output_tokens for a in answers)
        speed = {"tokens_per_s": tout / seconds if seconds else 0.0, "tokens_per_answer": tout / len(answers), "answers": float(len(answers))}
        measured_on = f"measured now on one batch of {len(answers)} prompts, not kept (full batches of {gen.batch_size} are faster)"
    if not speed or not speed["tokens_per_s"]:
        return {"seconds": 0.0, "tokens_per_s": 0.0, "measured_on": "nothing to measure"}
    seconds = len(pending) * speed["tokens_per_answer"] / speed["tokens_per_s"]
    out = {"seconds": round(seconds, 1), "tokens_per_s": round(speed["tokens_per_s"], 1), "tokens_per_answer": round(speed["tokens_per_answer"], 1), "measured_on": measured_on}
    if load is not None:
        out["load_seconds"] = round(load, 1)
    return out


def answer_text(record: dict[str, Any] | None, max_chars: int, prompt: str = "") -> str:
    """The text of a cached answer, parsed from the raw reply with the current ``max_chars``;
    leading lines that copy the prompt's own lines (``Movie: ...``, ``Genres: ...``, ``Brand: ...``) are dropped."""
    from ur4rec_cli.features.llm.cleanup import parse_answer

    if record is None:  # pragma: no cover - the caller checked every key is cached
        raise LLMError("a cached answer vanished while assembling the texts")
    raw = record.get("raw")
    if isinstance(raw, str) and prompt:
        own = {" ".join(line.split()).lower() for line in prompt.splitlines() if line.strip()}
        lines = raw.strip().splitlines()
        while len(lines) > 1 and " ".join(lines[0].split()).lower() in own:
            lines = lines[1:]
        raw = "\n".join(lines)
    text = parse_answer(raw, max_chars) if isinstance(raw, str) else ""
    return text or str(record.get("text", ""))
