"""Tar shards in the webdataset layout: ``key.jpg|jpeg|png|webp`` plus an optional ``key.cls`` per sample.

Reading goes through webdataset's tar iterators (streaming, no random access); decoding is ours (PIL for
images, ``int(text)`` for ``.cls``), so nothing is ever unpickled whatever the shards contain.
"""

from __future__ import annotations

import glob
import random
import tarfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import braceexpand
import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from bigbigan.data.base import ImageSource
from bigbigan.data.decode import DECODE_ERRORS, decode_rgb
from bigbigan.data.errors import DataError
from bigbigan.data.folder import EVAL_DIRS
from bigbigan.data.seeding import mix_seed

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")  # sample fields holding the image, first match wins
SampleId = tuple[str, str]  # (shard path, key): identifies a sample across shards


def _split_name(name: str) -> tuple[str | None, str]:
    """(key, lower-case extension) as webdataset groups files: the key stops at the basename's first dot."""
    from webdataset.tariterators import base_plus_ext  # imported late: slow, needed only to read

    key, ext = base_plus_ext(name)
    return key, (ext or "").lower()


def _raw_samples(path: str) -> Iterator[dict]:
    """Undecoded samples of one shard in tar order: dicts of field -> bytes plus ``__key__``."""
    from webdataset.tariterators import group_by_keys, tar_file_iterator  # imported late: slow

    with open(path, "rb") as stream:
        files = ({**f, "__url__": path} for f in tar_file_iterator(stream))
        yield from group_by_keys(files)


def _label(sample: dict) -> int:
    return int(sample["cls"].decode().strip()) if "cls" in sample else -1


def _shuffled(samples: Iterable[dict], size: int, rng: random.Random) -> Iterator[dict]:
    """Approximate shuffle through a buffer of ``size`` samples (the usual webdataset trade-off)."""
    buffer: list[dict] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        k = rng.randrange(size)
        yield buffer[k]
        buffer[k] = sample
    rng.shuffle(buffer)
    yield from buffer


