"""`ur4rec train`: the four UR4Rec V2 stages, or one of them."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from ur4rec_cli.cli._common import DatasetOpt, DeviceOpt, JsonOpt, app_context
from ur4rec_cli.settings import TrainConfig

# Help shows the default values themselves (read off the settings model), not setting names.
_F = TrainConfig.model_fields
_EPOCHS = " / ".join(str(_F[k].default) for k in ("sasrec_epochs", "retriever_epochs", "joint_epochs", "end_to_end_epochs"))
_LEARN = "--learn-validation" if _F["learn_validation"].default else "--select-on-validation"

_STAGE_CHOICES = ("all", "pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end")


def command(
    ctx: typer.Context,
    stage: Annotated[
        str,
        typer.Option("--stage", help="all | pretrain_sasrec | pretrain_retriever | joint_finetune | end_to_end."),
    ] = "all",
    device: DeviceOpt = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs of every stage run now, a cap with --select-on-validation [default: " + _EPOCHS + " for stages 1-4].", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed [default: 42].", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from last.pt; finished stages are kept.")] = False,
    modalities: Annotated[
        Optional[str],
        typer.Option("--modalities", help="Comma-separated MoE modalities: any of user_text,item_text,image [default: all three].", show_default=False),
    ] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Run folder name, e.g. one per ablation [default: main].", show_default=False)] = None,
    learn_validation: Annotated[
        Optional[bool],
        typer.Option(
            "--learn-validation/--select-on-validation",
            help="Train on each user's validation item too, with fixed epoch counts; or keep it held out and early-stop on it [default: " + _LEARN + "].",
            show_default=False,
        ),
    ] = None,
    max_steps: Annotated[
        Optional[int],
        typer.Option("--max-steps", help="End every epoch after this many steps (smoke runs, cost benchmarks) [default: whole epochs].", show_default=False),
    ] = None,
    dataset: DatasetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train and print a per-stage summary."""
    from ur4rec_cli import api
    from ur4rec_cli.errors import ConfigError

    if stage not in _STAGE_CHOICES:
        raise ConfigError(f"--stage must be one of {', '.join(_STAGE_CHOICES)}, not {stage!r}")
    if epochs is not None and epochs < 1:
        raise ConfigError("--epochs must be a positive integer")
    if max_steps is not None and max_steps < 1:
        raise ConfigError("--max-steps must be a positive integer")
    overrides = {
        "train": {"device": device, "epochs": epochs, "seed": seed, "run": run, "learn_validation": learn_validation, "max_steps": max_steps},
        "model": {"modalities": modalities if modalities is None else [m.strip() for m in modalities.split(",") if m.strip()]},
    }
    settings = app_context(ctx).dataset_settings(overrides, dataset)
    result = {"dataset": api.dataset_name(settings), **api.train(settings, stage=stage, resume=resume)}
    if result.get("rank", 0) != 0:
        return  # under torchrun only rank 0 reports
    if json_out:
        from ur4rec_cli.console import emit_json

        emit_json(result)
    else:
        _print(result, _next_command(app_context(ctx).home, result, dataset))


def _next_command(home: Any, r: dict[str, Any], dataset: str | None) -> str:
    """The exact command that prints this run's test figures."""
    import shlex

    words = ["ur4rec"] + (["--home", str(home)] if home is not None else []) + ["evaluate"]
    if dataset:
        words += ["--dataset", dataset]
    if r.get("run") and r["run"] != "main":
        words += ["--run", r["run"]]
    return " ".join(shlex.quote(w) for w in words)


def _print(r: dict[str, Any], next_command: str | None = None) -> None:
    """The per-stage table (fits 80 columns), then each stage's validation curve on its own line."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ur4rec_cli.console import out

    title = f"ur4rec train · {r.get('dataset', '?')} · run {r['run']} · {r['device']}"
    fixed = (r.get("final") or {}).get("selected_by") == "last stage"
    caption = (
        "fixed schedule, validation items trained on: nothing validated"
        if fixed
        else "NDCG@10, HR@10: validation split, at the best epoch"
    )
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, caption=caption, caption_justify="left")
    table.add_column("stage", no_wrap=True)
    for col in ("epochs", "best", "NDCG@10", "HR@10", "wall s", "RSS MB"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in r["stages"]:
        val = s.get("best_val", {})
        table.add_row(
            s["stage"] + (" (kept)" if s.get("skipped") else ""),
            str(s.get("epochs", "")),
            str(s.get("best_epoch", "")),
            f"{val['NDCG@10']:.4f}" if "NDCG@10" in val else "–",
            f"{val['HR@10']:.4f}" if "HR@10" in val else "–",
            f"{s.get('wall_s', 0):.1f}",
            f"{s.get('peak_rss_mb', 0):.0f}",
        )
    out.print(table)
    curves = [(s["stage"], s.get("curve", "")) for s in r["stages"] if s.get("curve")]
    if curves:
        out.print("val NDCG@10 per epoch:")
        for stage, curve in curves:
            out.print(Text(f"  {stage:<18} {curve}"), soft_wrap=True)
    out.print(f"modalities: {', '.join(r['modalities']) or 'none'}")
    for note in r.get("notes", []):
        # Each note was a warning printed in full when it happened; the summary refers back to it.
        out.print(f"note: {note.split(':', 1)[0]} (the warning above says why)", markup=False)
    if r.get("final"):
        by = r["final"].get("selected_by", "validation NDCG@10")
        by = "best validation NDCG@10" if by == "validation NDCG@10" else "last stage of the fixed schedule"
        out.print(f"final stage ({by}): {r['final']['stage']}; index: {r.get('index')}", markup=False)
    if r.get("loss"):
        out.print(f"loss: {r['loss']}", markup=False)
    out.print(f"protocol: {r['protocol']}", markup=False)
    if r.get("final") and next_command:
        out.print(f"test figures of the final stage (full ranking): {next_command}", markup=False)
