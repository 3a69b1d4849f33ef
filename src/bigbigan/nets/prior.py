"""P_z, the latent prior (Sec. 2): N(0, I) or, for the "Uniform P_z" row, U(-1, 1)."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_prior(prior: str, shape: tuple[int, int], gen: torch.Generator, device) -> Tensor:
    """z ~ P_z of ``shape`` [B, z_dim] from ``gen`` ("gaussian" or "uniform")."""
    if prior == "uniform":
        return torch.rand(shape, generator=gen, device=device) * 2 - 1
    return torch.randn(shape, generator=gen, device=device)
