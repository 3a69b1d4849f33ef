"""Building blocks shared by G, D and E: spectral norm, cross-replica BN, self-attention, residual MLPs.

Spectral normalisation is our own small implementation (one power iteration per training forward, as in
BigGAN) so that the power iteration always runs in fp32, also under bf16 autocast, and the state dict holds
plain ``weight`` / ``bias`` / ``sn_u`` tensors.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed import _functional_collectives as funcol


def _normalize(v: Tensor, eps: float = 1e-12) -> Tensor:
    return v / (v.norm() + eps)


class SpectralNormMixin:
    """Divides ``self.weight`` by its largest singular value (Miyato et al. 2018), estimated by power iteration."""

    weight: Tensor
    training: bool

    def _init_sn(self, eps: float = 1e-12) -> None:
        out_features = self.weight.shape[0]
        self.sn_eps = eps
        u = _normalize(torch.randn(out_features, device=self.weight.device))
        self.register_buffer("sn_u", u)

    def sn_weight(self) -> Tensor:
        w = self.weight
        with torch.autocast(device_type=w.device.type, enabled=False):
            w_mat = w.float().flatten(1)
            with torch.no_grad():
                v = _normalize(w_mat.t() @ self.sn_u, self.sn_eps)
            # W v serves twice: the power iteration's new u and sigma = u . W v (with the gradient to W), so it
            # is computed once; the values are bitwise those of computing it in each place.
            wv = w_mat @ v
            if self.training:  # one power iteration per training forward
                with torch.no_grad():
                    u = _normalize(wv.detach(), self.sn_eps)
                    self.sn_u.copy_(u)
            else:
                u = self.sn_u
            sigma = torch.dot(u, wv)
        return w / sigma.to(w.dtype)


class SNConv2d(SpectralNormMixin, nn.Conv2d):
    """Conv2d with spectral normalisation."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sn()

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.sn_weight(), self.bias)


class SNLinear(SpectralNormMixin, nn.Linear):
    """Linear layer with spectral normalisation."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sn()

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.sn_weight(), self.bias)


def conv(in_ch: int, out_ch: int, kernel: int, *, sn: bool, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    cls = SNConv2d if sn else nn.Conv2d
    return cls(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=bias)


def linear(in_f: int, out_f: int, *, sn: bool, bias: bool = True) -> nn.Linear:
    return (SNLinear if sn else nn.Linear)(in_f, out_f, bias=bias)


def init_orthogonal(module: nn.Module) -> None:
    """BigGAN's initialisation: orthogonal weights and zero biases for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _world() -> int:
    """The number of replicas whose batches cross-replica BN reduces over (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class CrossReplicaBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose batch statistics cover the global batch across all ranks (App. A: cross-replica BN).

    With one process it is plain BatchNorm. Under torch.distributed it all-reduces per-channel sums with a
    differentiable all-reduce, which works on gloo (CPU) as well as NCCL, unlike ``nn.SyncBatchNorm``.
    Statistics are computed in fp32 also under bf16 autocast.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or _world() == 1:
            return super().forward(x)
        xf = x.float()
        n_local = torch.tensor([x.shape[0] * x.shape[2] * x.shape[3]], dtype=torch.float32, device=x.device)
        stats = torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), n_local])
        # the differentiable functional all-reduce (its backward all-reduces the gradients); PyTorch deprecates
        # torch.distributed.nn.functional.all_reduce in its favour
        stats = funcol.wait_tensor(funcol.all_reduce(stats, "sum", dist.group.WORLD))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            # momentum=None: cumulative average over batches, as nn.BatchNorm2d (the standing-statistics pass)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


class ConditionalBatchNorm2d(nn.Module):
    """BN without affine parameters whose gain and bias are linear functions of a conditioning vector.

    In G the conditioning vector is [z chunk, shared embedding] (BigGAN's hierarchical latents).
    """

    def __init__(self, channels: int, cond_dim: int, *, sn: bool = True) -> None:
        super().__init__()
        self.bn = CrossReplicaBatchNorm2d(channels, affine=False, eps=1e-4)
        self.gain = linear(cond_dim, channels, sn=sn, bias=False)
        self.bias = linear(cond_dim, channels, sn=sn, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gain = 1.0 + self.gain(cond)  # [B, C]
        bias = self.bias(cond)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN / BigGAN non-local block with 2x2 max-pooled keys and values; output gated by gamma (init 0)."""

    def __init__(self, ch: int, *, sn: bool = True) -> None:
        super().__init__()
        self.theta = conv(ch, ch // 8, 1, sn=sn, bias=False)
        self.phi = conv(ch, ch // 8, 1, sn=sn, bias=False)
        self.g = conv(ch, ch // 2, 1, sn=sn, bias=False)
        self.o = conv(ch // 2, ch, 1, sn=sn, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # [B, C/8, HW]
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)  # [B, C/8, HW/4]
        g = F.max_pool2d(self.g(x), 2).flatten(2)  # [B, C/2, HW/4]
        attn = F.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # [B, HW, HW/4]
        o = (g @ attn.transpose(1, 2)).view(b, c // 2, h, w)
        return x + self.gamma * self.o(o)


class ResidualMLP(nn.Module):
    """MLP of ``blocks`` pre-activation residual blocks of two linear layers each (H, J and E's head).

    The first block maps ``in_dim`` to ``width`` with a linear shortcut; the output is ReLU'd so a linear score
    head can follow.
    """

    def __init__(self, in_dim: int, width: int, blocks: int, *, sn: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.shortcut = linear(in_dim, width, sn=sn, bias=False) if in_dim != width else None
        d = in_dim
        for _ in range(blocks):
            self.layers.append(nn.ModuleList([linear(d, width, sn=sn), linear(width, width, sn=sn)]))
            d = width
        self.out_dim = width

    def forward(self, x: Tensor) -> Tensor:
        for i, (l1, l2) in enumerate(self.layers):
            h = l2(F.relu(l1(F.relu(x) if i else x)))
            skip = self.shortcut(x) if (i == 0 and self.shortcut is not None) else x
            x = skip + h
        return F.relu(x)
