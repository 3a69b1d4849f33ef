"""E: ResNet-v2 or RevNet trunk, global average pool ("AvePool" feature), residual MLP head -> z (Sec. 3.1).

The RevNet is the one of Kolesnikov et al. 2019 that the paper names (see ``_revnet``).

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
    """One reversible unit of the Revisiting RevNet: (x1, x2) -> (x2, x1 + F(x2)); ``inverse`` recovers x.

    F is a pre-activation bottleneck on half the channels (C/2 -> C/8 -> C/8 -> C/2, no skip of its own).
    The halves swap on the way out, so two consecutive units form one block of Gomez et al. (2017):
    y1 = x1 + F(x2), y2 = x2 + G(y1).
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        if ch % 2:
            raise ValueError(f"a reversible unit splits its channels in two; got {ch} channels")
        half = ch // 2
        self.f = Bottleneck(half, max(1, half // 4), half)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return torch.cat([x2, x1 + self.f(x2)], dim=1)

    @torch.no_grad()
    def inverse(self, y: Tensor) -> Tensor:
        x2, y1 = y.chunk(2, dim=1)  # the output is (x2, x1 + F(x2))
        return torch.cat([y1 - self.f(x2), x2], dim=1)


class PoolAndDoubleChannels(nn.Module):
    """The RevNet's parameter-free stage transition: 2x2 average pool (stride 2), then C -> 2C by zero channels.

    C/2 zero channels go before and C/2 after the input's, so the next unit's halves are (zeros, first half)
    and (second half, zeros). ``ceil_mode`` keeps an odd border row as a pool over the pixels that exist,
    as TensorFlow's SAME padding does.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
        c = x.shape[1] // 2
        return F.pad(x, (0, 0, 0, 0, c, x.shape[1] - c))


def _stem(kind: str, channels: int, out_ch: int) -> nn.Module:
    """imagenet: 7x7/2 conv + 3x3/2 max-pool (ImageNet sizes); cifar: one 3x3/1 conv (small images)."""
    if kind == "imagenet":
        return nn.Sequential(_conv(channels, out_ch, 7, 2), nn.MaxPool2d(3, 2, 1))
    return _conv(channels, out_ch, 3, 1)


def _resnet_v2(blocks: tuple[int, ...], width: int, stem: str, channels: int) -> tuple[nn.Module, nn.Sequential, int]:
    """ResNet-v2 (He et al. 2016): stages of pre-activation bottlenecks, bottleneck width ``width`` * 2**stage,
    output 4x that; the first block of a stage projects (and strides, from the second stage on)."""
    layers: list[nn.Module] = []
    in_ch = width
    for stage, n in enumerate(blocks):
        mid = width * 2**stage
        out_ch = 4 * mid
        layers.append(ResBlockV2(in_ch, mid, out_ch, 1 if stage == 0 else 2))
        layers += [ResBlockV2(out_ch, mid, out_ch) for _ in range(n - 1)]
        in_ch = out_ch
    return _stem(stem, channels, width), nn.Sequential(*layers), in_ch


def _revnet(blocks: tuple[int, ...], width: int, stem: str, channels: int) -> tuple[nn.Module, nn.Sequential, int]:
    """The RevNet of Kolesnikov, Zhai & Beyer 2019 ("Revisiting Self-Supervised Visual Representation
    Learning"), as its public code (google/revisiting-self-supervised, ``models/resnet.py``, ``revnet``) builds
    it; BigBiGAN Sec. 3.1 uses "the version of RevNet described in" that paper.

    - Stem: one conv straight to 4 * ``width`` channels (256 at x1), no BatchNorm after it (the code calls it
      a random projection that raises the channel count), then the max-pool for the imagenet stem.
    - Stages: ``blocks[s]`` reversible units (``RevBlock``) at a constant C_s = 4 * ``width`` * 2**s channels
      (256, 512, 1024, 2048 at x1): each unit has ONE bottleneck, on half the channels, with a bottleneck
      width of C_s / 8. Between stages, ``PoolAndDoubleChannels`` (no parameters): all resolution and channel
      changes are parameter-free, and every unit is exactly invertible.
    - The trunk ends in BN-ReLU before the average pool (``Encoder.features``): their ``get_net`` passes
      ``last_relu=True`` to it, overriding the function's own default of False.
    - Width multiplier: our x1/x2/x4 are their ``filters_factor`` 4/8/16 (BigBiGAN footnote 3: "RevNet x4
      ... labeled as x16 there"); x4 gives the 8192-d AvePool feature of App. C.

    Choices where that code does not settle ours: the ``cifar`` stem (a 3x3/1 conv to the same 4 * ``width``
    channels, no max-pool) is our small-image option, as for the ResNet; gradients come from ordinary autograd,
    as in that code (no activation-recomputing backward). Parameters: about 5.4 M at x1, 21.5 M at x2 and
    85.8 M at x4 (SimCLR, Chen et al. 2020, Table 6, gives 86 M for RevNet-50 (4x)); not the ResNet's 23.5 M
    at x1: "capacity" in Sec. 3.1 is the widths, not the parameter count.
    """
    stem_ch = 4 * width
    layers: list[nn.Module] = []
    ch = stem_ch
    for stage, n in enumerate(blocks):
        if stage > 0:
            layers.append(PoolAndDoubleChannels())
            ch *= 2
        layers += [RevBlock(ch) for _ in range(n)]
    return _stem(stem, channels, stem_ch), nn.Sequential(*layers), ch


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
        if arch == "revnet":
            stem, trunk, out_ch = _revnet(blocks, base_width * width, stem, channels)
        elif arch == "resnet":
            stem, trunk, out_ch = _resnet_v2(blocks, base_width * width, stem, channels)
        else:
            raise ValueError(f"unknown encoder arch {arch!r}; use resnet or revnet")
        self.stem, self.trunk = stem, trunk
        self.out_bn = _bn(out_ch)
        self.feature_dim = out_ch
        self.head = ResidualMLP(out_ch, mlp_width, mlp_blocks, sn=False)
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
