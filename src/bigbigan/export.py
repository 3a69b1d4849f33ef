"""Exported models in the Hugging Face layout: a directory with ``config.json`` and ``model.safetensors``.

``model.safetensors`` holds the EMA G and E (parameters and buffers: BN statistics, spectral-norm vectors) under
``G.`` / ``E.`` prefixes, as ``ema.safetensors`` does, plus the training-feature statistics that the BN+CReLU
feature normalises with (``features.mean`` / ``features.std``, Sec. 3.2). ``config.json`` carries the format
name and version, what the model is, the run's full configuration and where the weights came from. Nothing
is pickled: the directory can be pushed to a model hub as it is and read back with ``bigbigan.load``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from . import __version__
from .checkpoint import CONFIG_NAME, FORMAT, FORMAT_VERSION, WEIGHTS_NAME, CheckpointError, export_safetensors
from .config import Config, to_dict
from .data import DataError, open_source
from .evaluation.features import extract_features, load_models
from .files import atomic_write_text

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
STATS_IMAGES = 10_000  # training images whose AvePool features give the BN+CReLU statistics
STATS_SEED = 0  # the seeded random sample of them (SPEC Sec. 4: never the first N of a class-sorted split)
DESCRIPTION = ("BigBiGAN (Donahue & Simonyan, 2019): the EMA generator G and encoder E of one training run; "
               "E gives representations (AvePool, BN+CReLU, z), G maps latents to images.")


@dataclass
class FeatureStats:
    """Per-dimension mean and standard deviation [feature_dim] of E's AvePool feature over training images."""

    mean: Tensor
    std: Tensor
    source: str  # e.g. "fashion-mnist train_sub, 10000 images (seeded sample)"


def ema_tensors(G: nn.Module, E: nn.Module | None) -> dict[str, Tensor]:
    """G's and E's state (parameters and buffers) under ``G.`` / ``E.`` prefixes: the layout of every export."""
    tensors = {f"G.{k}": v for k, v in G.state_dict().items()}
    if E is not None:
        tensors.update({f"E.{k}": v for k, v in E.state_dict().items()})
    return tensors


@torch.no_grad()
def feature_statistics(E: nn.Module, cfg: Config, *, images: int = STATS_IMAGES, seed: int = STATS_SEED,
                       data_dir: str | None = None, device: str | torch.device = "cpu",
                       progress: bool = True) -> FeatureStats:
    """Mean and std of E's AvePool feature over a seeded random sample of the run's training split (train_sub).

    The same statistics ``bigbigan eval`` normalises the BN+CReLU probe with (Sec. 3.2), estimated on at most
    ``images`` images (10K estimate them to well under 1% of their spread).
    """
    d, m = cfg.data, cfg.model
    source = open_source(d.source, data_dir or d.data_dir, "train_sub", train_val_size=d.train_val_size,
                         seed=cfg.train.seed)
    n = len(source)
    limit, how = None, f"{n} images (all)"
    if n > images:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:images].sort().values
        try:
            source = source.subset(idx)
            how = f"{images} images (seeded sample, seed {seed})"
        except DataError:  # streaming sources cannot be indexed: their first images, in stream order
            limit, how = images, f"the first {images} images"
    f, _ = extract_features(E, source, resolution=m.e_resolution, channels=m.channels, device=device,
                            limit=limit, progress=progress, desc="feature statistics")
    return FeatureStats(f.mean(0), f.std(0), f"{d.source} train_sub, {how}")


def write_export(out: str | Path, cfg: Config, G: nn.Module, E: nn.Module | None, *,
                 stats: FeatureStats | None = None, dtype: str = "float32", info: dict | None = None) -> Path:
    """Write ``out/config.json`` and ``out/model.safetensors``; floating tensors are stored as ``dtype``."""
    if dtype not in DTYPES:
        raise CheckpointError(f"unknown storage dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    out = Path(out)
    tensors = ema_tensors(G, E)
    if stats is not None:
        tensors.update({"features.mean": stats.mean, "features.std": stats.std})
    tensors = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_type": "bigbigan",
        "description": DESCRIPTION,
        "bigbigan_version": __version__,
        "dtype": dtype,
        "has_encoder": E is not None,
        "feature_statistics": stats.source if stats is not None else None,
        **(info or {}),
        "config": to_dict(cfg),
    }
    out.mkdir(parents=True, exist_ok=True)
    export_safetensors(out / WEIGHTS_NAME, tensors, to_dict(cfg))
    atomic_write_text(out / CONFIG_NAME, json.dumps(meta, indent=2) + "\n")
    return out


def export_run(target: str | Path, out: str | Path, *, which: str = "latest", dtype: str = "float32",
               stats_images: int = STATS_IMAGES, data_dir: str | None = None, device: str = "cpu",
               standing_stats_batches: int | None = None,
               prepare: Callable[[Config, nn.Module, nn.Module | None], None] | None = None,
               progress: bool = True) -> Path:
    """``bigbigan export``: the EMA G and E of a run directory or checkpoint, as an exported directory.

    The weights come from ``load_models`` (the loader every evaluation uses). ``prepare(cfg, G, E)``, when
    given, runs on them before anything is written (e.g. re-estimating standing BN statistics); the feature
    statistics are computed afterwards, so they describe the exported E. ``stats_images=0`` skips them.
    """
    try:  # standing statistics (the run's eval.* settings, or standing_stats_batches) need the training data
        loaded = load_models(target, which, device, standing_stats_batches, data_dir=data_dir)
    except DataError as exc:
        raise DataError(f"{exc}; to export without the training data, also give --stats-images 0") from None
    if prepare is not None:
        prepare(loaded.cfg, loaded.G, loaded.E)
    stats = None
    if loaded.E is not None and stats_images > 0:
        try:
            stats = feature_statistics(loaded.E, loaded.cfg, images=stats_images, data_dir=data_dir,
                                       device=device, progress=progress)
        except DataError as exc:
            raise DataError(f"the BN+CReLU feature statistics need the run's training data: {exc} (give "
                            "--data-dir, or --stats-images 0 to export without them)") from None
    info = {"step": loaded.step, "checkpoint": loaded.path.name}
    return write_export(out, loaded.cfg, loaded.G.float(), loaded.E, stats=stats, dtype=dtype, info=info)
