"""The BigBiGAN objective (Sec. 2): pure functions of the discriminator's per-sample scores.

Real pairs (x ~ data, z_hat ~ E(x)) have label y = +1, fake pairs (x_hat ~ G(z), z ~ P_z) y = -1.

    l_EG(x, z, y) = y (s_x + s_z + s_xz)                    L_EG = E_real[l_EG(., +1)] + E_fake[l_EG(., -1)]
    l_D(x, z, y)  = h(y s_x) + h(y s_z) + h(y s_xz)         L_D  = E_real[l_D(., +1)]  + E_fake[l_D(., -1)]

with h(t) = max(0, 1 - t). Footnote 1's alternative hinges once on the sum. All losses are computed in fp32.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

D_LOSS_MODES = ("hinge_per_term", "hinge_sum", "bigan_log")


class Scores(NamedTuple):
    """Per-sample scores, each of shape [B], or None where that term is switched off."""

    x: Tensor | None
    z: Tensor | None
    xz: Tensor | None

    def present(self) -> list[Tensor]:
        return [s.float() for s in self if s is not None]

    def total(self) -> Tensor:
        """s_x + s_z + s_xz over the terms present, shape [B]."""
        terms = self.present()
        if not terms:
            raise ValueError("Scores has no terms: at least one of x, z, xz must be present")
        return torch.stack(terms).sum(0)


def hinge(t: Tensor) -> Tensor:
    """h(t) = max(0, 1 - t)."""
    return F.relu(1.0 - t)


def discriminator_loss(real: Scores, fake: Scores, mode: str = "hinge_per_term") -> Tensor:
    """L_D (scalar). ``hinge_per_term``: Sec. 2; ``hinge_sum``: footnote 1's l'_D; ``bigan_log``: BiGAN/ALI.

    ``bigan_log`` is the original minimax log-loss applied to the summed score as the logit:
    -log sigmoid(s) on real pairs and -log(1 - sigmoid(s)) on fake pairs.
    """
    if mode == "hinge_per_term":
        return sum(hinge(s).mean() for s in real.present()) + sum(hinge(-s).mean() for s in fake.present())
    if mode == "hinge_sum":
        return hinge(real.total()).mean() + hinge(-fake.total()).mean()
    if mode == "bigan_log":
        return F.softplus(-real.total()).mean() + F.softplus(fake.total()).mean()
    raise ValueError(f"unknown discriminator loss mode {mode!r}; choose one of {', '.join(D_LOSS_MODES)}")


def encoder_generator_loss(real: Scores, fake: Scores, mode: str = "hinge_per_term") -> Tensor:
    """L_EG (scalar) of Sec. 2: mean(s_x + s_z + s_xz) over real pairs minus the same over fake pairs.

    With ``mode="bigan_log"`` the non-saturating form of the log-loss is used instead (labels swapped).
    """
    if mode == "bigan_log":
        return F.softplus(real.total()).mean() + F.softplus(-fake.total()).mean()
    return real.total().mean() - fake.total().mean()


def d_accuracy(real: Scores, fake: Scores) -> dict[str, Tensor]:
    """Fraction of real pairs scored > 0 and fake pairs scored < 0, per term (a training diagnostic)."""
    out = {}
    for name, r, f in zip(Scores._fields, real, fake):
        if r is not None:
            out[name] = 0.5 * ((r > 0).float().mean() + (f < 0).float().mean())
    return out
