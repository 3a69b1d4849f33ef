"""D = F (ConvNet on x) + H (MLP on z) + J (MLP on [F(x), H(z)]) and the three linear score heads (Sec. 2).

All of D is spectrally normalised. ``forward`` returns the per-sample scores ``Scores(x, z, xz)``; a term that
the configuration switches off is ``None`` and its submodule is not built.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ResidualMLP, SelfAttention, conv, init_orthogonal, linear


class Scores(NamedTuple):
    """D's per-sample scores, each of shape [B], or None where that term is switched off (the objective's
    input: ``bigbigan.objective`` re-exports this type)."""

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

# Output width multipliers (x ch) and whether each block halves the resolution (BigGAN's D architectures).
D_ARCH: dict[int, tuple[tuple[int, ...], tuple[bool, ...]]] = {
    8: ((4, 4), (True, False)),
    16: ((4, 4, 4), (True, False, False)),
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: ((1, 2, 4, 8, 16, 16), (True, True, True, True, True, False)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True, True, True, True, True, True, False)),
}


class DBlock(nn.Module):
    """Pre-activation ReLU-conv3x3-ReLU-conv3x3-avgpool with a 1x1-conv shortcut (BigGAN D block)."""

    def __init__(self, in_ch: int, out_ch: int, *, downsample: bool, preactivation: bool) -> None:
        super().__init__()
        self.conv1 = conv(in_ch, out_ch, 3, sn=True)
        self.conv2 = conv(out_ch, out_ch, 3, sn=True)
        self.shortcut = conv(in_ch, out_ch, 1, sn=True) if (in_ch != out_ch or downsample) else None
        self.downsample = downsample
        self.preactivation = preactivation

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.preactivation:  # conv then pool, as BigGAN
            if self.shortcut is not None:
                s = self.shortcut(s)
            if self.downsample:
                s = F.avg_pool2d(s, 2)
        else:  # first block: pool then conv, as BigGAN
            if self.downsample:
                s = F.avg_pool2d(s, 2)
            if self.shortcut is not None:
                s = self.shortcut(s)
        return h + s


class ConvF(nn.Module):
    """F: the BigGAN discriminator trunk; x [B, C, R, R] -> feature [B, out_dim] (ReLU + global sum pool)."""

    def __init__(self, *, resolution: int, ch: int, attention: int, channels: int) -> None:
        super().__init__()
        mults, down = D_ARCH[resolution]
        widths = [m * ch for m in mults]
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()
        in_ch, res = channels, resolution
        for i, (w, d) in enumerate(zip(widths, down)):
            self.blocks.append(DBlock(in_ch, w, downsample=d, preactivation=i > 0))
            in_ch, res = w, res // 2 if d else res
            if res == attention and not self.attn:  # once, at the first block of that resolution
                self.attn[str(i)] = SelfAttention(w)
        self.out_dim = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
        return F.relu(h).sum(dim=(2, 3))


class Discriminator(nn.Module):
    """Scores s_x = theta_x^T F(x), s_z = theta_z^T H(z), s_xz = theta_xz^T J(F(x), H(z))."""

    def __init__(
        self,
        *,
        resolution: int = 128,
        ch: int = 96,
        attention: int = 64,
        channels: int = 3,
        z_dim: int = 120,
        mlp_width: int = 2048,
        mlp_blocks: int = 4,
        terms: tuple[str, ...] = ("x", "z", "xz"),
    ) -> None:
        super().__init__()
        self.terms = tuple(terms)
        self.F = ConvF(resolution=resolution, ch=ch, attention=attention, channels=channels)
        need_h = "z" in terms or "xz" in terms
        self.H = ResidualMLP(z_dim, mlp_width, mlp_blocks, sn=True) if need_h else None
        self.J = (
            ResidualMLP(self.F.out_dim + mlp_width, mlp_width, mlp_blocks, sn=True) if "xz" in terms else None
        )
        self.theta_x = linear(self.F.out_dim, 1, sn=True) if "x" in terms else None
        self.theta_z = linear(mlp_width, 1, sn=True) if "z" in terms else None
        self.theta_xz = linear(mlp_width, 1, sn=True) if "xz" in terms else None
        init_orthogonal(self)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Scores:
        fx = self.F(x)  # [B, F_dim]
        hz = self.H(z) if self.H is not None else None  # [B, mlp_width]
        s_x = self.theta_x(fx).squeeze(1) if self.theta_x is not None else None
        s_z = self.theta_z(hz).squeeze(1) if self.theta_z is not None else None
        s_xz = self.theta_xz(self.J(torch.cat([fx, hz], dim=1))).squeeze(1) if self.J is not None else None
        return Scores(s_x, s_z, s_xz)