class ShardSource(ImageSource, IterableDataset):
    """A split stored as tar shards, read sequentially; ``iter_samples`` splits it across ranks by shard.

    Random access is not possible, so ``__getitem__`` is unsupported and ``as_tensors`` is None.
    ``len`` and ``num_classes`` need one pass over the tar headers and ``.cls`` files (no image data),
    done lazily once; ``train_val`` / ``train_sub`` splits use it to pick held-out samples by key.
    """

    channels = 3

    def __init__(
        self,
        shards: list[str],
        *,
        split: str,
        keep: frozenset[SampleId] | None = None,  # only these samples (train_val)
        drop: frozenset[SampleId] = frozenset(),  # all but these samples (train_sub)
        shuffle_buffer: int = 1000,  # samples held for the approximate in-shard shuffle of training
    ):
        if not shards:
            raise DataError("shards: empty shard list")
        self.shards, self.split, self.name = list(shards), split, "shards"
        self.keep, self.drop, self.shuffle_buffer = keep, drop, shuffle_buffer
        self._index: list[tuple[SampleId, int]] | None = None
        self.bad_samples = 0

    def _wanted(self, sample_id: SampleId) -> bool:
        return (self.keep is None or sample_id in self.keep) and sample_id not in self.drop

    def index(self) -> list[tuple[SampleId, int]]:
        """((shard, key), label) of every sample with an image, in shard order; reads headers only."""
        if self._index is None:
            found = []
            for path in self.shards:
                with tarfile.open(path, "r:*") as tar:
                    samples: dict[str, dict] = {}
                    for member in tar:
                        key, ext = _split_name(member.name)
                        if key is None or not member.isreg() or key.split("/")[-1].startswith("__"):
                            continue
                        entry = samples.setdefault(key, {})
                        entry[ext] = tar.extractfile(member).read() if ext == "cls" else b""
                    found += [
                        ((path, key), _label(entry)) for key, entry in samples.items()
                        if any(k in entry for k in IMAGE_KEYS) and self._wanted((path, key))
                    ]
            self._index = found
        return self._index

    def __len__(self) -> int:
        return len(self.index())

    @property
    def num_classes(self) -> int:  # type: ignore[override] - computed lazily from the index
        labels = [label for _, label in self.index()]
        return max(labels) + 1 if labels and max(labels) >= 0 else 0

    def __repr__(self) -> str:  # no len(): that would scan every shard
        return f"ShardSource(split={self.split!r}, shards={len(self.shards)}, first={self.shards[0]!r})"

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        raise TypeError("ShardSource is streamed: use iter_samples() or iterate over it")

    def holdout(self, held: Tensor, *, keep: bool) -> ShardSource:
        """The samples at positions ``held`` of ``index()`` (keep=True) or all the others (keep=False)."""
        index = self.index()
        ids = frozenset(index[k][0] for k in held.tolist())
        return ShardSource(
            self.shards, split=self.split, keep=ids if keep else None, drop=frozenset() if keep else ids,
            shuffle_buffer=self.shuffle_buffer,
        )

    def _decode(self, sample: dict) -> tuple[Tensor, int] | None:
        data = next(sample[k] for k in IMAGE_KEYS if k in sample)
        try:
            return decode_rgb(data), _label(sample)
        except DECODE_ERRORS as err:
            if not self.bad_samples:
                warnings.warn(
                    f"skipping undecodable sample {sample['__key__']} in {sample['__url__']} ({err}); "
                    "further ones are skipped silently and counted in ShardSource.bad_samples",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.bad_samples += 1
            return None

    def _stream(self, shards: list[str]) -> Iterator[dict]:
        for path in shards:
            for sample in _raw_samples(path):
                if any(k in sample for k in IMAGE_KEYS) and self._wanted((path, sample["__key__"])):
                    yield sample

    def iter_positions(
        self, rank: int = 0, world: int = 1, seed: int = 0, epoch: int = 0, *,
        worker: int = 0, workers: int = 1, skip: int = 0, shuffle: bool = True,
    ) -> Iterator[tuple[int, Tensor, int]]:
        """Like ``iter_samples`` but yields (samples consumed so far, image, label), for exact resume.

        ``skip`` drops that many (shuffled) samples without decoding them.
        """
        order = list(range(len(self.shards)))
        if shuffle:
            order = torch.randperm(len(order), generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))
            order = order.tolist()
        mine = [self.shards[k] for k in order[rank::world][worker::workers]]
        samples = self._stream(mine)
        if shuffle and self.shuffle_buffer > 1:
            samples = _shuffled(samples, self.shuffle_buffer, random.Random(mix_seed(seed, epoch, rank, worker)))
        for position, sample in enumerate(samples, start=1):
            if position <= skip:
                continue
            decoded = self._decode(sample)
            if decoded is not None:
                yield position, *decoded

    def iter_samples(
        self, rank: int = 0, world: int = 1, seed: int = 0, epoch: int = 0, *,
        worker: int = 0, workers: int = 1, shuffle: bool = True,
    ) -> Iterator[tuple[Tensor, int]]:
        """One epoch of (uint8 [3, H, W], label) for ``rank`` of ``world`` (and DataLoader ``worker``).

        Shards are permuted by (seed, epoch) and dealt out round-robin, so every sample is seen once per
        epoch across ranks; samples are shuffled through a buffer within a rank. With ``shuffle=False``
        the order is the shard order. Ranks see different counts when shard sizes differ.
        """
        for _, image, label in self.iter_positions(
            rank, world, seed, epoch, worker=worker, workers=workers, shuffle=shuffle
        ):
            yield image, label

    def __iter__(self) -> Iterator[tuple[Tensor, int]]:
        """All samples once in shard order (DataLoader workers split the shards between them)."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.iter_samples(worker=worker, workers=workers, shuffle=False)


def find_shards(data_dir: str, split: str) -> list[str]:
    """Shard paths of the official ``split``: a brace/glob pattern or a directory (``train/`` + ``val/``).

    A directory of ``*.tar`` files (no ``train/``) or a pattern is the training split only.
    """
    pattern = any(c in data_dir for c in "{*?[")
    root = Path(data_dir)
    if pattern or root.is_file():
        if split != "train":
            raise DataError(f"shards: {data_dir} names training shards only; use a directory with train/ and val/")
        paths = sorted({p for part in braceexpand.braceexpand(data_dir) for p in glob.glob(part)})
    elif root.is_dir():
        folder = root / "train" if (root / "train").is_dir() else root
        if split != "train":
            folder = next((root / d for d in EVAL_DIRS if (root / d).is_dir() and folder != root), None)
            if folder is None:
                raise DataError(f"shards: {root} has no train/ with val/ or test/ sub-folders, so no test split")
        paths = sorted(str(p) for p in folder.iterdir() if p.name.endswith(SHARD_SUFFIXES))
    else:
        raise DataError(f"shards: {data_dir} is neither a directory nor a shard pattern that exists")
    if not paths:
        raise DataError(f"shards: no {'/'.join(SHARD_SUFFIXES)} files found for {data_dir}")
    return paths


def open_shards(data_dir: str, split: str) -> ShardSource:
    """The official ``split`` ("train" or "test") of a shard data set."""
    return ShardSource(find_shards(data_dir, split), split=split)
