"""Trained (EMA) models from a checkpoint, and encoder features extracted once per checkpoint and split.

Features are cached under ``RUN_DIR/features/`` keyed by the weights' content hash, the data, the split, the
image count and the subset seed, so several
evaluations (linear probe, k-NN, nearest-neighbour pictures) reuse one extraction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import dist as bdist
from ..checkpoint import (
    CheckpointError,
    config_differences,
    find_export,
    load_export_weights,
    load_file,
    read_export,
    resolve_checkpoint,
)
from ..config import Config, from_dict, load_yaml, to_dict
from ..data import eval_batches, open_split
from ..data.errors import DataError
from ..data.subset import subset_source
from ..files import atomic_save
from ..nets import build_models
from ..standing import ema_standing_stats


@dataclass
class Loaded:
    cfg: Config
    G: nn.Module  # EMA generator, eval mode
    E: nn.Module | None  # EMA encoder, eval mode (None for no-e-gan)
    step: int
    path: Path
    run_dir: Path
    digest: str = ""  # content hash of the EMA encoder's (else generator's) saved weights
    standing_stats_batches: int = 0  # batches of the standing-statistics pass applied to G and E (0: none)


def load_models(target: str | Path, which: str = "latest", device: str | torch.device = "cpu",
                standing_stats_batches: int | None = None, data_dir: str | None = None) -> Loaded:
    """The EMA G and E of a run directory, a checkpoint file or an exported model (an exported directory,
    ``ema.safetensors``, or a shipped name such as ``fashion-mnist``), ready for evaluation: with standing
    statistics over ``standing_stats_batches`` batches (default: the configuration's
    ``eval.standing_stats_batches``; 0: the saved BN statistics). Every evaluation loads its models here. Call on
    every rank.

    ``run_dir`` is where evaluation writes (``eval.json``, ``eval/`` pictures, ``features/``): the run directory;
    for an exported directory the directory itself, for a ``.safetensors`` file its folder, for a shipped model
    ``./eval-NAME`` (the installed package is not the user's to write in).
    """
    if (found := find_export(target)) is not None:
        path, shipped = found
        cfg, tensors, meta = read_export(path)
        G, _, E = build_models(cfg)
        load_export_weights(path, tensors, G, E)
        step = int(meta.get("step", 0))
        run_dir = Path(f"eval-{path.name}").resolve() if shipped else (path if path.is_dir() else path.parent)
    else:
        path = resolve_checkpoint(target, which)
        state = load_file(path)
        cfg = from_dict(state["config"], drop_legacy=True)  # older runs evaluate with the EMA weights they saved
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        own = run_dir / "config.yaml"
        if path.parent.name == "checkpoints" and own.is_file():  # a stray checkpoint of another run or variant
            differ = config_differences(to_dict(load_yaml(own, drop_legacy=True)), to_dict(cfg))
            if differ:
                raise CheckpointError(f"{path} does not belong to the run in {run_dir} ({differ})")
        G, _, E = build_models(cfg)
        G.load_state_dict(state["G_ema"]["model"])
        if E is not None:
            E.load_state_dict(state["E_ema"]["model"])
        step = int(state["step"])
    G = G.to(device).eval()
    if E is not None:
        E = E.to(device).eval()
    digest = weights_digest((E if E is not None else G).state_dict())
    if data_dir:  # the data has moved since training: the standing pass and features read it here
        cfg.data.data_dir = data_dir
    try:
        n = ema_standing_stats(cfg, G, E, device=device, num_batches=standing_stats_batches)
    except DataError as exc:
        raise DataError(f"standing statistics of the EMA encoder need the run's training data: {exc} (give "
                        "--data-dir, or --standing-stats-batches 0 to keep the copied BN statistics)") from None
    return Loaded(cfg, G, E, step, path, run_dir, digest, n)


def weights_digest(state: dict[str, Tensor]) -> str:
    """A content hash of a state dict (names, dtypes, shapes, bytes): the feature cache's key, so a new model
    written to an old checkpoint path never reads the old model's features."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)  # 0-dim buffers too
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _gather_ordered(parts: Tensor, n: int, world: int) -> Tensor:
    """Undo the r::world interleaving of eval_batches after an all-gather of equal-sized (padded) parts."""
    if world == 1:
        return parts
    per = parts.shape[0] // world
    full = torch.empty((n, *parts.shape[1:]), dtype=parts.dtype)
    for r in range(world):
        idx = torch.arange(r, n, world)
        full[idx] = parts[r * per : r * per + idx.numel()]
    return full


@torch.no_grad()
def extract_features(E: nn.Module, source, *, resolution: int, channels: int, batch_size: int = 250,
                     device: str | torch.device = "cpu", limit: int | None = None, progress: bool = True,
                     desc: str = "features") -> tuple[Tensor, Tensor]:
    """AvePool features [N, F] and labels [N] of ``source`` (eval transform), sharded across ranks if any.

    ``limit`` takes the first images (speed measurements only); evaluations pass a ``subset_source`` instead.
    """
    info = bdist.info()
    n_total = len(source) if limit is None else min(limit, len(source))
    feats, labels = [], []
    bar = None
    if progress and info.is_main:
        bar = tqdm(total=n_total, unit="img", desc=desc, dynamic_ncols=True, leave=False)
    seen = 0
    for x, y in eval_batches(source, resolution=resolution, channels=channels, batch_size=batch_size,
                             rank=info.rank, world=info.world):
        if limit is not None:
            # indices of this rank's images are rank + world * k; keep those below the limit
            keep = max(0, min(x.shape[0], (n_total - info.rank + info.world - 1) // info.world - seen))
            x, y = x[:keep], y[:keep]
            if keep == 0:
                break
        seen += x.shape[0]
        feats.append(E.features(x.to(device)).float().cpu())
        labels.append(y)
        if bar is not None:
            bar.update(x.shape[0] * info.world)
    if bar is not None:
        bar.close()
    f, y = torch.cat(feats), torch.cat(labels)
    if info.world > 1:  # pad to equal size, gather, restore the dataset order
        per = (n_total + info.world - 1) // info.world
        pad = per - f.shape[0]
        f = torch.cat([f, f.new_zeros(pad, f.shape[1])])
        y = torch.cat([y, y.new_full((pad,), -1)])
        f = _gather_ordered(bdist.all_gather_cat(f.to(device)).cpu(), n_total, info.world)
        y = _gather_ordered(bdist.all_gather_cat(y.to(device)).cpu(), n_total, info.world)
    return f, y


def cached_features(loaded: Loaded, split: str, *, data_dir: str | None = None, limit: int | None = None,
                    subset_seed: int = 0, device: str | torch.device = "cpu",
                    progress: bool = True) -> tuple[Tensor, Tensor]:
    """Features of ``split`` (or of a seeded, class-stratified sample of ``limit`` of its images) for the
    checkpoint in ``loaded``, from the cache when present."""
    cfg = loaded.cfg
    d, m = cfg.data, cfg.model
    tag = f"{limit}-s{subset_seed}" if limit is not None else "all"  # the seed names the sample
    # Everything the features depend on: the weights' content and their BN statistics (standing pass), the
    # images (source, location, split, count, subset seed, held-out size and split seed) and the encoder's
    # input (resolution, channels).
    where = Path(data_dir or d.data_dir).expanduser().resolve() if (data_dir or d.data_dir) else None
    standing = "none"
    if loaded.standing_stats_batches:
        c = cfg.eval
        standing = f"{loaded.standing_stats_batches}x{c.standing_stats_batch_size}s{c.standing_stats_seed}"
    parts = (loaded.digest, standing, d.source, where, split, tag, d.train_val_size, cfg.train.seed,
             m.e_resolution, m.channels)
    key = hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]
    cache = loaded.run_dir / "features" / f"{loaded.path.stem}-{split}-{tag}-{key}.pt"
    if cache.is_file():
        d = torch.load(cache, map_location="cpu", weights_only=True)
        return d["features"], d["labels"]
    source = subset_source(open_split(cfg, split, data_dir), limit, seed=subset_seed)
    f, y = extract_features(loaded.E, source, resolution=cfg.model.e_resolution, channels=cfg.model.channels,
                            device=device, progress=progress, desc=f"features {split}")
    if bdist.info().is_main:
        atomic_save({"features": f, "labels": y}, cache)
    return f, y
