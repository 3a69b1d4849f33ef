"""G: the BigGAN generator in the unconditional Single-Label setup with hierarchical latents (Sec. 3.1, App. A).

z is split into one chunk for the input linear layer and one per residual block; each block's chunk is
concatenated with the shared embedding (with a single label, a learned vector) and drives the block's
conditional BatchNorm gains and biases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (
    ConditionalBatchNorm2d,
    CrossReplicaBatchNorm2d,
    SelfAttention,
    conv,
    init_orthogonal,
    linear,
)

# Channel multipliers (x ch) from the 4x4 input up to the output resolution, as BigGAN's architectures:
# entry i is the width at resolution 4 * 2**i. 32, 16 and 8 follow BigGAN's CIFAR layout (constant width).
G_ARCH: dict[int, tuple[int, ...]] = {
    8: (4, 4),
    16: (4, 4, 4),
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
}


def split_sizes(z_dim: int, n: int) -> list[int]:
    """Chunk sizes of z: as even as possible, the remainder going to the first (input) chunk."""
    base = z_dim // n
    return [base + z_dim - base * n] + [base] * (n - 1)


class GBlock(nn.Module):
    """BN-ReLU-up-conv3x3-BN-ReLU-conv3x3 with a 1x1-conv upsampling shortcut (BigGAN G block)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_ch, cond_dim)
        # No biases: every block output is batch-normalised next, so a bias has no effect on G and its
        # gradient is pure rounding noise (which Adam would amplify into lr-sized random steps).
        self.conv1 = conv(in_ch, out_ch, 3, sn=True, bias=False)
        self.bn2 = ConditionalBatchNorm2d(out_ch, cond_dim)
        self.conv2 = conv(out_ch, out_ch, 3, sn=True, bias=False)
        self.shortcut = conv(in_ch, out_ch, 1, sn=True, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """x_fake = G(z): [B, z_dim] -> [B, channels, resolution, resolution] in [-1, 1]."""

    def __init__(
        self,
        *,
        resolution: int = 128,
        ch: int = 96,
        z_dim: int = 120,
        shared_dim: int = 128,
        attention: int = 64,
        channels: int = 3,
    ) -> None:
        super().__init__()
        widths = [m * ch for m in G_ARCH[resolution]]
        self.resolution = resolution
        self.z_dim = z_dim
        self.chunks = split_sizes(z_dim, len(widths))
        # Single label: the shared class embedding reduces to one learned vector.
        self.shared = nn.Parameter(torch.zeros(shared_dim)) if shared_dim else None
        cond_dim = self.chunks[1] + shared_dim
        self.linear = linear(self.chunks[0], widths[0] * 16, sn=True, bias=False)  # BN follows: no bias
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()
        for i in range(len(widths) - 1):
            self.blocks.append(GBlock(widths[i], widths[i + 1], cond_dim))
            res = 4 * 2 ** (i + 1)
            if res == attention:
                self.attn[str(i)] = SelfAttention(widths[i + 1])
        self.out_bn = CrossReplicaBatchNorm2d(widths[-1], eps=1e-4)
        self.out_conv = conv(widths[-1], channels, 3, sn=True)
        init_orthogonal(self)

    def forward(self, z: Tensor) -> Tensor:
        zs = torch.split(z, self.chunks, dim=1)
        h = self.linear(zs[0]).view(z.shape[0], -1, 4, 4)
        for i, block in enumerate(self.blocks):
            cond = zs[i + 1]
            if self.shared is not None:
                cond = torch.cat([cond, self.shared.to(cond.dtype).expand(z.shape[0], -1)], dim=1)
            h = block(h, cond)
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))
