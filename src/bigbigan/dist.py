"""The one place that reads RANK / WORLD_SIZE: works uninitialised (world 1) and under torchrun."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str | None = None) -> DistInfo:
    """Initialise torch.distributed when launched by torchrun (NCCL on GPUs, gloo on CPU); no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        # one process: the GPU asked for (cuda:N); under torchrun every rank takes the GPU of its local rank
        dev = torch.device("cuda", dev.index if world == 1 and dev.index is not None else local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if attempt is not None and "MASTER_ADDR" in os.environ:
            # Under torchrun, key this attempt's rendezvous apart from earlier (failed) attempts, so a restarted
            # worker never reads a dead peer's address (--max-restarts).
            agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
            store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                                  is_master=(rank == 0 and not agent_store), wait_for_workers=False)
            store = dist.PrefixStore(f"bigbigan/attempt{attempt}", store)
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
        else:
            dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world=world, local_rank=local, device=dev)


def info() -> DistInfo:
    """Rank and world of an initialised process group (world 1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def launched_as_main() -> bool:
    """Rank 0 of the launch (torchrun's RANK), also after the process group is shut down."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped tensors from all ranks along dim 0 (identity with one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        # every rank reaches here before any tears down: a gloo rank destroying its group while a peer still
        # works (rank 0 writing a file) aborted at exit now and then ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()
