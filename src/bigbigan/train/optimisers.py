"""The two Adam optimisers of BigBiGAN (App. A): one for D, one for the joint E+G update."""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config


def build_optimisers(cfg: Config, G: nn.Module, D: nn.Module, E: nn.Module | None, device: torch.device
                     ) -> tuple[torch.optim.Adam, torch.optim.Adam, dict[str, list[nn.Parameter]]]:
    """(D's optimiser, E+G's optimiser, each phase's parameters for the gradient-norm statistic).

    E is updated in G's step with its own learning rate ``lr_g * e_lr_mult`` (Sec. 3.1, "up E LR"). Fused Adam on
    CUDA, the multi-tensor (foreach) form elsewhere.
    """
    o = cfg.optim
    adam = {"betas": (o.beta1, o.beta2), "eps": o.adam_eps}
    if device.type == "cuda":
        adam["fused"] = True
    else:
        adam["foreach"] = True
    opt_d = torch.optim.Adam(D.parameters(), lr=o.lr_d, **adam)
    groups = [{"params": list(G.parameters()), "lr": o.lr_g}]
    if E is not None:
        groups.append({"params": list(E.parameters()), "lr": o.lr_g * o.e_lr_mult})
    opt_ge = torch.optim.Adam(groups, **adam)
    return opt_d, opt_ge, {"D": list(D.parameters()), "EG": [p for g in groups for p in g["params"]]}
