"""Exponential moving average of G's and E's weights (App. A), used for every evaluation and export."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``ema = decay_t * ema + (1 - decay_t) * live`` for parameters; buffers (BN statistics, SN vectors) copied.

    decay_t = min(decay, (1 + t) / (warmup + t)) is a warm start: early averages are not dominated by the
    random initialisation. Kept in fp32.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: int) -> None:
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.decay = decay
        self.warmup = max(1, warmup)
        self.num_updates = 0
        self._live_params: list[torch.Tensor] | None = None

    def decay_at(self, t: int) -> float:
        return min(self.decay, (1.0 + t) / (self.warmup + t))

    @torch.no_grad()
    def update(self, live: nn.Module) -> None:
        d = self.decay_at(self.num_updates)
        ema_p = list(self.model.parameters())
        live_p = [p.detach().float() for p in live.parameters()]
        torch._foreach_lerp_(ema_p, live_p, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), live.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
