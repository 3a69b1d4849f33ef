"""Reconstruction quality x -> G(E(x)) (paper Sec. 3.3 and App. B)."""

from __future__ import annotations

import torch
from torch import Tensor


def relative_l1_error(x: Tensor, x_rec: Tensor) -> float:
    """Relative pixel-wise L1 error of App. B (Table 5), about 1 for untrained G and E:

        sum_i ||x_i - x_rec_i||_1 / sum_i ||x_{(i+1) mod N} - x_rec_i||_1

    the denominator compares each reconstruction with a different input, a "random input" baseline that
    penalises degenerate reconstructions such as the mean image. x, x_rec: [N, ...] with N >= 2.
    """
    if x.shape != x_rec.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_rec {tuple(x_rec.shape)} differ in shape")
    if x.shape[0] < 2:
        raise ValueError("relative_l1_error needs at least 2 samples")
    x = x.double().flatten(1)
    x_rec = x_rec.double().flatten(1).to(x.device)
    num = (x - x_rec).abs().sum()
    den = (torch.roll(x, shifts=-1, dims=0) - x_rec).abs().sum()  # row i holds x_{(i+1) mod N}
    return float(num / den)
