"""The BigBiGAN objective (Sec. 2): pure functions of the discriminator's per-sample scores.

Real pairs (x ~ data, z_hat ~ E(x)) have label y = +1, fake pairs (x_hat ~ G(z), z ~ P_z) y = -1.

    l_EG(x, z, y) = y (s_x + s_z + s_xz)                    L_EG = E_real[l_EG(., +1)] + E_fake[l_EG(., -1)]
    l_D(x, z, y)  = h(y s_x) + h(y s_z) + h(y s_xz)         L_D  = E_real[l_D(., +1)]  + E_fake[l_D(., -1)]

with h(t) = max(0, 1 - t). Footnote 1's alternative hinges once on the sum. All losses are computed in fp32.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .nets import Scores

D_LOSS_MODES = ("hinge_per_term", "hinge_sum", "bigan_log")


def hinge(t: Tensor) -> Tensor:
    """h(t) = max(0, 1 - t)."""
    return F.relu(1.0 - t)


def discriminator_terms(real: Scores, fake: Scores, mode: str = "hinge_per_term") -> dict[str, Tensor]:
    """The terms of L_D, each a scalar mean, keyed ``"{term}/{real|fake}"``: they sum to L_D.

    ``hinge_per_term`` (Sec. 2): one hinge per present score, keys ``x/real`` ... ``xz/fake``; ``hinge_sum``
    (footnote 1's l'_D): one hinge on s_x + s_z + s_xz, keys ``sum/real``, ``sum/fake``; ``bigan_log``
    (BiGAN/ALI): the original minimax log-loss on the summed score as the logit, -log sigmoid(s) on real pairs
    and -log(1 - sigmoid(s)) on fake pairs, keys ``sum/real``, ``sum/fake``. The trainer logs exactly these.
    """
    if mode == "hinge_per_term":
        names = [n for n, s in zip(Scores._fields, real) if s is not None]
        out = {f"{n}/real": hinge(s).mean() for n, s in zip(names, real.present())}
        out.update({f"{n}/fake": hinge(-s).mean() for n, s in zip(names, fake.present())})
        return out
    if mode == "hinge_sum":
        return {"sum/real": hinge(real.total()).mean(), "sum/fake": hinge(-fake.total()).mean()}
    if mode == "bigan_log":
        return {"sum/real": F.softplus(-real.total()).mean(), "sum/fake": F.softplus(fake.total()).mean()}
    raise ValueError(f"unknown discriminator loss mode {mode!r}; choose one of {', '.join(D_LOSS_MODES)}")


def discriminator_loss(real: Scores, fake: Scores, mode: str = "hinge_per_term",
                       terms: dict[str, Tensor] | None = None) -> Tensor:
    """L_D (scalar): the sum of ``discriminator_terms`` (pass ``terms`` when they are already computed).

    Real terms are summed, then fake terms, then the two sums added: the order the loss always used.
    """
    t = discriminator_terms(real, fake, mode) if terms is None else terms
    return sum(v for k, v in t.items() if k.endswith("/real")) + sum(v for k, v in t.items() if k.endswith("/fake"))


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
