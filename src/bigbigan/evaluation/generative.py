"""Generation metrics of an EMA generator: FID and KID against cached training-set Inception features, IS.

Reference features (a seeded, class-stratified sample of the split, ``bigbigan.data.subset``) are computed once
per (dataset, split, resolution, count, subset seed) and cached in
``~/.cache/bigbigan/inception`` (or ``$BIGBIGAN_CACHE``). Real images get the evaluation transform (minor side
resized, centre crop) at G's resolution, as FID preprocessing in App. A; generated images are used as they are.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import dist as bdist
from ..config import Config
from ..data import load_eval_tensors, open_split
from ..data.subset import subset_source
from ..files import atomic_save
from ..nets import sample_prior
from .fid import feature_stats, frechet_distance, inception_score, kid
from .inception import DEFAULT_FEATURE_PRECISION, InceptionFeatures, InceptionLogits


def cache_dir() -> Path:
    return Path(os.environ.get("BIGBIGAN_CACHE", Path.home() / ".cache" / "bigbigan")) / "inception"


@torch.no_grad()
def generate(G: nn.Module, n: int, *, z_dim: int, prior: str, seed: int = 0, batch_size: int = 100,
             device: str | torch.device = "cpu") -> Tensor:
    """``n`` images from G with seeded noise (the same images for the same seed, on any number of ranks)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        z = sample_prior(prior, (min(batch_size, n - i), z_dim), gen, device)
        out.append(G(z).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def inception_features(net: nn.Module, images: Tensor, *, batch_size: int = 50, progress: bool = True,
                       desc: str = "inception") -> Tensor:
    """Run ``net`` over images in [-1, 1] in batches, sharded across ranks and gathered in order."""
    info = bdist.info()
    n = images.shape[0]
    per = (n + info.world - 1) // info.world
    mine = images[info.rank * per : (info.rank + 1) * per]
    bar = None
    if progress and info.is_main:
        bar = tqdm(total=n, unit="img", desc=desc, dynamic_ncols=True, leave=False)
    feats = []
    for i in range(0, mine.shape[0], batch_size):
        feats.append(net(mine[i : i + batch_size]).float().cpu())
        if bar is not None:
            bar.update(min(batch_size, mine.shape[0] - i) * info.world)
    if bar is not None:
        bar.close()
    f = torch.cat(feats) if feats else torch.empty(0, 2048)
    if info.world > 1:
        pad = per - f.shape[0]
        f = torch.cat([f, f.new_zeros(pad, f.shape[1])])
        f = bdist.all_gather_cat(f)[:n]
    return f


def reference_features(cfg: Config, net: nn.Module, n: int, *, split: str = "train",
                       data_dir: str | None = None, progress: bool = True, subset_seed: int = 0) -> Tensor:
    """Inception features of ``n`` images of a split, a seeded class-stratified sample (never the first n: folder
    data is sorted by class); cached per dataset/split/resolution/n/seed and, for other than the reference fp32
    TorchScript, per ``net.precision`` (the two sides of an FID come from one precision)."""
    d, m = cfg.data, cfg.model
    precision = getattr(net, "precision", "fp32")
    tag = "" if precision == "fp32" else f"-{precision}"
    name = f"{d.source}-{split}-{m.resolution}px-{m.channels}ch-{n}-s{subset_seed}{tag}.pt"
    if d.source in ("folder", "shards", "cifar10"):  # user data: key the cache by its location too
        name = f"{hashlib.sha1(str(data_dir or d.data_dir).encode()).hexdigest()[:8]}-{name}"
    path = cache_dir() / name
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)["features"]
    source = open_split(cfg, split, data_dir)
    x, _ = load_eval_tensors(subset_source(source, n, seed=subset_seed), resolution=m.resolution,
                             channels=m.channels)
    f = inception_features(net, x, progress=progress, desc=f"inception {split}")
    if bdist.info().is_main:
        atomic_save({"features": f}, path)
    return f


def generation_metrics(cfg: Config, G: nn.Module, *, n: int, metrics: set[str], inception_weights: str | None,
                       data_dir: str | None = None, device: str | torch.device = "cpu", seed: int = 0,
                       progress: bool = True, subset_seed: int = 0, inception_precision: str | None = None) -> dict:
    """FID / KID against the training split and IS of ``n`` generated images (keys fid, kid, kid_std, is...).

    ``inception_precision``: how the FID/KID Inception runs (``InceptionFeatures``; default
    ``DEFAULT_FEATURE_PRECISION``); recorded as ``inception_precision``."""
    out: dict = {}
    fake = generate(G, n, z_dim=cfg.model.z_dim, prior=cfg.model.prior, seed=seed, device=device)
    if metrics & {"fid", "kid"}:
        net = InceptionFeatures.load(precision=inception_precision or DEFAULT_FEATURE_PRECISION)
        out["inception_precision"] = net.precision
        ref = reference_features(cfg, net, n, data_dir=data_dir, progress=progress, subset_seed=subset_seed)
        gen = inception_features(net, fake, progress=progress, desc="inception samples")
        if "fid" in metrics:
            out["fid"] = frechet_distance(*feature_stats(ref), *feature_stats(gen))
        if "kid" in metrics:
            out["kid"], out["kid_std"] = kid(ref, gen)
        out["fid_samples"] = n
    if "is" in metrics:
        if not inception_weights:
            out["is"] = None
            out["is_note"] = "IS needs --inception-weights (the 1008-class pt_inception-2015-12-05 file)"
        else:
            probs = inception_features(InceptionLogits.load(inception_weights), fake, progress=progress,
                                       desc="inception IS")
            out["is"], out["is_std"] = inception_score(probs)
    return out
