"""Standing statistics (BigGAN, App. A inherits BigGAN's evaluation): BatchNorm running statistics of the EMA G
and E re-estimated for the EMA weights, instead of the live network's running statistics that the EMA copies.

The EMA weights are an average over many iterations; the live network's running mean and variance describe the
activations of the current weights only. The standing pass resets every BN layer's statistics and accumulates
the cumulative average (``momentum=None``) of their batch statistics over a fixed, seeded set of batches: z from
the prior for G, real training images (the training stream: the run's augmentation) for E. Under torchrun every
rank takes its slice of each global batch and cross-replica BN reduces over all of them, so the statistics are
the global batch's, as in training; every rank must take part.

Below both training (the export and the periodic evaluation's models) and evaluation (every loaded model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import dist as bdist
from .config import Config
from .data import build_stream
from .nets import sample_prior


@torch.no_grad()
def standing_stats(model: nn.Module, batches: Iterable[Any],
                   forward: Callable[[nn.Module, Any], Any] | None = None) -> int:
    """Re-estimate the running statistics of every BatchNorm in ``model`` over ``batches`` (in place).

    Each BN layer's running mean / variance become the plain average of its per-batch mean / (unbiased) variance,
    as BigGAN's standing statistics. Only the BN layers run in train mode: the rest stays as it is (spectral
    norm's power iteration does not advance, so nothing but the BN statistics changes). Momentum and train/eval
    modes are restored afterwards. ``forward(model, batch)`` defaults to ``model(batch)``. Returns the number of
    batches used (at least one is needed).
    """
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    modes = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in bns]
    n = 0
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: every batch weighs the same
            m.train()
        for batch in batches:
            if forward is None:
                model(batch)
            else:
                forward(model, batch)
            n += 1
    finally:
        for m, mom in momenta:
            m.momentum = mom
        for m, training in modes:
            m.train(training)
    if n == 0 and bns:
        raise ValueError("standing statistics need at least one batch")
    return n


def prior_batches(prior: str, z_dim: int, *, num_batches: int, global_batch: int, seed: int,
                  device: torch.device | str, rank: int = 0, world: int = 1) -> Iterator[Tensor]:
    """``num_batches`` seeded global batches of z ~ P_z, this rank's slice of each ([global_batch / world, z_dim])."""
    gen = torch.Generator(device=device).manual_seed(seed)
    local = global_batch // world
    for _ in range(num_batches):
        z = sample_prior(prior, (global_batch, z_dim), gen, device)
        yield z[rank * local : (rank + 1) * local]


def image_batches(cfg: Config, *, num_batches: int, global_batch: int, seed: int, device: torch.device | str,
                  rank: int = 0, world: int = 1) -> Iterator[Tensor]:
    """``num_batches`` seeded batches of training images at E's resolution (the run's training stream and
    augmentation, with its own seed), this rank's slice of each global batch."""
    stream = build_stream(cfg, rank=rank, world=world, seed=seed, global_batch=global_batch, num_workers=0)
    try:
        for _ in range(num_batches):
            x, x_e, _ = next(stream)
            yield (x if x_e is None else x_e).to(device)
    finally:
        stream.close()


def standing_batch_size(cfg: Config, world: int) -> int:
    """Global images per standing batch: ``eval.standing_stats_batch_size``, at most training's global batch,
    rounded down to a multiple of the number of processes (at least one image per rank)."""
    b = min(cfg.eval.standing_stats_batch_size, cfg.optim.batch_size)
    return max(world, b // world * world)


def ema_standing_stats(cfg: Config, G: nn.Module, E: nn.Module | None, *, device: torch.device | str,
                       num_batches: int | None = None) -> int:
    """Standing statistics for (EMA) G and E in place, per ``cfg.eval`` (``num_batches`` overrides
    ``eval.standing_stats_batches``; 0: nothing is changed). Call on every rank. Returns the batch count used."""
    n = cfg.eval.standing_stats_batches if num_batches is None else num_batches
    if n <= 0:
        return 0
    info = bdist.info()
    kw = {"num_batches": n, "global_batch": standing_batch_size(cfg, info.world), "seed": cfg.eval.standing_stats_seed,
          "device": device, "rank": info.rank, "world": info.world}
    standing_stats(G, prior_batches(cfg.model.prior, cfg.model.z_dim, **kw))
    if E is not None:  # only the trunk has BN: its features suffice (and need no reparameterisation noise)
        standing_stats(E, image_batches(cfg, **kw), forward=lambda m, x: m.features(x))
    return n
