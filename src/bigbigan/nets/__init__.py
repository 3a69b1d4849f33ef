"""The networks G, D and E, each built from its configuration section by one builder."""

from __future__ import annotations

from .discriminator import Discriminator
from .encoder import Encoder, EncoderOutput
from .generator import Generator


def build_generator(cfg) -> Generator:
    """G from a ``ModelConfig``."""
    g = cfg.generator
    return Generator(
        resolution=cfg.resolution,
        ch=g.ch,
        z_dim=cfg.z_dim,
        shared_dim=g.shared_dim,
        attention=g.attention,
        channels=cfg.channels,
    )


def build_discriminator(cfg, terms: tuple[str, ...]) -> Discriminator:
    """D from a ``ModelConfig`` and the objective's score terms (only the needed submodules are built)."""
    d = cfg.discriminator
    return Discriminator(
        resolution=cfg.resolution,
        ch=d.ch,
        attention=d.attention,
        channels=cfg.channels,
        z_dim=cfg.z_dim,
        mlp_width=d.mlp_width,
        mlp_blocks=d.mlp_blocks,
        terms=terms,
    )


def build_encoder(cfg) -> Encoder | None:
    """E from a ``ModelConfig``; None for the "No E (GAN)" setup."""
    e = cfg.encoder
    if e.arch == "none":
        return None
    return Encoder(
        arch=e.arch,
        blocks=tuple(e.blocks),
        width=e.width,
        base_width=e.base_width,
        stem=e.stem,
        channels=cfg.channels,
        z_dim=cfg.z_dim,
        mlp_width=e.mlp_width,
        mlp_blocks=e.mlp_blocks,
        stochastic=e.stochastic,
        prior=cfg.prior,
    )


__all__ = [
    "Discriminator",
    "Encoder",
    "EncoderOutput",
    "Generator",
    "build_discriminator",
    "build_encoder",
    "build_generator",
]
