"""Stage checkpoints, the writing side: atomic saves, the stage manifest, RNG states for resume,
and the checked predecessor weights a later stage starts from.

Reading (run folders, ``best.pt``, ``final.json``, rebuilding a model) lives in ``ur4rec_cli.runs``,
which evaluation, serving and training all import from there.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ur4rec_cli.runs import learned_validation, read_checkpoint, stage_finished
from ur4rec_cli.store import MANIFEST, Manifest, atomic_write_bytes, atomic_write_json, sha256_file

if TYPE_CHECKING:
    from ur4rec_cli.training.context import TrainContext
    from ur4rec_cli.training.plan import StagePlan


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save into memory, then temp file + os.replace: a crash never leaves half a file."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def write_stage_manifest(folder: Path, *, inputs: dict[str, str], settings: dict[str, Any], extra: dict[str, Any]) -> None:
    """Mark a finished stage: a manifest listing its files with sizes and sha256 (store format)."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".tmp-")
    }
    man = Manifest(
        kind="checkpoint",
        files=files,
        inputs=inputs,
        settings=settings,
        extra=extra,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    atomic_write_json(folder / MANIFEST, man.to_json())


def rng_state(np_rng) -> dict[str, Any]:
    """Torch, numpy (as plain ints/lists) and python RNG states for an exact resume."""
    import random

    import torch

    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(np_rng.bit_generator.state),  # 128-bit ints survive as JSON text
        "python": [py[0], list(py[1]), py[2]],
    }


def restore_rng(state: dict[str, Any], np_rng) -> None:
    import random

    import torch

    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = json.loads(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def args_dict(args) -> dict[str, Any]:
    return asdict(args)


def predecessor_weights(ctx: "TrainContext", plan: "StagePlan") -> dict[str, Any]:
    """The weights a later stage starts from: its predecessor's best (or last, ``train.start_from``) epoch, checked."""
    from ur4rec_cli.errors import StageOrderError
    from ur4rec_cli.training.context import FEATURE_BUFFERS
    from ur4rec_cli.training.distributed import from_main

    prev = ctx.run_dir / str(plan.predecessor) / "best.pt"
    if not from_main(ctx.dist, lambda: stage_finished(prev.parent)):
        raise StageOrderError(
            f"stage {plan.stage} needs a finished {plan.predecessor} checkpoint ({prev}); run `ur4rec train --stage {plan.predecessor}` first"
        )
    if ctx.settings.train.start_from == "last":
        prev = prev.parent / "last.pt"  # the predecessor's last epoch, as the fixed schedule chains stages
    prev_ckpt = from_main(ctx.dist, lambda: read_checkpoint(prev))
    if prev_ckpt.get("digests", {}).get("dataset") != ctx.digests["dataset"]:
        raise StageOrderError(f"{plan.predecessor} was trained on another dataset; rerun `ur4rec train --stage all`")
    if plan.selects and learned_validation(prev_ckpt):
        raise StageOrderError(
            f"{plan.predecessor} was trained on the validation items (train.learn_validation), so {plan.stage} cannot select on them; "
            f"rerun `ur4rec train --stage all` with one learn_validation setting"
        )
    weights = dict(prev_ckpt["state_dict"])
    if prev.name == "last.pt" and (prev_ckpt.get("average") or {}).get("mean"):
        weights.update(prev_ckpt["average"]["mean"])  # the stage's model is its weight average
    return {k: v for k, v in weights.items() if k not in FEATURE_BUFFERS}
