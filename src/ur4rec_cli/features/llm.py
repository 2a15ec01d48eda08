"""`ur4rec llm`: item descriptions and user-preference texts (LLM or template), then text embeddings.

Artifacts: ``features/<name>/texts`` (items.jsonl, users.jsonl; input: the dataset digest) and
``features/<name>/text_emb`` (item_text.npy, user_text.npy; input: the texts digest). Answers of
the openai backend go to ``cache/llm/<name>.jsonl`` first, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ur4rec_cli import console
from ur4rec_cli.errors import ConfigError, LLMError
from ur4rec_cli.features import prompts as P
from ur4rec_cli.store import ArtifactStore, Manifest

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.settings import Settings

KINDS = {"items": "item", "users": "user"}


# Public entry points ------------------------------------------------------------------------
def generate_texts(
    settings: "Settings",
    *,
    what: str = "all",
    limit: int | None = None,
    dry_run: bool = False,
    force: bool = False,
    embed: bool = True,
) -> dict[str, Any]:
    """Write the texts artifact (LLM or template) and, with ``embed``, its embeddings; returns a summary."""
    if embed and not dry_run:
        from ur4rec_cli.devices import resolve_device

        resolve_device(settings.llm.device)  # an absent device fails now, not after every answer is in
    dataset, dman = _load_dataset(settings)
    return _generate(settings, dataset, dman, what=what, limit=limit, dry_run=dry_run, force=force, embed=embed)


def load_text_embeddings(settings: "Settings", dataset_manifest: Manifest) -> tuple[np.ndarray, np.ndarray, Manifest] | None:
    """(item_text [n_items+1, d], user_text [n_users+1, d], manifest), or None when missing, corrupt or stale."""
    store = ArtifactStore(settings.home)
    name = _dataset_name(settings)
    tman = store.load(store.features_dir(name, "texts"), kind="texts")
    if tman is None or tman.inputs.get("dataset") != dataset_manifest.digest:
        return None
    folder = store.features_dir(name, "text_emb")
    eman = store.load(folder, kind="text_emb")
    if eman is None or eman.inputs.get("texts") != tman.digest:
        return None
    if eman.extra.get("model") != settings.llm.embedding_model:
        return None
    try:
        items = np.load(folder / "item_text.npy", allow_pickle=False).astype(np.float32, copy=False)
        users = np.load(folder / "user_text.npy", allow_pickle=False).astype(np.float32, copy=False)
    except (OSError, ValueError):
        return None
    if items.ndim != 2 or users.ndim != 2 or items.shape[1] != users.shape[1]:
        return None
    return items, users, eman


def ensure_text_embeddings(settings: "Settings", dataset: "Dataset", dataset_manifest: Manifest) -> tuple[np.ndarray, np.ndarray, Manifest]:
    """Load the text embeddings, or generate texts (auto: template without a key) and embed them."""
    loaded = load_text_embeddings(settings, dataset_manifest)
    if loaded is not None:
        return loaded
    _generate(settings, dataset, dataset_manifest, what="all", limit=None, dry_run=False, force=False, embed=True)
    loaded = load_text_embeddings(settings, dataset_manifest)
    if loaded is None:  # pragma: no cover - _generate raises when it can't finish
        raise LLMError("text embeddings were written but cannot be read back")
    return loaded


# Dataset access -----------------------------------------------------------------------------
def _dataset_name(settings: "Settings") -> str:
    try:
        from ur4rec_cli.data.prepare import dataset_name
    except ImportError:  # data preparation not installed yet: same rule as its default
        return settings.data.name or settings.data.dataset
    return dataset_name(settings.data)


def _load_dataset(settings: "Settings") -> tuple["Dataset", Manifest]:
    try:
        from ur4rec_cli.data.prepare import load_dataset
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        return load_dataset(settings)
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.errors import ArtifactMissingError

    store = ArtifactStore(settings.home)
    folder = store.dataset_dir(_dataset_name(settings))
    man = store.load(folder, kind="dataset")
    if man is None:
        raise ArtifactMissingError(f"no dataset artifact at {folder}: run `ur4rec data` first")
    return Dataset.load(folder), man


# Generation ---------------------------------------------------------------------------------
def _choose_backend(settings: "Settings", dry_run: bool = False) -> tuple[str, str]:
    """The backend to use and why; ``openai`` needs a key, except for a dry run (a cost estimate)."""
    backend = settings.llm.backend
    has_key = settings.llm_api_key() is not None
    if backend == "auto":
        if has_key:
            return "openai", "auto: an API key is configured"
        return "template", "auto: no API key configured (UR4REC_LLM__API_KEY, OPENAI_API_KEY, DASHSCOPE_API_KEY)"
    if backend == "openai" and not has_key:
        if not dry_run:
            raise ConfigError("the openai backend needs an API key: set UR4REC_LLM__API_KEY, OPENAI_API_KEY or DASHSCOPE_API_KEY")
        return backend, "requested; no API key set, fine for a dry run"
    if backend == "local":
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            from ur4rec_cli.features.local_llm import INSTALL_HINT

            raise ConfigError(INSTALL_HINT)
    return backend, "requested"


def _spec(settings: "Settings", backend: str) -> dict[str, Any]:
    """Everything that shapes the texts: recorded in the artifact and compared on reuse."""
    cfg = settings.llm
    if backend == "template":
        return {"backend": "template", "model": None, "prompt_version": P.TEMPLATE_VERSION, "params": {"history_items": cfg.history_items}}
    if backend == "local":
        from ur4rec_cli.features.local_llm import SEED

        model = _local_model(settings)
        return {
            "backend": "local",
            "model": model.label,  # file name and sha256: the same model under another path is reused
            "model_sha256": model.sha256,
            "prompt_version": P.PROMPT_VERSION,
            "params": {"temperature": cfg.temperature, "max_tokens": cfg.local_max_tokens, "seed": SEED, "max_chars": cfg.max_chars, "history_items": cfg.history_items},
        }
    return {
        "backend": "openai",
        "model": cfg.model,
        "base_url": cfg.base_url,
        "prompt_version": P.PROMPT_VERSION,
        "params": {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "max_chars": cfg.max_chars, "history_items": cfg.history_items},
    }


def _why_not_reused(existing: Manifest, dataset_digest: str, spec: dict[str, Any], force: bool) -> str:
    """Why the texts artifact in the store is not the answer to this run (never "stale" when it is valid)."""
    if force:
        return "rebuild (--force)"
    if existing.inputs.get("dataset") != dataset_digest:
        return "stale: made from another version of the data set"
    old = existing.extra.get("spec") or {}
    if old.get("backend") != spec["backend"]:
        return f"valid {old.get('backend')} texts, to be replaced by {spec['backend']} texts"
    changed = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
    return f"valid {spec['backend']} texts made with another {', '.join(changed)}, to be replaced"


def _wanted(what: str) -> list[str]:
    if what == "all":
        return ["items", "users"]
    if what not in KINDS:
        raise ConfigError(f"--what must be items, users or all, not {what!r}")
    return [what]


def _generate(settings, dataset, dman, *, what, limit, dry_run, force, embed) -> dict[str, Any]:
    store = ArtifactStore(settings.home)
    name = _dataset_name(settings)
    wanted = _wanted(what)
    if limit is not None and limit < 0:
        raise ConfigError("--limit must be >= 0")
    backend, reason = _choose_backend(settings, dry_run)
    spec = _spec(settings, backend)
    texts_dir = store.features_dir(name, "texts")
    summary: dict[str, Any] = {
        "dataset": name,
        "backend": backend,
        "backend_reason": reason,
        "model": spec["model"],
        "prompt_version": spec["prompt_version"],
        "what": what,
        "dry_run": dry_run,
        "texts": {"path": str(texts_dir), "status": "missing"},
        "embeddings": None,
    }
    if backend == "openai":
        summary["base_url"] = settings.llm.base_url
    if backend == "local":
        summary["model_path"] = str(_local_model(settings).path)
    where = {"openai": f", model {spec['model']} at {settings.llm.base_url}", "local": f", model {spec['model']}"}.get(backend, "")
    console.info(f"llm backend: {backend} ({reason}){where}")

    existing = store.load(texts_dir, kind="texts")
    reusable = (
        existing is not None
        and not force
        and existing.inputs.get("dataset") == dman.digest
        and existing.extra.get("spec") == spec
    )
    if existing is not None and not reusable:
        summary["texts"]["status"] = _why_not_reused(existing, dman.digest, spec, force)
    texts: dict[str, list[str]] | None
    if reusable:
        summary["texts"]["status"] = "cached"
        for group in wanted:
            n = dataset.n_items if group == "items" else dataset.n_users
            summary[group] = {"total": n, "done": 0, "cached": n, "failed": 0, "remaining": 0}
        texts = None
    elif backend == "template":
        texts = {g: P.template_texts(dataset, KINDS[g], settings.llm.history_items) for g in ("items", "users")}
        for group in wanted:
            n = len(texts[group])
            summary[group] = {"total": n, "done": 0 if dry_run else n, "cached": 0, "failed": 0, "remaining": n if dry_run else 0}
        if dry_run:
            summary["requests_to_send"] = 0
            summary["estimated_input_tokens"] = 0
    else:
        texts = _llm_texts(settings, store, dataset, name, spec, wanted, limit, dry_run, summary)

    if dry_run:
        summary["complete"] = reusable
        return summary
    if texts is None and not reusable:
        summary["complete"] = False
        return summary
    if texts is not None:
        _write_texts(store, texts_dir, dataset, texts, dman, spec, settings, summary.pop("_sources", None), summary.get("sources"))
        summary["texts"]["status"] = "written"
        console.info(f"texts written to {texts_dir}")
    summary["complete"] = True
    if embed:
        summary["embeddings"] = _embed(settings, store, name, force=force)
    return summary


def _llm_texts(settings, store, dataset, name, spec, wanted, limit, dry_run, summary) -> dict[str, list[str]] | None:
    """Ask the model for every uncached prompt (a stricter second try for rejected answers); the
    texts of both groups, with where each came from, once every entry is settled."""
    from ur4rec_cli.features.llm_cache import AnswerCache, cache_key

    cfg = settings.llm
    backend = spec["backend"]
    cache = AnswerCache(store.cache_dir("llm") / f"{name}.jsonl")
    if cache.skipped_lines:
        what = "ignored" if dry_run else "dropped from the file"
        console.warn(f"{cache.skipped_lines} unreadable line(s) in {cache.path} {what} (a run killed mid-write?); those prompts are asked again")
    if not dry_run:
        cache.repair()
    # What is sent: max_chars only shapes the parsing of an answer (re-done on reuse), not the key.
    params = _send_params(spec)
    model_id = spec["model"]
    plan = _Plan(dataset, cfg, wanted)
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
            line += f"; about {_duration(e['seconds'])} at {e['tokens_per_s']:.0f} tokens/s ({e['measured_on']})"
        if second:
            line += f"; {len(second)} of them second tries for rejected answers"
        console.info(line + "; nothing sent" + (" (rejected answers may add second tries)" if first else ""))
        return None

    send = _sender(settings, spec, cache, record_extra)
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
    stats = _merge(stats_all)
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
        from ur4rec_cli.features.backends import cached_phrase

        raise LLMError(f"{stats.failed} prompts failed after {cfg.max_retries} retries (last: {stats.last_error}); {cached_phrase(cache)}")
    settled = {g: [plan.settled(cache, g, i) for i in range(len(plan.keys[False][g]))] for g in ("items", "users")}
    missing = {g: sum(s is None for s in settled[g]) for g in ("items", "users")}
    summary["remaining"] = sum(missing[g] for g in wanted)
    summary["sources"] = {g: _count_sources(settled[g]) for g in wanted}
    if any(missing.values()):
        left = ", ".join(f"{n} {g}" for g, n in missing.items() if n)
        console.info(f"{left} still without a text: rerun to continue (no texts artifact until every text exists)")
        return None
    summary["sources"] = {g: _count_sources(settled[g]) for g in ("items", "users")}
    templates = {g: P.template_texts(dataset, KINDS[g], cfg.history_items) for g in ("items", "users")}
    texts, sources = {}, {}
    for g in ("items", "users"):
        texts[g] = [t if src != "template" else templates[g][i] for i, (src, t, _) in enumerate(settled[g])]
        sources[g] = [(src, why) for src, _, why in settled[g]]
    summary["_sources"] = sources
    return texts


class _Plan:
    """Which prompt each entry needs next: its first try, a stricter second one, or none (settled)."""

    def __init__(self, dataset, cfg, wanted: list[str]) -> None:
        from ur4rec_cli.features.validate import rejection

        self.dataset, self.cfg, self.wanted, self._rejection = dataset, cfg, wanted, rejection
        self.prompts: dict[bool, dict[str, list[P.Prompt]]] = {False: {}, True: {}}
        self.keys: dict[bool, dict[str, list[str]]] = {False: {}, True: {}}
        self._forbidden: dict[int, list[str]] = {}

    def _check(self, cache, strict: bool, g: str, i: int) -> tuple[str | None, str | None]:
        """(text, why rejected), or (None, None) when that prompt has no answer yet."""
        rec = cache.get(self.keys[strict][g][i])
        if rec is None:
            return None, None
        text = _answer_text(rec, self.cfg.max_chars, self.prompts[strict][g][i].user)
        forbidden = []
        if g == "users":
            if i not in self._forbidden:
                self._forbidden[i] = P.held_out_titles(self.dataset, i + 1)
            forbidden = self._forbidden[i]
        # The entry's own name (title, demographics) may be repeated; copying the rest of the prompt is an echo.
        if g == "items":
            name = P.title_of(self.dataset.items[i], self.dataset.item_ids[i])
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


def _count_sources(settled: list) -> dict[str, int]:
    counts = {"llm": 0, "llm-retry": 0, "template": 0, "pending": 0}
    for s in settled:
        counts["pending" if s is None else s[0]] += 1
    counts["rejected"] = counts["llm-retry"] + counts["template"]  # first answers that failed validation
    return counts


def _send_params(spec: dict[str, Any]) -> dict[str, Any]:
    params = spec["params"]
    if spec["backend"] == "local":
        return {"temperature": params["temperature"], "max_tokens": params["max_tokens"], "seed": params["seed"]}
    return {"temperature": params["temperature"], "max_tokens": params["max_tokens"]}


def _sender(settings, spec, cache, record_extra):
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
                from ur4rec_cli.features.local_llm import LocalGenerator, run_local

                if "gen" not in state:
                    state["gen"] = LocalGenerator(
                        state.get("model") or _local_model(settings),
                        n_ctx=cfg.local_ctx, n_threads=cfg.local_threads, max_tokens=cfg.local_max_tokens, temperature=cfg.temperature,
                    )  # fmt: skip
                stats = run_local(state["gen"], prompts, keys, cache, cfg.max_chars, extra, update)
            else:
                from ur4rec_cli.features.backends import run_openai

                api_key = settings.llm_api_key()
                if api_key is None:  # pragma: no cover - _choose_backend checked it
                    raise ConfigError("the openai backend needs an API key")
                stats = run_openai(prompts, keys, cache, cfg, api_key.get_secret_value(), extra, update)
        stats.sent_keys = set(keys)
        return stats

    return send


def _merge(all_stats: list):
    from ur4rec_cli.features.backends import RunStats

    total = RunStats()
    for st in all_stats:
        for f in ("sent", "retries", "done", "failed", "input_tokens", "output_tokens", "seconds"):
            setattr(total, f, getattr(total, f) + getattr(st, f))
        total.failed_keys += st.failed_keys
        total.last_error = st.last_error or total.last_error
    return total


_MODELS: dict[str, Any] = {}


def _local_model(settings):
    """The resolved GGUF (fetched and hashed once per process)."""
    from ur4rec_cli.features.local_llm import resolve_model

    key = str(settings.llm.local_model or settings.home)
    if key not in _MODELS:
        _MODELS[key] = resolve_model(settings)
    return _MODELS[key]


def _local_estimate(settings, cache, model_id: str, pending: list) -> dict[str, Any]:
    """Time the pending prompts would take, from the tokens/s of answers this model already gave
    (or, with none cached, of one prompt generated now and not kept)."""
    from ur4rec_cli.features.local_llm import LocalGenerator, measured_speed

    speed = measured_speed([r for r in cache.entries.values() if r.get("model") == model_id])
    measured_on = f"measured on {int(speed['answers'])} cached answers" if speed else ""
    if speed is None and pending:
        import time

        cfg = settings.llm
        gen = LocalGenerator(_local_model(settings), n_ctx=cfg.local_ctx, n_threads=cfg.local_threads, max_tokens=cfg.local_max_tokens, temperature=cfg.temperature)
        t0 = time.perf_counter()
        _, _, tout = gen.ask(pending[0][0])
        seconds = time.perf_counter() - t0
        speed = {"tokens_per_s": tout / seconds if seconds else 0.0, "tokens_per_answer": float(tout), "answers": 1.0}
        measured_on = "measured on 1 prompt now, not kept"
    if not speed or not speed["tokens_per_s"]:
        return {"seconds": 0.0, "tokens_per_s": 0.0, "measured_on": "nothing to measure"}
    seconds = len(pending) * speed["tokens_per_answer"] / speed["tokens_per_s"]
    return {"seconds": round(seconds, 1), "tokens_per_s": round(speed["tokens_per_s"], 1), "tokens_per_answer": round(speed["tokens_per_answer"], 1), "measured_on": measured_on}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _answer_text(record: dict[str, Any] | None, max_chars: int, prompt: str = "") -> str:
    """The text of a cached answer, parsed from the raw reply with the current ``max_chars``;
    leading lines that copy the prompt's own lines (``Movie: ...``, ``Genres: ...``) are dropped."""
    from ur4rec_cli.features.backends import parse_answer

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


