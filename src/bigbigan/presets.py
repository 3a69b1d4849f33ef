"""Scales (model and budget sizes) and variants (the rows of the paper's Table 1, plus Table 3's light
augmentation), each a small delta on the default configuration.

A variant states only what its row changes. Resolutions and widths in variants are relative to the scale
(``Scaled(2)`` doubles the scale's value), so "High Res E (256)" at ``imagenet128`` means E at 256 px and at
``small32`` means E at 64 px, and "Small G (32)" means a G of 32/96 of the scale's width (ch 32 at
``imagenet128``). Besides Table 1's rows there are Table 3's light augmentation and footnote 1's single hinge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import Config, ConfigError, apply_overrides, get_field, set_field, validate


@dataclass(frozen=True)
class Scaled:
    """A variant value meaning "the scale's value times ``factor``" (kept integral)."""

    factor: float
    minimum: int = 0  # widths need at least 1 channel; resolutions and attention (0 = off) need no floor

    def __call__(self, current: Any) -> int:
        return max(self.minimum, round(current * self.factor))


# Fields that differ from Config() (the paper's imagenet128 sizes) at each scale.
SCALES: dict[str, tuple[str, dict[str, Any]]] = {
    "imagenet128": ("the paper's sizes: G/D ch 96 at 128 px, E ResNet-v2-50, H/J 2048 wide, batch 2048", {}),
    "small32": (
        ("Fashion-MNIST-sized, thousands of iterations per hour on 2 CPU cores: 32 px grayscale, G/D ch 16, "
        "E ResNet-v2 (1,1,1,1) base width 16, H/J 256 wide, batch 32"),
        {
            "model.z_dim": 64,
            "model.channels": 1,
            "model.resolution": 32,
            "model.e_resolution": 32,
            "model.generator.ch": 16,
            "model.generator.shared_dim": 32,
            "model.generator.attention": 0,
            "model.discriminator.ch": 16,
            "model.discriminator.attention": 0,
            "model.discriminator.mlp_width": 256,
            "model.encoder.blocks": (1, 1, 1, 1),
            "model.encoder.base_width": 16,
            "model.encoder.stem": "cifar",
            "model.encoder.mlp_width": 512,
            "optim.batch_size": 32,
            "optim.lr_g": 2e-4,
            "optim.lr_d": 2e-4,
            "optim.beta2": 0.999,
            # EMA (BigGAN's scheme: a copy until ema_start, then the fixed decay). A run here is 3,000 iterations
            # (train.steps) to ~4,800 (one CPU-hour). Horizon 1 / (1 - 0.998) = 500 iterations: 1/6 to 1/10 of a
            # run (imagenet128: 10K of 500K); 0.999 (1,000) would still weigh the start copy by 0.999^2000 = 14%
            # at the end of a 3,000-step run. Start at 1,000 (2 horizons, BigGAN's ratio: 20K / 10K), once the
            # fastest early changes are over: the start copy's weight in the average is 0.998^(T - 1000), 5% at
            # T = 2,500, 1.8% at 3,000, 0.06% at 4,800: the fixed-horizon average is reached well within a run.
            "optim.ema_decay": 0.998,
            "optim.ema_start": 1000,
            "data.augment": "flip",
            "data.source": "fashion-mnist",
            "train.steps": 3000,
            "train.log_every": 25,
            "train.image_every": 250,
            "train.ckpt_every": 250,
            "train.eval_every": 500,
            "train.channels_last": True,
        },
    ),
    "tiny": (
        "for tests: 16-32 px, G/D ch 8, E (1,1) base width 4, H/J 32 wide, batch 8 (a step in well under a second)",
        {
            "model.z_dim": 16,
            "model.channels": 1,
            "model.resolution": 16,
            "model.e_resolution": 16,
            "model.generator.ch": 8,
            "model.generator.shared_dim": 8,
            "model.generator.attention": 8,
            "model.discriminator.ch": 8,
            "model.discriminator.attention": 8,
            "model.discriminator.mlp_width": 32,
            "model.discriminator.mlp_blocks": 2,
            "model.encoder.blocks": (1, 1),
            "model.encoder.base_width": 4,
            "model.encoder.stem": "cifar",
            "model.encoder.mlp_width": 32,
            "model.encoder.mlp_blocks": 1,
            "optim.batch_size": 8,
            "optim.ema_decay": 0.9,            # tests: a 4-step run copies for 2 steps, then averages
            "optim.ema_start": 2,
            "data.source": "digits",
            "data.augment": "flip",
            "data.train_val_size": 100,
            "train.steps": 4,
            "train.log_every": 1,
            "train.image_every": 2,
            "train.ckpt_every": 2,
        },
    ),
}

_HIGH_E = {"model.e_resolution": Scaled(2)}  # "Keeping the E input resolution fixed at 256" (Sec. 3.1)

# Table 1's "Small G (32)" / "(64)" rows give G ch 32 / 64 against BigGAN's 96: a fraction of the scale's width,
# so that at every scale they are smaller than Base (ch 32 / 64 exactly at imagenet128). Only ch changes (the
# table's "G C." column): BigGAN's shared embedding (128) and z do not depend on ch.
_BIGGAN_CH = 96

# Self-attention placement, from BigGAN's (Brock et al. 2019) App. B: Table 4 (128 px) puts the non-local block
# at 64x64 in G and D, i.e. at half the output resolution in G and after D's first down block; Table 5 (256 px)
# "move[s] the non-local block in G to 128x128 resolution. Memory constraints prevent us from moving the
# non-local block in D" (it stays at 64x64; google/compare_gan's resnet_biggan.py documents the same 256 px
# setting, G "B5" and D "B2"). So High Res G doubles G's attention resolution and keeps D's. BigGAN has no 64 px
# table: we keep the same rule (half the output resolution in G, after D's first down block: 32x32 in both), as
# there is no memory limit to bend it. (BigGAN-PyTorch's default flag G_attn=D_attn="64" is one setting for every
# resolution; at 256 px it contradicts Table 5, and at 64 px it would put G's block on the 64x64 output and give
# D none, as no D block outputs 64x64 there.)
_LOW_RES_G = {"model.resolution": Scaled(0.5), "model.generator.attention": Scaled(0.5),
              "model.discriminator.attention": Scaled(0.5)}
_HIGH_RES_G = {"model.resolution": Scaled(2), "model.generator.attention": Scaled(2)}

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "base": ("Table 1 Base: ResNet-v2-50 x1 E, stochastic, all three score terms, Gaussian P_z", {}),
    "deterministic-e": ("E predicts z directly (no sampling)", {"model.encoder.stochastic": False}),
    # Table 1's Uniform P_z row has no "Var." tick: E is deterministic, and the saved config says so.
    "uniform-pz": (
        "P_z = U(-1, 1); E predicts z = tanh(z_hat) deterministically",
        {"model.prior": "uniform", "model.encoder.stochastic": False},
    ),
    "x-unary-only": ("drop the z unary term s_z", {"objective.terms": ("x", "xz")}),
    "z-unary-only": ("drop the x unary term s_x", {"objective.terms": ("z", "xz")}),
    "no-unaries": ("only the joint term s_xz: the original BiGAN objective", {"objective.terms": ("xz",)}),
    "small-g-32": ("G width 32/96 of the scale's (ch 32 at imagenet128)",
                   {"model.generator.ch": Scaled(32 / _BIGGAN_CH, minimum=1)}),
    "small-g-64": ("G width 64/96 of the scale's (ch 64 at imagenet128)",
                   {"model.generator.ch": Scaled(64 / _BIGGAN_CH, minimum=1)}),
    "no-e-gan": (
        "no encoder: a GAN with D = F + theta_x only",
        {"model.encoder.arch": "none", "objective.terms": ("x",)},
    ),
    "high-res-e-256": ("E input at 2x the G resolution (256 at imagenet128)", dict(_HIGH_E)),
    "low-res-g-64": (
        "G/D at half resolution (64; attention at 32 in G and D), E at 2x (256)",
        {**_HIGH_E, **_LOW_RES_G},
    ),
    "high-res-g-256": (
        "G/D at 2x resolution (256; G attention at 128, D's kept at 64 as BigGAN), E at 2x (256)",
        {**_HIGH_E, **_HIGH_RES_G},
    ),
    "resnet101": ("E ResNet-v2-101 (blocks 3,4,23,3) at high-res E", {**_HIGH_E, "model.encoder.blocks": (3, 4, 23, 3)}),
    "resnet-x2": ("E ResNet-v2-50 x2 width at high-res E", {**_HIGH_E, "model.encoder.width": 2}),
    "revnet": ("E RevNet-50 at high-res E", {**_HIGH_E, "model.encoder.arch": "revnet"}),
    "revnet-x2": ("E RevNet-50 x2 at high-res E", {**_HIGH_E, "model.encoder.arch": "revnet", "model.encoder.width": 2}),
    "revnet-x4": ("E RevNet-50 x4 at high-res E", {**_HIGH_E, "model.encoder.arch": "revnet", "model.encoder.width": 4}),
    "resnet-e-lr": ("E learning rate x10 (ResNet-50, high-res E)", {**_HIGH_E, "optim.e_lr_mult": 10.0}),
    "revnet-x4-e-lr": (
        "E RevNet-50 x4 with E learning rate x10 (high-res E): the paper's final model",
        {**_HIGH_E, "model.encoder.arch": "revnet", "model.encoder.width": 4, "optim.e_lr_mult": 10.0},
    ),
    "light-aug": ("Table 3: Base with compare_gan's lighter 'distorted' crop", {"data.augment": "distorted"}),
    "high-res-e-256-light-aug": (
        "Table 3: High Res E (256) with the lighter 'distorted' crop",
        {**_HIGH_E, "data.augment": "distorted"},
    ),
    "hinge-sum": (
        "footnote 1: D hinges once on the summed score, h(y (s_x + s_z + s_xz)), not per term",
        {"objective.d_loss": "hinge_sum"},
    ),
}

# Variants that are not rows of Table 1: Table 3's light augmentation and footnote 1's single hinge.
EXTRA = ("light-aug", "high-res-e-256-light-aug", "hinge-sum")
TABLE1 = tuple(v for v in VARIANTS if v not in EXTRA)


def _unknown(kind: str, name: str, choices: dict) -> ConfigError:
    return ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(choices)}")


def apply_delta(cfg: Config, delta: dict[str, Any]) -> Config:
    for path, value in delta.items():
        if isinstance(value, Scaled):
            value = value(get_field(cfg, path))
        set_field(cfg, path, value)
    return cfg


def resolve(scale: str = "small32", variant: str = "base", overrides: list[str] | None = None) -> Config:
    """The configuration of ``variant`` at ``scale`` with ``--set`` overrides applied, validated."""
    if scale not in SCALES:
        raise _unknown("scale", scale, SCALES)
    if variant not in VARIANTS:
        raise _unknown("variant", variant, VARIANTS)
    cfg = Config(scale=scale, variant=variant)
    apply_delta(cfg, SCALES[scale][1])
    apply_delta(cfg, VARIANTS[variant][1])
    apply_overrides(cfg, overrides or [])
    return validate(cfg)
