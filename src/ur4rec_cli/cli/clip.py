"""`ur4rec clip`: CLIP features of the item posters, text fallback for items without one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ur4rec_cli.cli._common import DatasetOpt, DeviceOpt, ForceOpt, JsonOpt, app_context


def command(
    ctx: typer.Context,
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Folder of posters named <item_id>.{jpg,jpeg,png,webp}.", show_default=False),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="open_clip architecture [default: ViT-B-32].", show_default=False)] = None,
    pretrained: Annotated[
        str | None,
        typer.Option("--pretrained", help="Pretrained tag (openai, laion2b_s34b_b79k, ...) or 'none' for random weights (tests) [default: openai].", show_default=False),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Local CLIP checkpoint file (overrides --pretrained); its architecture is --model (OpenAI's own file needs ViT-B-32-quickgelu).", show_default=False)
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images or texts per inference batch [default: 64].", show_default=False)] = None,
    device: DeviceOpt = None,
    fetch_posters: Annotated[
        bool, typer.Option("--fetch-posters", help="Download missing posters from TMDB first (needs TMDB_API_KEY).")
    ] = False,
    force: ForceOpt = False,
    dataset: DatasetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from ur4rec_cli import api
    from ur4rec_cli.console import emit_json, out

    overrides = {
        "clip": {
            "images": images,
            "model": model,
            "pretrained": pretrained,
            "checkpoint": checkpoint,
            "batch_size": batch_size,
            "device": device,
            # An unset flag leaves the env/config value alone.
            "fetch_posters": True if fetch_posters else None,
        }
    }
    settings = app_context(ctx).dataset_settings(overrides, dataset)
    report = {"dataset": api.dataset_name(settings), **api.extract_clip_features(settings, force=force)}
    if json_out:
        emit_json(report)
        return
    weights = "checkpoint " + str(report["checkpoint_sha256"])[:12] if report.get("checkpoint_sha256") else report["pretrained"]
    out.print(f"CLIP features of {report['dataset']}: {report['path']}{' (from the store)' if report['cached'] else ''}", markup=False)
    out.print(f"model: {report['model']} ({weights}{', RANDOM weights' if report['random_weights'] else ''}), dim {report['dim']}", markup=False)
    out.print(f"items: {report['items']}", markup=False)
    out.print(f"  from image: {report['from_image']} (of which TMDB posters: {report.get('from_posters') or 0})", markup=False)
    out.print(f"  from text prompt: {report['from_text']}", markup=False)
    out.print(f"  unreadable images skipped: {report['skipped']}", markup=False)
    posters = report.get("posters")
    if posters:
        out.print(
            f"TMDB: {posters['downloaded']} downloaded, {posters['already_cached']} cached, "
            f"{len(posters['unmatched'])} unmatched, {posters['errors']} errors",
            markup=False,
        )