def _write_texts(store, folder: Path, dataset, texts: dict[str, list[str]], dman: Manifest, spec: dict, settings, sources=None, counts=None) -> None:
    """The texts artifact; each row says where its text came from (``llm``, ``llm-retry`` or ``template``)."""
    extra = {"backend": spec["backend"], "model": spec["model"], "prompt_version": spec["prompt_version"], "spec": spec}
    if counts:
        extra["sources"] = counts
    with store.write(folder, kind="texts", inputs={"dataset": dman.digest}, settings=settings.slice("llm"), extra=extra) as tmp:
        for group, ids in (("items", dataset.item_ids), ("users", dataset.user_ids)):
            rows = texts[group]
            if len(rows) != len(ids):  # pragma: no cover - guarded by the caller
                raise LLMError(f"{group}: {len(rows)} texts for {len(ids)} ids")
            origin = sources[group] if sources else [("template", None)] * len(rows)
            with open(tmp / f"{group}.jsonl", "w", encoding="utf-8") as fh:
                for i, (raw, text, (src, why)) in enumerate(zip(ids, rows, origin), start=1):
                    row = {"id": i, "raw_id": raw, "text": text, "source": src}
                    if why:
                        row["rejected"] = why
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_texts(folder: Path, group: str) -> list[str]:
    """Texts of one group (``items`` or ``users``) in internal-id order."""
    rows = [json.loads(line) for line in (folder / f"{group}.jsonl").read_text("utf-8").splitlines() if line.strip()]
    rows.sort(key=lambda r: r["id"])
    return [r["text"] for r in rows]


