"""Multi-process launches (torchrun, accelerate launch): which process this is, and the little ranks share.

The Trainer (through accelerate) does the real work: sharding batches, all-reducing gradients,
gathering evaluation predictions. tunelab only has to agree on one run folder and let rank 0
alone write it and the store.
"""

from __future__ import annotations

import os
from typing import Any

# Strategies that run as one Trainer and so scale out; the others are single-process by design.
DISTRIBUTED_STRATEGIES = ("full", "lora")


def world_size() -> int:
    """Number of processes in this launch (1 when not launched by torchrun/accelerate)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 when alone)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the one process that writes runs, the store and the console."""
    return rank() == 0


def init() -> None:
    """Join the process group now (accelerate's shared state, which the Trainer reuses later)."""
    if world_size() > 1:
        import torch
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def share(value: Any) -> Any:
    """Rank 0's `value` on every rank (a no-op when alone)."""
    if world_size() == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every rank gets here."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()
