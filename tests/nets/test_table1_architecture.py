"""Table 1's architecture rows build what the paper ran: Small G widths and BigGAN's self-attention placement."""

import pytest
import torch

from bigbigan.cli import param_counts
from bigbigan.nets import build_discriminator, build_generator
from bigbigan.nets.layers import SelfAttention
from bigbigan.presets import SCALES, resolve


@pytest.mark.parametrize("scale", list(SCALES))
def test_small_g_rows_are_smaller_than_base_at_every_scale(scale):
    # Table 1: "Small G (32)" / "(64)" are G ch 32 / 64 against the base's 96, at every scale a smaller G.
    g = {v: param_counts(resolve(scale, v))["G"] for v in ("small-g-32", "small-g-64", "base")}
    assert g["small-g-32"] < g["small-g-64"] < g["base"]


def test_small_g_rows_are_the_papers_widths_at_imagenet128():
    assert resolve("imagenet128", "small-g-32").model.generator.ch == 32
    assert resolve("imagenet128", "small-g-64").model.generator.ch == 64
    # BigGAN's shared embedding (128) and z (120) do not depend on ch; Table 1 changes only "G C."
    for v in ("small-g-32", "small-g-64"):
        assert resolve("imagenet128", v).model.generator.shared_dim == 128
        assert resolve("imagenet128", v).model.z_dim == 120


def attention_resolutions(G, D, resolution: int) -> tuple[list[int], list[int]]:
    """Feature-map sizes at which G's and D's self-attention blocks sit, read from the built modules."""
    g = [4 * 2 ** (int(i) + 1) for i in G.attn]  # G block i outputs 4 * 2**(i+1) px
    d, res = [], resolution
    for i, block in enumerate(D.F.blocks):
        res //= 2 if block.downsample else 1
        if str(i) in D.F.attn:
            d.append(res)
    return g, d


# BigGAN (Brock et al. 2019), App. B: Table 4 (128 px) has the non-local block at 64x64 in G and D; Table 5
# (256 px) moves G's to 128x128 and keeps D's at 64x64 ("Memory constraints prevent us from moving the
# non-local block in D"). No BigGAN table exists at 64 px: half the output resolution in both (see presets.py).
@pytest.mark.parametrize(
    "variant, g_at, d_at",
    [("base", [64], [64]), ("high-res-g-256", [128], [64]), ("low-res-g-64", [32], [32])],
)
def test_self_attention_sits_where_biggan_puts_it(variant, g_at, d_at):
    cfg = resolve("imagenet128", variant)
    with torch.device("meta"):  # full width, no weights allocated
        G = build_generator(cfg.model)
        D = build_discriminator(cfg.model, cfg.objective.terms)
    assert attention_resolutions(G, D, cfg.model.resolution) == (g_at, d_at)


@pytest.mark.parametrize("variant", ["base", "high-res-g-256", "low-res-g-64"])
def test_attention_resolutions_match_a_forward_pass(variant):
    # The structural reading above, checked against the shapes a real forward pass feeds each attention block.
    cfg = resolve("tiny", variant)
    G, D = build_generator(cfg.model), build_discriminator(cfg.model, cfg.objective.terms)
    seen = {"G": [], "D": []}
    for name, net in (("G", G), ("D", D)):
        for mod in net.modules():
            if isinstance(mod, SelfAttention):
                mod.register_forward_hook(lambda m, inp, out, name=name: seen[name].append(inp[0].shape[-1]))
    x = G(torch.randn(2, cfg.model.z_dim))
    D(x, torch.randn(2, cfg.model.z_dim))
    assert (seen["G"], seen["D"]) == attention_resolutions(G, D, cfg.model.resolution)
    # tiny puts attention at 8 px at 16 px (as 64 at 128): high-res G moves G's to 16 and keeps D's at 8.
    if variant == "high-res-g-256":
        assert (seen["G"], seen["D"]) == ([16], [8])
