"""`ur4rec` under torchrun, saving each rank's final weights through the library's stage-end hook.

Usage: python -m torch.distributed.run ... tests/ddp_worker.py DUMP_DIR <ur4rec arguments>
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import torch

    from ur4rec_cli.cli import main as ur4rec
    from ur4rec_cli.training.stages import STAGE_END_HOOKS

    dump = Path(sys.argv[1])
    dump.mkdir(parents=True, exist_ok=True)

    def save(stage, model, dist) -> None:
        torch.save({"state_dict": model.state_dict()}, dump / f"{stage}-rank{dist.rank}.pt")

    STAGE_END_HOOKS.append(save)
    ur4rec(sys.argv[2:])


if __name__ == "__main__":
    main()
