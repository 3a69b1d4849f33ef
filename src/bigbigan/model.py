"""A trained BigBiGAN as a tool: ``model = bigbigan.load(PATH)``, then ``encode``, ``sample``, ``reconstruct``.

    import bigbigan
    model = bigbigan.load("fashion-mnist")             # a shipped name, a run directory, a checkpoint or an export
    feats = model.encode(images)                       # [N, feature_dim] AvePool features (Sec. 3.2)
    x = model.sample(16, seed=0)                       # [16, C, R, R] in [-1, 1]

Images go through the evaluation pipeline the linear probe and FID see (``bigbigan.data.eval_transform``:
minor side resized to E's resolution with antialiased bilinear, centre crop, [-1, 1]; then
``match_channels``: grey replicated to RGB, RGB to its ITU-R 601 luminance), so features of a user's images are
the features the reported figures were measured on. Every method runs under ``torch.no_grad`` with the
networks in eval mode, in batches, and returns float32 CPU tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from .checkpoint import CheckpointError, find_export, load_export_weights, read_export, shipped_names
from .config import Config
from .data.decode import DECODE_ERRORS, decode_rgb, pil_rgb
from .data.errors import DataError
from .data.transforms import eval_transform, match_channels
from .evaluation.features import load_models
from .evaluation.linear_probe import bn_crelu
from .export import FeatureStats, feature_statistics
from .nets import build_encoder, build_generator, sample_prior

FEATURES = ("avepool", "bn_crelu", "z")


# ---- inputs ---------------------------------------------------------------------------------------------------


def _pil_tensor(image: Any) -> Tensor:
    """uint8 [C, H, W] from a PIL image; the decoding of folder data (``decode_rgb``): RGB, alpha dropped."""
    return pil_rgb(image)


def _drop_alpha(x: Tensor) -> Tensor:
    """[..., C, H, W]: 4 channels (RGBA) -> 3, 2 (grey + alpha) -> 1; alpha is ignored, as decode_rgb does."""
    c = x.shape[-3]
    return x[..., : c - 1, :, :] if c in (2, 4) else x


def _as_tensor(image: Any, what: str) -> Tensor:
    """One input (tensor, numpy array, PIL image or path) as a channels-first tensor [C, H, W] or [N, C, H, W]."""
    if isinstance(image, (str, Path)):
        try:
            return decode_rgb(image)
        except DECODE_ERRORS as exc:
            raise DataError(f"cannot read image {image}: {exc}") from None
    if isinstance(image, Image.Image):
        return _pil_tensor(image)
    if isinstance(image, np.ndarray):
        # numpy images are channels-last ([H, W], [H, W, C], [N, H, W, C]); [N, H, W] is a grey batch.
        x = torch.from_numpy(np.ascontiguousarray(image))
        if x.dim() == 2:
            return x[None]
        if x.dim() == 3:
            return x.permute(2, 0, 1) if x.shape[-1] in (1, 2, 3, 4) else x[:, None]
        if x.dim() == 4:
            return x.permute(0, 3, 1, 2)
        raise DataError(f"{what}: a numpy image must be [H, W], [H, W, C], [N, H, W] or [N, H, W, C], "
                        f"got shape {tuple(image.shape)}")
    if isinstance(image, Tensor):
        # tensors are channels-first ([H, W], [C, H, W], [N, C, H, W]); [N, H, W] (N not 1-4) is a grey batch.
        x = image.detach().cpu()
        if x.dim() == 2:
            return x[None]
        if x.dim() == 3:
            return x if x.shape[0] in (1, 2, 3, 4) else x[:, None]
        if x.dim() == 4:
            return x
        raise DataError(f"{what}: an image tensor must be [H, W], [C, H, W] or [N, C, H, W], got "
                        f"{tuple(x.shape)}")
    raise DataError(f"{what}: unsupported input type {type(image).__name__} (give tensors, numpy arrays, PIL "
                    "images or file paths)")


def _to_model_range(x: Tensor, value_range: tuple[float, float], what: str) -> Tensor:
    """uint8 (or other integer types holding 0..255) stays uint8; floats are mapped from ``value_range`` to
    [-1, 1]."""
    if x.dtype == torch.bool:
        raise DataError(f"{what}: boolean images are not supported")
    if not x.is_floating_point():
        if x.dtype != torch.uint8:
            if x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
                raise DataError(f"{what}: integer images must hold values 0..255, got {int(x.min())}.."
                                f"{int(x.max())}")
            x = x.to(torch.uint8)
        return x
    lo, hi = value_range
    x = x.float()
    return x if (lo, hi) == (-1.0, 1.0) else (x - lo) * (2.0 / (hi - lo)) - 1.0


class _Images:
    """A collection of images of any sizes, yielded in preprocessed batches [b, channels, R, R] in [-1, 1]."""

    def __init__(self, images: Any, value_range: tuple[float, float]) -> None:
        self.value_range = value_range
        if isinstance(images, (list, tuple)):
            if not images:
                raise DataError("no images given")
            self.parts: list[Tensor | str | Path] = []  # file paths are decoded batch by batch, when needed
            for i, im in enumerate(images):  # a list may mix single images and batches
                t = im if isinstance(im, (str, Path)) else _as_tensor(im, f"image {i}")
                self.parts += list(t) if isinstance(t, Tensor) and t.dim() == 4 else [t]
            self.batch = None
        else:
            t = _as_tensor(images, "images")
            self.batch = t if t.dim() == 4 else t[None]
            self.parts = []
        self.n = self.batch.shape[0] if self.batch is not None else len(self.parts)
        if self.n == 0:
            raise DataError("no images given")

    def batches(self, batch_size: int, resolution: int, channels: int) -> Iterator[Tensor]:
        for start in range(0, self.n, batch_size):
            if self.batch is not None:  # one tensor of equal-sized images: transformed as a batch
                chunk = [self.batch[start: start + batch_size]]
            else:
                chunk = [_as_tensor(p, f"image {start + i}")[None] if isinstance(p, (str, Path)) else p[None]
                         for i, p in enumerate(self.parts[start: start + batch_size])]
            out = []
            for i, x in enumerate(chunk):
                what = f"image {start + i}" if self.batch is None else "images"
                x = _drop_alpha(_to_model_range(x, self.value_range, what))
                if x.shape[-3] not in (1, 3):
                    raise DataError(f"{what}: {x.shape[-3]}-channel images are not supported (use 1, 3 or 4)")
                if min(x.shape[-2:]) < 1:
                    raise DataError(f"{what}: empty image of size {tuple(x.shape[-2:])}")
                out.append(match_channels(eval_transform(x, resolution), channels))
            yield torch.cat(out)


# ---- the model ------------------------------------------------------------------------------------------------


class BigBiGAN:
    """The EMA generator G and encoder E of a trained BigBiGAN, with the model's own preprocessing.

    Attributes: ``cfg`` (the run's ``Config``), ``G``, ``E`` (``nn.Module``, eval mode; E is None for the
    "No E (GAN)" variant), ``info`` (where the weights came from), and the sizes ``resolution`` (G's output),
    ``e_resolution`` (E's input), ``channels``, ``z_dim``, ``feature_dim``.
    """

    def __init__(self, cfg: Config, G: nn.Module, E: nn.Module | None, *, stats: FeatureStats | None = None,
                 stats_fn: Callable[[], FeatureStats] | None = None, info: dict | None = None) -> None:
        self.cfg = cfg
        self.G = G.eval().requires_grad_(False)
        self.E = E.eval().requires_grad_(False) if E is not None else None
        self._stats = stats
        self._stats_fn = stats_fn  # computes the statistics on first use (run directories)
        self.info = info or {}

    # sizes
    @property
    def resolution(self) -> int:
        return self.cfg.model.resolution

    @property
    def e_resolution(self) -> int:
        return self.cfg.model.e_resolution

    @property
    def channels(self) -> int:
        return self.cfg.model.channels

    @property
    def z_dim(self) -> int:
        return self.cfg.model.z_dim

    @property
    def feature_dim(self) -> int:
        return self._encoder().feature_dim

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def __repr__(self) -> str:
        m = self.cfg.model
        e = f"E {m.encoder.arch} x{m.encoder.width} at {m.e_resolution}px" if self.E is not None else "no E"
        return (f"BigBiGAN({self.cfg.scale}/{self.cfg.variant}, G {m.resolution}px x {m.channels} ch, {e}, "
                f"z_dim {m.z_dim}, step {self.info.get('step', '?')}, on {self.device})")

    def to(self, device: str | torch.device) -> BigBiGAN:
        """Move G and E to ``device`` (in place); returns the model."""
        self.G.to(device)
        if self.E is not None:
            self.E.to(device)
        return self

    def _encoder(self) -> nn.Module:
        if self.E is None:
            raise CheckpointError(f"this model ({self.cfg.variant}) has no encoder")
        return self.E

    def _batches(self, n: int, batch_size: int, progress: bool, desc: str):
        """A tqdm bar over ``n`` items when there is more than one batch (and ``progress``), else None."""
        if not progress or n <= batch_size:
            return None
        return tqdm(total=n, unit="img", desc=desc, dynamic_ncols=True, leave=False)

    # representation
    @property
    def feature_stats(self) -> FeatureStats | None:
        """Training-feature statistics for BN+CReLU: stored in an export, or computed on first use (run
        directories: a seeded sample of 10K training images), or set by ``fit_feature_statistics``."""
        if self._stats is None and self._stats_fn is not None:
            self._stats = self._stats_fn()
        return self._stats

    def fit_feature_statistics(self, images: Any, **kw: Any) -> FeatureStats:
        """Use the AvePool features of ``images`` (e.g. one's own training set) for BN+CReLU from now on."""
        f = self.encode(images, "avepool", **kw)
        self._stats = FeatureStats(f.mean(0), f.std(0), f"{f.shape[0]} user images")
        return self._stats

    @torch.no_grad()
    def encode(self, images: Any, feature: str = "avepool", *, batch_size: int = 256, progress: bool = True,
               value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
        """Representations of ``images`` (Sec. 3.2), float32 on the CPU.

        ``images``: a uint8 or float tensor [C, H, W] / [N, C, H, W] (channels first), a numpy array
        [H, W] / [H, W, C] / [N, H, W] / [N, H, W, C] (channels last), a PIL image, a file path, or a list of
        any of these, of any sizes and 1, 3 or 4 (alpha ignored) channels; one image gives N = 1. uint8 values are 0..255; floats are
        taken to lie in ``value_range`` (default [-1, 1], what ``sample`` returns; (0, 1) for torchvision's
        ``ToTensor``). Each image is resized (minor side to E's resolution, centre crop) and its channels matched.

        ``feature``: "avepool" [N, feature_dim], E's global-average-pooled trunk output, the paper's main
        feature; "bn_crelu" [N, 2 * feature_dim], [ReLU(h), ReLU(-h)] with h the AvePool feature normalised by
        the training-feature statistics (``feature_stats``), as the BN+CReLU probe of ``bigbigan eval``;
        "z" [N, z_dim], the mean of E's latent distribution (the latent G reconstructs from).
        """
        if feature not in FEATURES:
            raise DataError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
        E = self._encoder().eval()
        stats = None
        if feature == "bn_crelu":
            stats = self.feature_stats
            if stats is None:
                raise CheckpointError("this model has no training-feature statistics for bn_crelu (exported "
                                      "without them); call model.fit_feature_statistics(images) first")
        src = _Images(images, value_range)
        dev = self.device
        out = []
        bar = self._batches(src.n, batch_size, progress, f"encode ({feature})")
        for x in src.batches(batch_size, self.e_resolution, self.channels):
            x = x.to(dev)
            if feature == "z":
                f = E(x).mu
            else:
                f = E.features(x)
            out.append(f.float().cpu())
            if bar is not None:
                bar.update(x.shape[0])
        if bar is not None:
            bar.close()
        feats = torch.cat(out)
        if stats is not None:
            feats = bn_crelu(feats, stats.mean, stats.std)
        return feats

    # generation
    @torch.no_grad()
    def generate(self, z: Tensor, *, batch_size: int = 256, progress: bool = True) -> Tensor:
        """G(z): latents [N, z_dim] -> images [N, channels, resolution, resolution] in [-1, 1] (float32, CPU)."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise DataError(f"latents must be [N, {self.z_dim}], got {tuple(z.shape)}")
        G = self.G.eval()
        out = []
        bar = self._batches(z.shape[0], batch_size, progress, "generate")
        for zc in z.split(batch_size):
            out.append(G(zc.to(self.device).float()).float().cpu())
            if bar is not None:
                bar.update(zc.shape[0])
        if bar is not None:
            bar.close()
        return torch.cat(out) if out else torch.empty(0, self.channels, self.resolution, self.resolution)

    def latents(self, n: int, seed: int = 0) -> Tensor:
        """``n`` latents [n, z_dim] from the prior P_z (N(0, I), or U(-1, 1) for the uniform variant), drawn by
        a CPU generator seeded with ``seed``: the same latents on every device."""
        return sample_prior(self.cfg.model.prior, (n, self.z_dim), torch.Generator().manual_seed(seed), "cpu")

    def sample(self, n: int, seed: int = 0, *, as_uint8: bool = False, batch_size: int = 256,
               progress: bool = True) -> Tensor:
        """``n`` images G(z), z ~ P_z seeded by ``seed`` (same seed, same images): float32 [n, C, R, R] in
        [-1, 1] (the range ``encode`` takes by default), or uint8 0..255 with ``as_uint8``; on the CPU."""
        x = self.generate(self.latents(n, seed), batch_size=batch_size, progress=progress)
        return _uint8(x) if as_uint8 else x

    @torch.no_grad()
    def reconstruct(self, images: Any, *, batch_size: int = 256, progress: bool = True,
                    value_range: tuple[float, float] = (-1.0, 1.0), as_uint8: bool = False) -> Tensor:
        """G(E(x)) with E's mean as the latent (Sec. 3.3): images as ``encode`` takes them -> [N, C, R, R] at G's
        resolution, in [-1, 1] (uint8 with ``as_uint8``), float32 on the CPU."""
        z = self.encode(images, "z", batch_size=batch_size, progress=progress, value_range=value_range)
        x = self.generate(z, batch_size=batch_size, progress=progress)
        return _uint8(x) if as_uint8 else x

    def preprocess(self, images: Any, resolution: int | None = None,
                   value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
        """The model's view of ``images``: [N, channels, R, R] in [-1, 1] at ``resolution`` (default E's)."""
        src = _Images(images, value_range)
        return torch.cat(list(src.batches(256, resolution or self.e_resolution, self.channels)))


def _uint8(x: Tensor) -> Tensor:
    return torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)


# ---- loading --------------------------------------------------------------------------------------------------


def _from_export(path: Path, device: str | torch.device) -> BigBiGAN:
    cfg, tensors, meta = read_export(path)
    G, E = build_generator(cfg.model), build_encoder(cfg.model)
    load_export_weights(path, tensors, G, E)
    stats = None
    if "features.mean" in tensors:
        stats = FeatureStats(tensors["features.mean"], tensors["features.std"],
                             meta.get("feature_statistics") or "stored")
    info = {k: v for k, v in meta.items() if k != "config"}
    info["path"] = str(path)
    return BigBiGAN(cfg, G, E, stats=stats, info=info).to(device)


def _from_checkpoint(path: Path, which: str, device: str | torch.device, data_dir: str | None) -> BigBiGAN:
    loaded = load_models(path, which, "cpu", data_dir=data_dir)

    def stats() -> FeatureStats:
        return feature_statistics(loaded.E, loaded.cfg, data_dir=data_dir, device=model.device)

    info = {"path": str(loaded.path), "step": loaded.step, "checkpoint": loaded.path.name}
    model = BigBiGAN(loaded.cfg, loaded.G, loaded.E, stats_fn=stats if loaded.E is not None else None, info=info)
    return model.to(device)


def load(path: str | Path, *, checkpoint: str = "latest", device: str | torch.device = "cpu",
         data_dir: str | None = None) -> BigBiGAN:
    """A trained BigBiGAN from ``path``:

    - a run directory: the EMA G and E of its ``latest`` checkpoint (or ``checkpoint="best"``, the best by
      train_val accuracy), the weights ``bigbigan eval`` measures;
    - a checkpoint file (``ckpt-*.pt``), or ``ema.safetensors``;
    - an exported directory (``config.json`` + ``model.safetensors``, from ``bigbigan export``);
    - the name of a model shipped with the package (``shipped_names()``), e.g. ``"fashion-mnist"``.
    A local path wins over a shipped name. ``data_dir`` locates the run's training data for the BN+CReLU
    statistics of run directories and checkpoints (computed on first use).
    """
    if checkpoint not in ("latest", "best"):
        raise CheckpointError(f"checkpoint must be 'latest' or 'best', got {checkpoint!r}")
    if (found := find_export(path)) is not None:
        return _from_export(found[0], device)
    p = Path(path)
    if not p.exists():
        names = shipped_names()
        raise CheckpointError(f"{path} is not a file, a directory or the name of a shipped model "
                              f"(shipped: {', '.join(names) if names else 'none in this installation'})")
    if p.is_dir() and not (p / "checkpoints").is_dir():
        raise CheckpointError(f"{p} is neither a run directory (no checkpoints/) nor an exported model (no "
                              "config.json + model.safetensors)")
    return _from_checkpoint(p, checkpoint, device, data_dir)
