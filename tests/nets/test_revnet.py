"""The RevNet of Kolesnikov et al. 2019 (BigBiGAN Sec. 3.1): its units, stage transitions, layout and size."""

import pytest
import torch
from torch import nn

from bigbigan.cli import param_counts
from bigbigan.nets import build_encoder
from bigbigan.nets.encoder import Encoder, PoolAndDoubleChannels, RevBlock
from bigbigan.presets import resolve


@pytest.mark.parametrize("train", [False, True])
def test_revnet_unit_inverts_its_output(train):
    torch.manual_seed(0)
    block = RevBlock(16).double().train(train)
    x = torch.randn(3, 16, 8, 8, dtype=torch.float64)
    y = block(x)
    block.eval()  # the inverse recomputes F with the same (running) statistics in eval mode
    y = block(x)
    assert (block.inverse(y) - x).abs().max() < 1e-12
    blockf = RevBlock(16).eval()
    xf = torch.randn(3, 16, 8, 8)
    assert (blockf.inverse(blockf(xf)) - xf).abs().max() < 1e-5


def test_revnet_unit_is_one_bottleneck_coupling_with_swapped_halves():
    torch.manual_seed(0)
    block = RevBlock(32).eval()
    # One pre-activation bottleneck on half the channels, bottleneck width C/8 (Revisiting's revnet unit).
    assert [tuple(c.weight.shape) for c in block.modules() if isinstance(c, nn.Conv2d)] == [
        (4, 16, 1, 1), (4, 4, 3, 3), (16, 4, 1, 1)]
    x = torch.randn(2, 32, 5, 5)
    y = block(x)
    x1, x2 = x[:, :16], x[:, 16:]
    assert torch.equal(y[:, :16], x2)  # the halves swap: the untouched half comes first
    assert torch.allclose(y[:, 16:], x1 + block.f(x2))


def test_stage_transition_pools_and_pads_channels_with_zeros_by_hand():
    x = torch.arange(18, dtype=torch.float32).reshape(1, 2, 3, 3)
    y = PoolAndDoubleChannels()(x)
    # 2x2/2 average pool; the odd border averages only the pixels that exist (TensorFlow's SAME).
    pooled0 = torch.tensor([[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8.0]])
    expected = torch.stack([torch.zeros(2, 2), pooled0, pooled0 + 9, torch.zeros(2, 2)])[None]
    assert torch.equal(y, expected)
    assert not list(PoolAndDoubleChannels().parameters())


@pytest.mark.parametrize(("variant", "stem_ch", "feature_dim"), [("revnet", 256, 2048), ("revnet-x4", 1024, 8192)])
def test_revnet_layout_matches_the_revisiting_code(variant, stem_ch, feature_dim):
    with torch.device("meta"):
        E = build_encoder(resolve("imagenet128", variant).model)
    stem_conv = E.stem[0]
    assert isinstance(stem_conv, nn.Conv2d) and stem_conv.kernel_size == (7, 7) and stem_conv.stride == (2, 2)
    assert stem_conv.out_channels == stem_ch  # straight to 4x the base width, no BN in the stem
    assert not any(isinstance(m, nn.BatchNorm2d) for m in E.stem.modules())
    kinds = ["T" if isinstance(m, PoolAndDoubleChannels) else "U" for m in E.trunk]
    assert all(isinstance(m, (RevBlock, PoolAndDoubleChannels)) for m in E.trunk)
    assert "".join(kinds) == "UUU" + "T" + "UUUU" + "T" + "UUUUUU" + "T" + "UUU"  # RevNet-50: (3, 4, 6, 3)
    assert E.feature_dim == feature_dim  # App. C: RevNet x4's AvePool feature is 8192-d


def _revnet50_trunk_params(width: int, channels: int = 3) -> int:
    """Hand count: 7x7 stem conv to C0 = 256 * width, units of one bottleneck C/2 -> C/8 -> C/8 -> C/2 with
    three BNs (C/2, C/8, C/8), final BN."""
    c0 = 256 * width
    total = 7 * 7 * channels * c0
    for stage, n in enumerate((3, 4, 6, 3)):
        c = c0 * 2**stage
        h, m = c // 2, c // 8
        total += n * (h * m + 9 * m * m + m * h + 2 * (h + m + m))
    return total + 2 * c


@pytest.mark.parametrize(("variant", "width"), [("revnet", 1), ("revnet-x2", 2), ("revnet-x4", 4)])
def test_revnet50_parameter_counts(variant, width):
    trunk = param_counts(resolve("imagenet128", variant))["E.trunk"]  # built on the meta device
    assert trunk == _revnet50_trunk_params(width)
    if width == 4:
        # Published: 86 M for RevNet-50 (4x), both Rotation (Kolesnikov et al. 2019) and BigBiGAN, in
        # SimCLR (Chen et al. 2020, arXiv:2002.05709) Table 6, "Param (M)" column (trunk without classifier:
        # the same table gives ResNet-50 24 M). The 86 M rounds to the nearest million.
        assert abs(trunk - 86e6) <= 0.5e6
    else:
        # No published figure found for x1 / x2; parameters grow with width squared (bar the small stem).
        x4 = _revnet50_trunk_params(4)
        assert abs(trunk * (4 // width) ** 2 - x4) / x4 < 0.01


@pytest.mark.parametrize("resolution", [16, 20])
def test_revnet_cifar_stem_at_small_scale(resolution):
    torch.manual_seed(0)
    E = Encoder(arch="revnet", blocks=(1, 1, 1), base_width=4, stem="cifar", channels=1, z_dim=8, mlp_width=16,
                mlp_blocks=1)
    assert E.stem.kernel_size == (3, 3) and E.stem.stride == (1, 1) and E.stem.out_channels == 16
    out = E(torch.randn(4, 1, resolution, resolution))
    assert out.feature.shape == (4, 64) and out.z.shape == (4, 8)
    out.z.sum().backward()
    assert all(p.grad is not None for p in E.parameters())
