"""The networks G, D and E, each built from its configuration section by one builder, and the prior P_z.

The networks know nothing of training, objectives or the configuration module: a builder reads the fields of
the section it is given.
"""

from __future__ import annotations

from .discriminator import Discriminator, Scores
from .encoder import Encoder, EncoderOutput
from .generator import Generator
from .prior import sample_prior


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


def build_models(cfg) -> tuple[Generator, Discriminator, Encoder | None]:
    """(G, D, E or None) from a run's ``Config`` (its ``model`` section and ``objective.terms``)."""
    m = cfg.model
    return build_generator(m), build_discriminator(m, tuple(cfg.objective.terms)), build_encoder(m)


__all__ = [
    "Discriminator",
    "Encoder",
    "EncoderOutput",
    "Generator",
    "Scores",
    "build_discriminator",
    "build_encoder",
    "build_generator",
    "build_models",
    "sample_prior",
]
