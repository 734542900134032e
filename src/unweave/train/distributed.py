"""Distributed helpers: torchrun environment, device choice, rank-aware batch indices.

Single-process runs need none of this (``WORLD_SIZE`` unset). Under ``torchrun`` every rank
builds the same model, wraps it in DDP and draws disjoint example indices (``StepBatchSampler``),
so the data order depends only on (seed, step, rank); only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UnweaveError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Ranks from the torchrun environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def pick_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        name = f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and info.enabled:
        name = f"cuda:{info.local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UnweaveError(f"train.device: unknown device {name!r} (auto, cpu, cuda, cuda:N)") \
            from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnweaveError(f"train.device: {name!r} asked for, but CUDA is not available here")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def init_process_group(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


class StepBatchSampler(torch.utils.data.Sampler):
    """Endless batches of example indices; batch ``k`` of rank ``r`` holds
    ``(k * world + r) * batch_size + i`` for ``i < batch_size``, starting at ``start_step``."""

    def __init__(self, batch_size: int, start_step: int = 0, info: DistInfo = DistInfo()) -> None:
        self.batch_size, self.start_step, self.info = batch_size, start_step, info

    def __iter__(self):
        step = self.start_step
        while True:
            first = (step * self.info.world_size + self.info.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62
