"""The training data stream of a configuration, for one rank (training and the standing-statistics pass)."""

from __future__ import annotations

from ..config import Config
from ..data import TrainStream, open_split


def build_stream(cfg: Config, *, rank: int = 0, world: int = 1, seed: int | None = None,
                 global_batch: int | None = None, num_workers: int | None = None) -> TrainStream:
    """The training data stream of ``cfg`` for one rank; ``seed``, ``global_batch`` and ``num_workers`` default
    to the run's (``train.seed``, ``optim.batch_size``, ``data.num_workers``)."""
    d, m = cfg.data, cfg.model
    source = open_split(cfg, "train")
    return TrainStream(
        source,
        global_batch=cfg.optim.batch_size if global_batch is None else global_batch,
        resolution=m.resolution,
        e_resolution=m.e_resolution if m.encoder.arch != "none" else m.resolution,
        augment=d.augment,
        channels=m.channels,
        seed=cfg.train.seed if seed is None else seed,
        rank=rank,
        world=world,
        num_workers=d.num_workers if num_workers is None else num_workers,
    )
