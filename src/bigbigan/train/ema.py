"""Exponential moving average of G's and E's weights (App. A), used for every evaluation and export.

BigGAN's scheme (as the paper's App. A inherits it from BigGAN): the average is a plain copy of the live weights
until a start step, then ``ema = decay * ema + (1 - decay) * live`` with the fixed decay. Unlike a warm-up
formula (decay_t = min(decay, (1 + t) / (warmup + t)), which only approaches ``decay`` after ~warmup/(1 - decay)
iterations), the decay is reached at the start step, so the averaging horizon 1 / (1 - decay) is the one asked.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """The EMA copy of one network: updated once per training iteration, kept in fp32.

    After update number ``t`` (1-based, i.e. the trainer's step after the iteration): ``t <= start``: ema = live;
    ``t > start``: ema = decay * ema + (1 - decay) * live, for parameters.

    Buffers are copied from the live network at every update, not averaged:
    - BatchNorm running statistics are estimates for the live weights; evaluation and export replace them by
      standing statistics re-estimated for the EMA weights (``bigbigan.standing``, ``eval.*`` config);
      with those off, the live network's statistics are the fallback (as before this scheme).
    - Spectral norm's power-iteration vector ``sn_u`` is an estimate of a unit singular vector, not a weight:
      an average of unit vectors is shorter than one, which would scale the eval-mode sigma down; the live
      network's vector is a close estimate for weights that track the live ones.
    - ``num_batches_tracked`` is a counter (an integer tensor cannot be averaged).
    """

    def __init__(self, model: nn.Module, decay: float, start: int) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay {decay} is not in [0, 1)")
        if start < 0:
            raise ValueError(f"EMA start {start} is negative")
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.decay = decay
        self.start = start
        self.num_updates = 0

    def decay_at(self, t: int) -> float:
        """The decay applied by update number ``t`` (1-based): 0 (a copy) up to ``start``, then ``decay``."""
        return 0.0 if t <= self.start else self.decay

    @torch.no_grad()
    def update(self, live: nn.Module) -> None:
        self.num_updates += 1
        d = self.decay_at(self.num_updates)
        ema_p = list(self.model.parameters())
        live_p = [p.detach().float() for p in live.parameters()]
        if d == 0.0:
            torch._foreach_copy_(ema_p, live_p)
        else:
            torch._foreach_lerp_(ema_p, live_p, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), live.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
