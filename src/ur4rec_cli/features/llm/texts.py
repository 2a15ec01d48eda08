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
from ur4rec_cli.data.prepare import dataset_name
from ur4rec_cli.errors import ConfigError, LLMError
from ur4rec_cli.features.llm import prompts as P
from ur4rec_cli.features.llm.answers import KINDS, llm_texts, local_model
from ur4rec_cli.store import ArtifactStore, Manifest

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.settings import Settings



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
    name = dataset_name(settings.data)
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
def _load_dataset(settings: "Settings") -> tuple["Dataset", Manifest]:
    from ur4rec_cli.data.prepare import load_dataset

    return load_dataset(settings)


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
        from ur4rec_cli.features.llm.batched import INSTALL_HINT, local_packages_missing

        if local_packages_missing():
            raise ConfigError(INSTALL_HINT)
    return backend, "requested"


def text_spec(settings: "Settings", backend: str) -> dict[str, Any]:
    """Everything that shapes the texts: recorded in the artifact and compared on reuse."""
    cfg = settings.llm
    if backend == "template":
        return {"backend": "template", "model": None, "prompt_version": P.TEMPLATE_VERSION, "params": {"history_items": cfg.history_items}}
    if backend == "local":
        from ur4rec_cli.features.llm.local import SEED

        model = local_model(settings)
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
    name = dataset_name(settings.data)
    wanted = _wanted(what)
    if limit is not None and limit < 0:
        raise ConfigError("--limit must be >= 0")
    backend, reason = _choose_backend(settings, dry_run)
    spec = text_spec(settings, backend)
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
        summary["model_path"] = str(local_model(settings).path)
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
        texts = llm_texts(settings, store, dataset, name, spec, wanted, limit, dry_run, summary)

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
