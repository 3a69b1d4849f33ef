"""The trainer's parts: the two Adam optimisers (App. A: one for D, one for the joint E+G update) and the
modules the two phases run forward (DDP-wrapped under torchrun, compiled on request)."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..config import Config


def build_optimisers(cfg: Config, G: nn.Module, D: nn.Module, E: nn.Module | None, device: torch.device
                     ) -> tuple[torch.optim.Adam, torch.optim.Adam, dict[str, list[nn.Parameter]]]:
    """(D's optimiser, E+G's optimiser, each phase's parameters for the gradient-norm statistic).

    E is updated in G's step with its own learning rate ``lr_g * e_lr_mult`` (Sec. 3.1, "up E LR"). Fused Adam on
    CUDA, the multi-tensor (foreach) form elsewhere.
    """
    o = cfg.optim
    adam = {"betas": (o.beta1, o.beta2), "eps": o.adam_eps}
    if device.type == "cuda" or o.fused_adam:  # fused on CPU is opt-in: not bitwise equal to foreach
        adam["fused"] = True
    else:
        adam["foreach"] = True
    opt_d = torch.optim.Adam(D.parameters(), lr=o.lr_d, **adam)
    groups = [{"params": list(G.parameters()), "lr": o.lr_g}]
    if E is not None:
        groups.append({"params": list(E.parameters()), "lr": o.lr_g * o.e_lr_mult})
    opt_ge = torch.optim.Adam(groups, **adam)
    return opt_d, opt_ge, {"D": list(D.parameters()), "EG": [p for g in groups for p in g["params"]]}


class EncoderGenerator(nn.Module):
    """G and E as one module, so that DDP synchronises their gradients in the joint E+G update."""

    def __init__(self, G: nn.Module, E: nn.Module | None) -> None:
        super().__init__()
        self.G = G
        self.E = E

    def forward(self, z_fake: Tensor, x_e: Tensor, eps: Tensor | None):
        x_fake = self.G(z_fake)
        enc = self.E(x_e, eps) if self.E is not None else None
        return x_fake, enc


def no_forward_buffer_sync(ddp_class: type) -> dict[str, bool]:
    """DDP's keyword that turns off the buffer broadcast before every forward: ``forward_sync_buffers`` where the
    installed torch has it (``broadcast_buffers`` is deprecated there), else ``broadcast_buffers`` (torch 2.11, which
    the project supports, knows only that one; it also skips the sync at wrapping, which copies nothing here: the
    buffers are identical on every rank already)."""
    params = inspect.signature(ddp_class.__init__).parameters
    return {"forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False}


def forward_modules(GE: EncoderGenerator, D: nn.Module, world: int, device: torch.device, compile: bool
                    ) -> tuple[nn.Module, nn.Module]:
    """(G+E, D) as the phases call them: each in its own DDP under torchrun (each phase synchronises only its
    own gradients; buffers are not synchronised in forward: cross-replica BN keeps them identical; the one sync at
    wrapping copies rank 0's, identical already: same seed or same checkpoint), then ``torch.compile``."""
    ge_fwd: nn.Module = GE
    d_fwd: nn.Module = D
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        sync_off = no_forward_buffer_sync(DDP)
        ge_fwd = DDP(GE, device_ids=ids, **sync_off)
        d_fwd = DDP(D, device_ids=ids, **sync_off)
    if compile:
        ge_fwd = torch.compile(ge_fwd)
        d_fwd = torch.compile(d_fwd)
    return ge_fwd, d_fwd