def _embed(settings: "Settings", store: ArtifactStore, name: str, *, force: bool) -> dict[str, Any]:
    from ur4rec_cli.features import embeddings as E

    texts_dir = store.features_dir(name, "texts")
    tman = store.load(texts_dir, kind="texts")
    if tman is None:  # pragma: no cover - written just before
        raise LLMError(f"texts artifact at {texts_dir} is missing or corrupt")
    folder = store.features_dir(name, "text_emb")
    cfg = settings.llm
    current = store.load(folder, kind="text_emb")
    if current is not None and not force and current.inputs.get("texts") == tman.digest and current.extra.get("model") == cfg.embedding_model:
        return {"path": str(folder), "status": "cached", **{k: current.extra.get(k) for k in ("model", "model_source", "dim", "item_shape", "user_shape")}}

    items, users = read_texts(texts_dir, "items"), read_texts(texts_dir, "users")
    model, resolved = E.load_encoder(cfg.embedding_model, cfg.device)
    if resolved.note:
        console.info(resolved.note)
    device = str(getattr(model, "device", cfg.device))
    total = len(items) + len(users)
    with console.make_progress() as progress:
        task = progress.add_task("embedding texts", total=total, status=f"{resolved.source}, {device}")
        step = lambda n: progress.advance(task, n)  # noqa: E731
        item_vecs = E.with_padding_row(E.encode(model, items, cfg.embedding_batch_size, step))
        user_vecs = E.with_padding_row(E.encode(model, users, cfg.embedding_batch_size, step))
    extra = {
        "model": cfg.embedding_model,
        "model_location": resolved.location,
        "model_source": resolved.source,
        "dim": int(item_vecs.shape[1]),
        "item_shape": list(item_vecs.shape),
        "user_shape": list(user_vecs.shape),
        "device": device,
        "normalized": True,
        # The text artifact these vectors encode (its digest is also the recorded input).
        "texts": {
            "path": texts_dir.relative_to(store.home).as_posix(),
            "digest": tman.digest,
            "backend": tman.extra.get("backend"),
            "model": tman.extra.get("model"),
            "prompt_version": tman.extra.get("prompt_version"),
        },
    }
    with store.write(folder, kind="text_emb", inputs={"texts": tman.digest}, settings=settings.slice("llm"), extra=extra) as tmp:
        np.save(tmp / "item_text.npy", item_vecs)
        np.save(tmp / "user_text.npy", user_vecs)
    console.info(f"text embeddings ({resolved.source}, dim {extra['dim']}) written to {folder}")
    return {"path": str(folder), "status": "written", **{k: extra[k] for k in ("model", "model_source", "dim", "item_shape", "user_shape")}}
