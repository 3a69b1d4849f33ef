"""Open a data set split by name: the one entry point the trainer and the evaluators use."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bigbigan.data.base import ImageSource, TensorSource
from bigbigan.data.cifar import open_cifar10
from bigbigan.data.errors import DataError
from bigbigan.data.folder import open_folder
from bigbigan.data.idx import open_idx
from bigbigan.data.shards import ShardSource, open_shards
from bigbigan.data.subset import sample_indices

SOURCES: tuple[str, ...] = ("fashion-mnist", "mnist", "digits", "folder", "cifar10", "shards")
SPLITS: tuple[str, ...] = ("train", "train_val", "train_sub", "test")
DEFAULT_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed, not the run's seed: the digits "official" test split must never move


def open_digits(split: str) -> TensorSource:
    """scikit-learn's 8x8 digits (1797 images, values 0..16 scaled to 0..255), split 80/20 once and for all.

    The data set has no official test split, so a fixed permutation makes one (359 test, 1438 train).
    """
    from sklearn.datasets import load_digits  # imported late: slow, and only this source needs it

    digits = load_digits()
    images = torch.from_numpy(np.rint(digits.images * (255 / 16)).astype(np.uint8))[:, None]  # [N, 1, 8, 8]
    labels = torch.from_numpy(digits.target.astype(np.int64))
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    n_test = int(len(labels) * DIGITS_TEST_FRACTION)
    chosen = perm[:n_test] if split == "test" else perm[n_test:]
    chosen = chosen.sort().values
    return TensorSource(images[chosen], labels[chosen], name="digits", split=split, num_classes=10)


def _needs_dir(name: str, data_dir: str | None) -> str:
    if data_dir is None:
        raise DataError(f"data source {name!r} needs a data_dir (no default location)")
    return data_dir


_OPENERS: dict[str, Callable[[str | None, str], ImageSource]] = {
    "fashion-mnist": lambda d, s: open_idx("fashion-mnist", d or DEFAULT_DIRS["fashion-mnist"], s),
    "mnist": lambda d, s: open_idx("mnist", d or DEFAULT_DIRS["mnist"], s),
    "digits": lambda d, s: open_digits(s),
    "folder": lambda d, s: open_folder(_needs_dir("folder", d), s),
    "cifar10": lambda d, s: open_cifar10(_needs_dir("cifar10", d), s),
    "shards": lambda d, s: open_shards(_needs_dir("shards", d), s),
}


def open_source(
    name: str, data_dir: str | None, split: str, *, train_val_size: int = 10000, seed: int = 0
) -> ImageSource:
    """One split of data source ``name`` (see SOURCES) read from ``data_dir`` (None: DEFAULT_DIRS).

    Splits: "train" is the whole official training split and "test" the official test/validation split;
    "train_val" holds out ``train_val_size`` training images picked by a permutation seeded with ``seed``
    and "train_sub" is the rest of "train" (the paper's held-out validation protocol, Sec. 4).
    """
    if name not in SOURCES:
        raise DataError(f"unknown data source {name!r}; choose one of: {', '.join(SOURCES)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    base = _OPENERS[name](data_dir, "test" if split == "test" else "train")
    if split in ("train", "test"):
        return base
    n = len(base)
    if not 0 < train_val_size < n:
        raise DataError(f"{name}: train_val_size={train_val_size} must be in 1..{n - 1} (train has {n} images)")
    # A plain seeded random sample of the whole split (never its first images: folder data is sorted by class).
    # Not class-stratified, unlike evaluation subsets: that would move the train_val/train_sub membership (and
    # invalidate the feature caches and best checkpoints) of every existing run; at 10K of ImageNet's 1.28M a
    # random sample already holds about 8 images of each class.
    held = sample_indices(n, train_val_size, seed=seed)
    if isinstance(base, ShardSource):
        source = base.holdout(held, keep=split == "train_val")
    else:
        rest = torch.ones(n, dtype=torch.bool)
        rest[held] = False
        source = base.subset(held if split == "train_val" else rest.nonzero()[:, 0])
    source.split = split
    return source


def open_split(cfg, split: str, data_dir: str | None = None) -> ImageSource:
    """One split of a run's data: ``cfg`` is the run's ``Config`` (``data.source``, ``data.data_dir``,
    ``data.train_val_size`` and ``train.seed``, which seeds the train_val hold-out); ``data_dir`` overrides the
    run's directory. Every part of the package opens a run's data through here."""
    d = cfg.data
    return open_source(d.source, data_dir or d.data_dir, split, train_val_size=d.train_val_size,
                       seed=cfg.train.seed)
