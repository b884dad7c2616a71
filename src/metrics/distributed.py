"""The few torch.distributed collectives the metrics need; no-ops when not initialised."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list when not distributed)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; gloo (and the CPU tests) reduce CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(array: np.ndarray) -> np.ndarray:
    """Element-wise sum over ranks of a float64 array (returned unchanged when not distributed).

    Float64 keeps integer counts exact up to 2**53.
    """
    if not is_distributed():
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()
