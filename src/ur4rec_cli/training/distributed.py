"""torchrun / DistributedDataParallel support: gloo on CPU, nccl on CUDA.

`ur4rec train` runs unchanged under ``torchrun --nproc-per-node N -m ur4rec_cli train ...``:
torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT, and this module turns
them into a process group. Without them everything here is a no-op (world size 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: "torch.device") -> DistContext:
    """Join the process group torchrun describes (nccl for CUDA devices, gloo otherwise)."""
    import torch
    import torch.distributed as dist

    if not launched_by_torchrun():
        return DistContext()
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local, initialized=True)


def local_device(device: "torch.device", ctx: DistContext) -> "torch.device":
    """Each rank drives its own GPU (cuda:LOCAL_RANK); CPU ranks share the CPU."""
    import torch

    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def shard_indices(n: int, ctx: DistContext, *, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """This rank's share of ``range(n)`` for one epoch (torch's DistributedSampler semantics)."""
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return np.fromiter(iter(sampler), dtype=np.int64)


def all_reduce_sum(value: "torch.Tensor", ctx: DistContext) -> "torch.Tensor":
    """Sum a tensor over ranks (in place); identity when not distributed."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def all_gather_array(arr: np.ndarray, ctx: DistContext) -> np.ndarray:
    """Concatenate a 1-D numpy array from every rank, in rank order (each rank gets the result)."""
    if not ctx.enabled:
        return arr
    import torch.distributed as dist

    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, arr)
    return np.concatenate(parts)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's value on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.initialized:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap_for_ddp(module: "torch.nn.Module", device: "torch.device", ctx: DistContext) -> "torch.nn.Module":
    """The module under DistributedDataParallel when the job has several ranks; as is otherwise."""
    if not ctx.enabled:
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # Frozen parameters (requires_grad False) are left out by DDP; some MoE parts may see no
    # gradient in a step, hence find_unused_parameters. Feature buffers are identical on every
    # rank, so they are not re-broadcast each step; torch >= 2.14 renamed broadcast_buffers
    # (per-forward sync) to forward_sync_buffers.
    params = inspect.signature(DistributedDataParallel).parameters
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return DistributedDataParallel(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
        **{no_sync: False},
    )


def from_main(ctx: DistContext, fn):
    """fn() evaluated on rank 0 only and broadcast (files need not be shared between nodes); its error is raised everywhere."""
    from ur4rec_cli.errors import Ur4recError

    if not ctx.enabled:
        return fn()
    result = error = None
    if ctx.is_main:
        try:
            result = fn()
        except Ur4recError as exc:
            error = exc
    result, error = broadcast_object((result, error), ctx)
    if error is not None:
        raise error
    return result
