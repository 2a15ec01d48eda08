"""`ur4rec llm`: item descriptions and user-preference texts (LLM or template), then text embeddings."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from ur4rec_cli.cli._common import DatasetOpt, DeviceOpt, JsonOpt, app_context

LLMForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help=(
            "Rebuild the texts artifact and the embeddings even when valid ones exist. Cached LLM answers "
            "for identical prompts (same backend, model, prompt version and generation params) are reused, "
            "not paid for again; delete the cache file (cache/llm/<dataset>.jsonl under the home) to re-ask."
        ),
    ),
]


def command(
    ctx: typer.Context,
    backend: Annotated[
        Optional[str],
        typer.Option(
            "--backend",
            help=(
                "auto (openai when an API key is set in UR4REC_LLM__API_KEY, OPENAI_API_KEY or DASHSCOPE_API_KEY, else template) "
                "| openai | local (a GGUF model in-process, prompts decoded in batches; pip install 'ur4rec[local]') | template."
            ),
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        Optional[str],
        typer.Option("--base-url", help="OpenAI-compatible endpoint [default: DashScope's compatible-mode/v1 for Qwen].", show_default=False),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            help="openai: chat model name [default: qwen-plus]. local: a GGUF file [default: SmolLM2-135M-Instruct, fetched from the package index].",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="local: CPU threads [default: all cores].", show_default=False)] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option("--batch-size", help="local: prompts decoded together [default: auto, 128 on a CPU, 512 on CUDA].", show_default=False),
    ] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Requests in flight at once [default: 8].", show_default=False)] = None,
    max_retries: Annotated[
        Optional[int], typer.Option("--max-retries", help="Retries per request on 429, 5xx, timeouts, connection errors [default: 6].", show_default=False)
    ] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Per-request timeout in seconds [default: 60].", show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Send at most N new requests (a cheap trial), then report how many remain.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show how many prompts would be sent and the estimated input tokens; send nothing.")] = False,
    force: LLMForceOpt = False,
    what: Annotated[str, typer.Option("--what", help="items | users | all.")] = "all",
    embed: Annotated[bool, typer.Option("--embed/--no-embed", help="Encode the texts with sentence-transformers afterwards.")] = True,
    embedding_model: Annotated[
        Optional[str], typer.Option("--embedding-model", help="sentence-transformers model name or local path.", show_default=False)
    ] = None,
    device: DeviceOpt = None,
    dataset: DatasetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the texts artifact (and its embeddings) and print a summary."""
    from ur4rec_cli import api
    from ur4rec_cli.errors import ConfigError

    if backend is not None and backend not in ("auto", "openai", "local", "template"):
        raise ConfigError(f"--backend must be auto, openai, local or template, not {backend!r}")
    if what not in ("items", "users", "all"):
        raise ConfigError(f"--what must be items, users or all, not {what!r}")
    gguf = model is not None and (backend == "local" or model.lower().endswith(".gguf"))
    overrides = {
        "llm": {
            "backend": backend,
            "base_url": base_url,
            "model": None if gguf else model,
            "local_model": model if gguf else None,
            "local_threads": threads,
            "local_batch_size": batch_size,
            "concurrency": concurrency,
            "max_retries": max_retries,
            "timeout": timeout,
            "embedding_model": embedding_model,
            "device": device,
        }
    }
    settings = app_context(ctx).dataset_settings(overrides, dataset)
    try:
        result = api.generate_texts(settings, what=what, limit=limit, dry_run=dry_run, force=force, embed=embed)
    except KeyboardInterrupt:
        from ur4rec_cli.console import warn

        warn("interrupted: every answer received so far is in the cache; rerun `ur4rec llm` to resume")
        raise  # exit code 130
    if json_out:
        from ur4rec_cli.console import emit_json

        emit_json(result)
    else:
        _print_table(result)


def _print_table(r: dict[str, Any]) -> None:
    from rich.table import Table

    from ur4rec_cli.console import out

    table = Table(title=f"ur4rec llm · {r['dataset']}" + (" · dry run" if r.get("dry_run") else ""), show_header=True)
    table.add_column("")
    for col in ("total", "done", "cached", "failed", "remaining"):
        table.add_column(col, justify="right")
    for group in ("items", "users"):
        if group in r:
            g = r[group]
            table.add_row(group, *(f"{g[c]:,}" for c in ("total", "done", "cached", "failed", "remaining")))
    out.print(table)
    lines = [f"backend: {r['backend']} ({r['backend_reason']})"]
    if r.get("model"):
        lines.append(f"model: {r['model']}" + (f" at {r['base_url']}" if r.get("base_url") else ""))
    if "speed" in r:
        sp = r["speed"]
        lines.append(f"speed: {sp['tokens_per_s']:,} tokens/s, {sp['prompts_per_s']} prompts/s ({sp['seconds']:,} s generating)")
    if r.get("sources"):
        parts = []
        for g, c in r["sources"].items():
            parts.append(f"{g} {c['llm']:,} llm, {c['llm-retry']:,} on a second try, {c['template']:,} template fallbacks")
        lines.append("texts from: " + "; ".join(parts))
    if "tokens" in r:
        lines.append(f"tokens: {r['tokens']['input']:,} in, {r['tokens']['output']:,} out; requests {r['requests']['sent']:,} ({r['requests']['retries']:,} retries)")
    if r.get("dry_run"):
        lines.append(f"would send {r.get('requests_to_send', 0):,} requests, about {r.get('estimated_input_tokens', 0):,} input tokens (characters / 4)")
        if r.get("estimate"):
            e = r["estimate"]
            lines.append(f"estimated time: {e['seconds']:,.0f} s at {e['tokens_per_s']:,} tokens/s ({e['measured_on']})")
    lines.append(f"texts: {r['texts']['status']} {r['texts']['path']}")
    if not r.get("complete", True) and not r.get("dry_run"):
        lines.append(f"incomplete: {r.get('remaining', 0):,} prompts still to send; rerun to continue")
    e = r.get("embeddings")
    if e:
        # The arrays hold a zero padding row 0: counted out here, so the numbers match the data set.
        lines.append(
            f"embeddings: {e['status']} {e['path']} · {e['model']} ({e['model_source']}) · "
            f"{e['item_shape'][0] - 1:,} items, {e['user_shape'][0] - 1:,} users, dim {e['item_shape'][1]}"
        )
    for line in lines:
        out.print(line)
