"""E: ResNet-v2 or RevNet trunk, global average pool ("AvePool" feature), residual MLP head -> z (Sec. 3.1).

Head output: mu and sigma_hat; sigma = softplus(sigma_hat), z = mu + eps * sigma (stochastic, the Base row);
z = linear output (Deterministic E); z = tanh(linear output) (Uniform P_z). No spectral norm in E; its
BatchNorms are cross-replica.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import CrossReplicaBatchNorm2d, ResidualMLP


class EncoderOutput(NamedTuple):
    z: Tensor  # [B, z_dim], the sample fed to D
    mu: Tensor  # [B, z_dim], the mean (or the deterministic prediction)
    sigma: Tensor | None  # [B, z_dim], None for deterministic encoders
    feature: Tensor  # [B, feature_dim], the AvePool feature used for evaluation


def _bn(c: int) -> nn.BatchNorm2d:
    return CrossReplicaBatchNorm2d(c)


def _conv(i: int, o: int, k: int, s: int = 1) -> nn.Conv2d:
    return nn.Conv2d(i, o, k, stride=s, padding=k // 2, bias=False)


class Bottleneck(nn.Module):
    """Pre-activation bottleneck residual function (He et al. 2016, "Identity mappings"), without the skip."""

    def __init__(self, in_ch: int, mid: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1, self.conv1 = _bn(in_ch), _conv(in_ch, mid, 1)
        self.bn2, self.conv2 = _bn(mid), _conv(mid, mid, 3, stride)
        self.bn3, self.conv3 = _bn(mid), _conv(mid, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(F.relu(self.bn1(x)))

    def body(self, pre: Tensor) -> Tensor:
        """The function after the first BN-ReLU (ResNet-v2 projections share that pre-activation)."""
        h = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return self.conv3(F.relu(self.bn3(h)))


class ResBlockV2(nn.Module):
    """x + f(x), with a 1x1 projection of the pre-activated input where the shape changes."""

    def __init__(self, in_ch: int, mid: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.f = Bottleneck(in_ch, mid, out_ch, stride)
        self.proj = _conv(in_ch, out_ch, 1, stride) if (stride != 1 or in_ch != out_ch) else None

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.f.bn1(x))
        skip = x if self.proj is None else self.proj(pre)  # v2: projections see the pre-activated input
        return skip + self.f.body(pre)


class RevBlock(nn.Module):
    """Reversible block (Gomez et al. 2017): y1 = x1 + F(x2), y2 = x2 + G(y1); ``inverse`` recovers x."""

    def __init__(self, ch: int, mid: int) -> None:
        super().__init__()
        half = ch // 2
        self.f = Bottleneck(half, mid, half)
        self.g = Bottleneck(half, mid, half)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)
        y1 = x1 + self.f(x2)
        y2 = x2 + self.g(y1)
        return torch.cat([y1, y2], dim=1)

    @torch.no_grad()
    def inverse(self, y: Tensor) -> Tensor:
        y1, y2 = y.chunk(2, dim=1)
        x2 = y2 - self.g(y1)
        x1 = y1 - self.f(x2)
        return torch.cat([x1, x2], dim=1)


class Encoder(nn.Module):
    """E(x): [B, channels, R, R] -> EncoderOutput."""

    def __init__(
        self,
        *,
        arch: str = "resnet",
        blocks: tuple[int, ...] = (3, 4, 6, 3),
        width: int = 1,
        base_width: int = 64,
        stem: str = "imagenet",
        channels: int = 3,
        z_dim: int = 120,
        mlp_width: int = 4096,
        mlp_blocks: int = 2,
        stochastic: bool = True,
        prior: str = "gaussian",
    ) -> None:
        super().__init__()
        self.stochastic = stochastic and prior == "gaussian"
        self.uniform = prior == "uniform"
        stem_ch = base_width * width
        if stem == "imagenet":
            self.stem = nn.Sequential(_conv(channels, stem_ch, 7, 2), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = _conv(channels, stem_ch, 3, 1)
        layers: list[nn.Module] = []
        in_ch = stem_ch
        for stage, n in enumerate(blocks):
            mid = base_width * width * 2**stage
            out_ch = 4 * mid
            stride = 1 if stage == 0 else 2
            layers.append(ResBlockV2(in_ch, mid, out_ch, stride))  # changes width / resolution
            for _ in range(n - 1):
                if arch == "revnet":
                    # Halves of out_ch with a bottleneck of 3/4 mid: about a ResNet block's parameters.
                    layers.append(RevBlock(out_ch, max(1, 3 * mid // 4)))
                else:
                    layers.append(ResBlockV2(out_ch, mid, out_ch))
            in_ch = out_ch
        self.trunk = nn.Sequential(*layers)
        self.out_bn = _bn(in_ch)
        self.feature_dim = in_ch
        self.head = ResidualMLP(in_ch, mlp_width, mlp_blocks, sn=False)
        self.out = nn.Linear(mlp_width, 2 * z_dim if self.stochastic else z_dim)
        self.z_dim = z_dim

    def features(self, x: Tensor) -> Tensor:
        """The AvePool feature [B, feature_dim] (global average pool of the trunk's last activation)."""
        h = F.relu(self.out_bn(self.trunk(self.stem(x))))
        return h.mean(dim=(2, 3))

    def forward(self, x: Tensor, eps: Tensor | None = None) -> EncoderOutput:
        """``eps`` (optional, [B, z_dim]) is the reparameterisation noise; drawn here when not given."""
        feat = self.features(x)
        out = self.out(self.head(feat)).float()
        if self.stochastic:
            mu, sigma_hat = out.chunk(2, dim=1)
            sigma = F.softplus(sigma_hat)
            if eps is None:
                eps = torch.randn_like(mu)
            return EncoderOutput(mu + eps * sigma, mu, sigma, feat)
        z = torch.tanh(out) if self.uniform else out
        return EncoderOutput(z, z, None, feat)
