"""Scalar statistics: reported as tensors from anywhere in the step (no host sync), reduced at log time.

``Stats.report("loss/D/x/real", t)`` accumulates on the device; ``Stats.flush(step)`` averages over the
interval and across ranks (one all-reduce, one host transfer), appends a line to ``stats.jsonl`` and writes
TensorBoard scalars on rank 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.distributed as dist

from ..files import append_jsonl

try:  # tensorboard is optional at run time: without it only stats.jsonl is written
    from torch.utils.tensorboard import SummaryWriter
except ImportError:
    SummaryWriter = None


class Stats:
    def __init__(self, run_dir: str | Path | None, *, main: bool = True, tensorboard: bool = True) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.main = main
        self.path = Path(run_dir) / "stats.jsonl" if run_dir is not None else None
        self.tb = None
        if main and run_dir is not None and tensorboard and SummaryWriter is not None:
            self.tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def report(self, key: str, value: torch.Tensor | float) -> None:
        v = value.detach().float().mean() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
        if key in self.sums:
            self.sums[key] = self.sums[key] + v
            self.counts[key] += 1
        else:
            self.sums[key] = v
            self.counts[key] = 1

    def flush(self, step: int, extra: dict | None = None) -> dict:
        """Average and write the interval's statistics; returns them as floats."""
        keys = sorted(self.sums)
        record: dict = {"step": step}
        if keys:
            vec = torch.stack([self.sums[k].to(self.sums[keys[0]].device) / self.counts[k] for k in keys])
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(vec)
                vec /= dist.get_world_size()
            record.update(zip(keys, vec.cpu().tolist()))
        if extra:
            record.update(extra)
        self.sums.clear()
        self.counts.clear()
        if self.main:
            self.write(record)
        return record

    def write(self, record: dict) -> None:
        """Append one record (already reduced) to stats.jsonl and TensorBoard."""
        if not self.main:
            return
        if self.path is not None:
            append_jsonl(self.path, record)
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, record["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
