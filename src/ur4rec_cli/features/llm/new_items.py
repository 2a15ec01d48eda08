"""Descriptions of items that arrive after training (`items add`), made the way the run's own item texts were.

A model trained on an LLM's item descriptions reads a new item best through the same kind of
text. The run's checkpoint names the text embeddings it was trained on (``digests.text_emb``);
their manifest names the texts artifact, whose ``spec`` says which backend, model, prompt version
and parameters wrote them (`ur4rec llm`). New items get the same:

- ``template`` texts: the template description from every field of the item (``wording.py``), as
  for the catalogue's own items, with the data set's noun;
- ``openai`` / ``local`` texts: the same item prompt (``prompts.item_prompt_of``) sent to the same
  backend with the same parameters, checked like every answer of `ur4rec llm` (a rejected answer
  gets the stricter second prompt, then the template), through the data set's answer cache
  (``cache/llm/<name>.jsonl``): adding the file again, or after a failure, asks nothing twice.
  The current `llm` settings must still describe that backend (same model, endpoint and
  parameters); otherwise one line says what differs. ``--text template`` overrides, with a warning.

When the run's texts are no longer in the home (`ur4rec llm` ran again since), the spec is
unknown: new items get template texts and a warning says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ur4rec_cli import console
from ur4rec_cli.errors import ConfigError, LLMError
from ur4rec_cli.features.llm import prompts as P

if TYPE_CHECKING:
    from ur4rec_cli.settings import Settings


def run_text_spec(settings: "Settings", dataset_name: str, digests: dict[str, str]) -> dict[str, Any] | None:
    """The spec of the texts the run's model was trained on, or None when those texts are not in the home any more."""
    from ur4rec_cli.store import ArtifactStore

    store = ArtifactStore(settings.home)
    eman = store.load(store.features_dir(dataset_name, "text_emb"), kind="text_emb")
    if eman is None or eman.digest != digests.get("text_emb"):
        return None
    tman = store.load(store.features_dir(dataset_name, "texts"), kind="texts")
    if tman is None or tman.digest != eman.inputs.get("texts"):
        return None
    return tman.extra.get("spec")


def describe_new_items(
    settings: "Settings", dataset_name: str, spec: dict[str, Any] | None, rows: list[dict[str, Any]], mode: str = "auto", *, noun: str
) -> tuple[list[str], str]:
    """(one text per row, how they were made) for new items' metadata rows ({"id", "title", "year", ...});
    ``mode``: "auto" or "template" (checked by the caller, `items add`); ``noun``: the data set's."""
    templates = [P.template_item_text_of(r, r["id"], noun) for r in rows]
    backend = (spec or {}).get("backend", "template")
    if spec is None:
        console.warn("the texts this run was trained on are no longer in the home (`ur4rec llm` ran since): new items get template descriptions")
    if backend == "template" or spec is None:
        return templates, "template descriptions (every item field)"
    if mode == "template":
        console.warn(f"this run was trained on {backend} descriptions; --text template gives its new items template descriptions instead")
        return templates, f"template descriptions (--text template; the run's own are {backend} texts)"
    return _ask(settings, dataset_name, spec, rows, templates, noun)


def _ask(settings: "Settings", dataset_name: str, spec: dict[str, Any], rows: list[dict[str, Any]], templates: list[str], noun: str) -> tuple[list[str], str]:
    from ur4rec_cli.features.llm.texts import text_spec
    from ur4rec_cli.features.llm.answers import answer_text, merge_stats, send_params, make_sender
    from ur4rec_cli.features.llm.cache import AnswerCache, cache_key
    from ur4rec_cli.features.llm.validate import rejection
    from ur4rec_cli.store import ArtifactStore

    backend, cfg = spec["backend"], settings.llm
    if backend == "local":
        from ur4rec_cli.features.llm.batched import INSTALL_HINT, local_packages_missing

        if local_packages_missing():
            raise ConfigError(f"this run's item texts came from the local backend: {INSTALL_HINT} (or pass --text template)")
    now = text_spec(settings, backend)
    if now != spec:
        changed = ", ".join(sorted(k for k in set(now) | set(spec) if now.get(k) != spec.get(k)))
        raise ConfigError(f"this run's item texts came from the {backend} backend with other llm settings ({changed} differ now): "
                          "set them back to describe new items alike, or pass --text template")  # fmt: skip
    if backend == "openai" and settings.llm_api_key() is None:
        raise ConfigError("this run's item texts came from the openai backend, which needs an API key: set UR4REC_LLM__API_KEY, OPENAI_API_KEY or DASHSCOPE_API_KEY (or pass --text template)")
    params = send_params(spec)
    tries = []
    for strict, version, make in ((False, P.PROMPT_VERSION, P.item_prompt_of), (True, P.STRICT_VERSION, P.strict_item_prompt_of)):
        built = [make(r, r["id"], i + 1, noun) for i, r in enumerate(rows)]
        keys = [cache_key(backend=backend, model=spec["model"], prompt_version=version, messages=p.messages(), params=params) for p in built]
        tries.append((built, keys))
    cache = AnswerCache(ArtifactStore(settings.home).cache_dir("llm") / f"{dataset_name}.jsonl")
    cache.repair()
    send = make_sender(settings, spec, cache, {"backend": backend, "model": spec["model"], "prompt_version": P.PROMPT_VERSION})

    def verdict(strict: int, i: int) -> tuple[str, str | None]:
        prompt, key = tries[strict][0][i], tries[strict][1][i]
        text = answer_text(cache.get(key), cfg.max_chars, prompt.user)
        return text, rejection(text, prompt.user.replace(P.title_of(rows[i], rows[i]["id"], noun), " "), max_chars=cfg.max_chars)

    stats = []
    try:
        first = {k: p for p, k in zip(*tries[0]) if k not in cache}
        if first:
            stats.append(send([(p, k) for k, p in first.items()], False))
        first_verdicts = {i: verdict(0, i) for i, k in enumerate(tries[0][1]) if k in cache}
        rejected = [i for i, (_, why) in first_verdicts.items() if why is not None]
        second = {tries[1][1][i]: tries[1][0][i] for i in rejected if tries[1][1][i] not in cache}
        if second:
            stats.append(send([(p, k) for k, p in second.items()], True))
    finally:
        cache.close()
    total = merge_stats(stats)
    if total.failed:
        raise LLMError(f"{total.failed} of {len(rows)} new items' descriptions failed after {cfg.max_retries} retries (last: {total.last_error}); "
                       f"answers so far are kept in {cache.path}: run the command again")  # fmt: skip
    texts, counts = [], {"llm": 0, "llm-retry": 0, "template": 0}
    for i in range(len(rows)):
        text, why = first_verdicts[i]  # every first answer is in: no prompt failed
        if why is not None:
            text, why = verdict(1, i)
        source = ("llm" if i not in rejected else "llm-retry") if why is None else "template"
        counts[source] += 1
        texts.append(text if why is None else templates[i])
    made = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return texts, f"{backend} descriptions ({spec['model']}, prompt {spec['prompt_version']}; {made})"
