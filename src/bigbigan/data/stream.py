"""Batches for training (``TrainStream``: endless, augmented, resumable) and evaluation (centred, in order).

Training reads sources in one of three ways, chosen from the source:
- in memory (``as_tensors()`` is not None: IDX, digits, CIFAR-10): batches are gathered from the uint8
  tensor and augmented in one ``grid_sample`` call per resolution in this process (``num_workers`` is
  ignored). Bitwise deterministic, exactly resumable, and identical across world sizes;
- indexed (folder): a DataLoader with ``num_workers`` decodes and augments per sample, each sample seeded
  by (seed, epoch, position in the epoch); same epoch plan as in memory, so it is exactly resumable and
  world-size independent too (up to a skipped corrupt file, replaced by the next readable one);
- streamed (shards): each DataLoader worker reads its own shards; resume restarts every worker at the
  (epoch, samples consumed) it had reached, which is exact when world and num_workers are unchanged.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from bigbigan.data.base import ImageSource
from bigbigan.data.errors import DataError
from bigbigan.data.seeding import mix_seed
from bigbigan.data.shards import ShardSource
from bigbigan.data.sources import open_split
from bigbigan.data.transforms import (
    AUGMENTS,
    augment_image,
    crop_batch,
    eval_transform,
    match_channels,
    sample_crops,
    supersampling,
)

STATE_VERSION = 1
_PERMUTATION, _AUGMENTATION, _SAMPLE = 1, 2, 3  # tags that keep the random streams derived from `seed` apart


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The order of the ``n`` training samples in ``epoch``: int64 [n], a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(mix_seed(seed, _PERMUTATION, epoch))
    return torch.randperm(n, generator=generator)


class _BatchPlan:
    """Endless batch sampler: this rank's slice of each global batch, epoch after epoch, from (epoch, step).

    Yields lists of (index, epoch, position in epoch); the last incomplete global batch is dropped.
    """

    def __init__(self, n: int, global_batch: int, rank: int, batch: int, seed: int, epoch: int, step: int):
        self.n, self.global_batch, self.rank, self.batch = n, global_batch, rank, batch
        self.seed, self.epoch, self.step = seed, epoch, step

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        epoch, step = self.epoch, self.step
        while True:
            perm = epoch_permutation(self.n, self.seed, epoch).tolist()
            for t in range(step, self.n // self.global_batch):
                start = t * self.global_batch + self.rank * self.batch
                yield [(perm[p], epoch, p) for p in range(start, start + self.batch)]
            epoch, step = epoch + 1, 0


class _IndexedViews(Dataset):
    """Training views of a map-style source: item (index, epoch, position) -> (x, [x_e,] label)."""

    def __init__(self, source: ImageSource, seed: int, **view: object):
        self.source, self.seed, self.view = source, seed, view

    def __getitem__(self, item: tuple[int, int, int]) -> tuple:
        index, epoch, position = item
        image, label = self.source[index]
        generator = torch.Generator().manual_seed(mix_seed(self.seed, _SAMPLE, epoch, position))
        x, x_e = augment_image(image, generator=generator, **self.view)
        return (x, label) if x_e is x else (x, x_e, label)


class _ShardViews(IterableDataset):
    """Training views of a shard source for one rank; DataLoader worker i plays stream (i + offset) % workers.

    Every item carries meta = (stream, epoch, samples consumed) so the main process knows where each
    stream stands; the offset makes a resumed loader continue the round-robin where it stopped.
    """

    def __init__(self, source: ShardSource, *, rank: int, world: int, seed: int, starts: list[list[int]],
                 offset: int, **view: object):
        self.source, self.rank, self.world, self.seed = source, rank, world, seed
        self.starts, self.offset, self.view = starts, offset, view

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()
        streams = len(self.starts)
        stream = ((info.id if info is not None else 0) + self.offset) % streams
        epoch, skip = self.starts[stream]
        while True:
            empty = True
            for position, image, label in self.source.iter_positions(
                self.rank, self.world, self.seed, epoch, worker=stream, workers=streams, skip=skip
            ):
                empty = False
                generator = torch.Generator().manual_seed(
                    mix_seed(self.seed, _SAMPLE, epoch, self.rank, stream, position)
                )
                x, x_e = augment_image(image, generator=generator, **self.view)
                meta = torch.tensor([stream, epoch, position])
                yield (x, meta, label) if x_e is x else (x, x_e, meta, label)
            if empty and skip == 0:
                raise DataError(f"shards: rank {self.rank} loader stream {stream} found no samples in its shards")
            epoch, skip = epoch + 1, 0


class TrainStream:
    """Endless, resumable iterator of training batches for one rank.

    Each step yields this rank's slice ``[rank * B, (rank + 1) * B)`` of a global batch (B =
    global_batch // world): (x [B, C, R, R], x_e [B, C, Re, Re], y int64 [B]) in [-1, 1], with x_e the
    same tensor as x when Re == R (E then sees exactly G/D's crop). An epoch is a permutation of the
    source drawn from (seed, epoch); the last incomplete global batch of each epoch is dropped. See the
    module docstring for how each kind of source is read and how exact resuming is.
    """

    def __init__(
        self,
        source: ImageSource,
        *,
        global_batch: int,  # images per step summed over ranks
        resolution: int,  # side of x, for G and D
        e_resolution: int,  # side of x_e, for E (same crop box as x)
        augment: str,  # one of AUGMENTS
        channels: int,  # 1 or 3; sources are converted (grey replicated, RGB to luminance)
        seed: int,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 0,  # DataLoader processes for folder / shard sources
    ):
        if augment not in AUGMENTS:
            raise DataError(f"unknown augment {augment!r}; choose one of {', '.join(AUGMENTS)}")
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        if global_batch < 1 or world < 1 or not 0 <= rank < world:
            raise DataError(f"need global_batch >= 1 and 0 <= rank < world, got {global_batch}, {rank}, {world}")
        if global_batch % world:
            raise DataError(f"global batch {global_batch} is not divisible by the world size {world}")
        self.source, self.global_batch, self.batch = source, global_batch, global_batch // world
        self.resolution, self.e_resolution, self.augment, self.channels = resolution, e_resolution, augment, channels
        self.seed, self.rank, self.world, self.num_workers = seed, rank, world, num_workers
        self._tensors = source.as_tensors()
        self._shards = isinstance(source, ShardSource)
        if not self._shards and len(source) < global_batch:
            raise DataError(f"{source.name}/{source.split} has {len(source)} images, fewer than one batch {global_batch}")
        if self._shards and len(source.shards) < world * max(1, num_workers):
            raise DataError(
                f"shards: {len(source.shards)} shards cannot feed {world} ranks x {max(1, num_workers)} workers; "
                "use fewer workers or more shards"
            )
        self._epoch, self._step = 0, 0  # position of the next global batch
        self._augmentation = torch.Generator().manual_seed(mix_seed(seed, _AUGMENTATION))
        self._perm: tuple[int, Tensor] | None = None  # (epoch, permutation) cache
        self._streams = [[0, 0] for _ in range(max(1, num_workers))]  # shards: (epoch, consumed) per stream
        self._next_stream = 0
        self._loader: Iterator | None = None

    def __iter__(self) -> TrainStream:
        return self

    def __next__(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._tensors is not None:
            x, x_e, y = self._next_in_memory()
        elif self._shards:
            x, x_e, y = self._next_streamed()
        else:
            x, x_e, y = self._next_indexed()
        if not self._shards:
            self._step += 1
            if self._step == len(self.source) // self.global_batch:
                self._epoch, self._step = self._epoch + 1, 0
        return x, x_e, y

    def _view(self) -> dict:
        return {"augment": self.augment, "resolution": self.resolution, "e_resolution": self.e_resolution,
                "channels": self.channels}

    def _next_in_memory(self) -> tuple[Tensor, Tensor, Tensor]:
        images, labels = self._tensors  # [N, C, H, W] uint8, [N]
        if self._perm is None or self._perm[0] != self._epoch:
            self._perm = (self._epoch, epoch_permutation(len(labels), self.seed, self._epoch))
        start = self._step * self.global_batch
        chosen = self._perm[1][start: start + self.global_batch]  # the global batch
        # Crops for the whole global batch from one generator, then this rank's slice: ranks agree.
        boxes, flips = sample_crops(self.global_batch, images.shape[2], images.shape[3], self.augment,
                                    self._augmentation)
        mine = slice(self.rank * self.batch, (self.rank + 1) * self.batch)
        index = chosen[mine]
        batch = images[index]
        x = self._crop(batch, boxes, flips, mine, self.resolution)
        x_e = x if self.e_resolution == self.resolution else self._crop(batch, boxes, flips, mine, self.e_resolution)
        return x, x_e, labels[index]

    def _crop(self, batch: Tensor, boxes: Tensor, flips: Tensor, mine: slice, resolution: int) -> Tensor:
        k = supersampling(boxes, resolution)  # from the global batch, so every rank samples alike
        return match_channels(crop_batch(batch, boxes[mine], flips[mine], resolution, k), self.channels)

    def _next_indexed(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._loader is None:
            plan = _BatchPlan(len(self.source), self.global_batch, self.rank, self.batch, self.seed,
                              self._epoch, self._step)
            views = _IndexedViews(self.source, self.seed, **self._view())
            self._loader = iter(DataLoader(views, batch_sampler=plan, num_workers=self.num_workers))
        items = next(self._loader)
        return (items[0], items[0], items[1]) if len(items) == 2 else tuple(items)

    def _next_streamed(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._loader is None:
            views = _ShardViews(self.source, rank=self.rank, world=self.world, seed=self.seed,
                                starts=[list(s) for s in self._streams], offset=self._next_stream, **self._view())
            self._loader = iter(DataLoader(views, batch_size=self.batch, num_workers=self.num_workers))
        items = next(self._loader)
        x, x_e, meta, y = (items[0], items[0], items[1], items[2]) if len(items) == 3 else items
        stream, epoch, consumed = meta[-1].tolist()
        self._streams[stream] = [epoch, consumed]
        self._next_stream = (stream + 1) % len(self._streams)
        self._epoch = max(e for e, _ in self._streams)
        return x, x_e, y

    def close(self) -> None:
        """Stop DataLoader workers (they are restarted on the next batch)."""
        self._loader = None

    def state_dict(self) -> dict:
        """Where the stream stands: ints and the augmentation generator's ByteTensor (weights_only-safe)."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "global_batch": self.global_batch,
            "epoch": self._epoch,
            "step": self._step,
            "augmentation_rng": self._augmentation.get_state(),
            "world": self.world,
            "streams": [list(s) for s in self._streams],
            "next_stream": self._next_stream,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()`` of a stream over the same source, seed and global batch."""
        if state.get("version") != STATE_VERSION:
            raise DataError(f"data stream state version {state.get('version')} is not {STATE_VERSION}")
        for key in ("seed", "global_batch"):
            if state[key] != getattr(self, key):
                raise DataError(f"cannot resume the data stream: {key} was {state[key]}, now {getattr(self, key)}")
        self.close()
        self._epoch, self._step = int(state["epoch"]), int(state["step"])
        self._augmentation.set_state(state["augmentation_rng"])
        streams = [list(map(int, s)) for s in state["streams"]]
        if state["world"] == self.world and len(streams) == len(self._streams):
            self._streams, self._next_stream = streams, int(state["next_stream"])
        else:
            if self._shards:
                warnings.warn(
                    f"shards: world/workers changed ({state['world']}x{len(streams)} -> "
                    f"{self.world}x{len(self._streams)}); restarting epoch {self._epoch}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self._streams = [[self._epoch, 0] for _ in self._streams]
            self._next_stream = 0


class _EvalViews(Dataset):
    """Evaluation views of a map-style source at ``indices``: (x [C, R, R] in [-1, 1], label)."""

    def __init__(self, source: ImageSource, indices: range, resolution: int, channels: int):
        self.source, self.indices, self.resolution, self.channels = source, indices, resolution, channels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[Tensor, int]:
        image, label = self.source[self.indices[j]]
        return match_channels(eval_transform(image, self.resolution), self.channels), label


def _eval_iter(
    source: ImageSource, resolution: int, channels: int, batch_size: int, rank: int, world: int,
    limit: int | None, num_workers: int,
) -> Iterator[tuple[Tensor, Tensor]]:
    tensors = source.as_tensors()
    if tensors is not None:
        images, labels = tensors
        end = len(labels) if limit is None else min(limit, len(labels))
        index = torch.arange(rank, end, world)
        for start in range(0, len(index), batch_size):
            chunk = index[start: start + batch_size]
            yield match_channels(eval_transform(images[chunk], resolution), channels), labels[chunk]
    elif isinstance(source, ShardSource):
        xs, ys = [], []
        for image, label in itertools.islice(source.iter_samples(rank, world, shuffle=False), limit):
            xs.append(match_channels(eval_transform(image, resolution), channels))
            ys.append(label)
            if len(xs) == batch_size:
                yield torch.stack(xs), torch.tensor(ys, dtype=torch.int64)
                xs, ys = [], []
        if xs:
            yield torch.stack(xs), torch.tensor(ys, dtype=torch.int64)
    else:
        end = len(source) if limit is None else min(limit, len(source))
        views = _EvalViews(source, range(rank, end, world), resolution, channels)
        yield from DataLoader(views, batch_size=batch_size, num_workers=num_workers)


def eval_batches(
    source: ImageSource, *, resolution: int, channels: int, batch_size: int, rank: int = 0, world: int = 1,
    num_workers: int = 0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """(x float [b, C, R, R] in [-1, 1], y int64 [b]) batches of ``eval_transform``-ed images, in order.

    With world > 1, rank r gets indices r, r + world, r + 2 * world, ... (together each image once); a
    shard source is split by shards instead (rank r reads shards r::world). ``num_workers`` decodes
    folder sources in DataLoader processes.
    """
    return _eval_iter(source, resolution, channels, batch_size, rank, world, None, num_workers)


def load_eval_tensors(
    source: ImageSource, *, resolution: int, channels: int, limit: int | None = None, batch_size: int = 500,
    num_workers: int = 0,
) -> tuple[Tensor, Tensor]:
    """Everything (or the first ``limit`` images) as (float [N, C, R, R] in [-1, 1], int64 [N]): small sets.

    ``limit`` is for speed checks; an evaluation on part of a split passes ``subset.subset_source(...)`` instead.
    """
    batches = list(_eval_iter(source, resolution, channels, batch_size, 0, 1, limit, num_workers))
    if not batches:
        return torch.empty(0, channels, resolution, resolution), torch.empty(0, dtype=torch.int64)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def build_stream(cfg, *, rank: int = 0, world: int = 1, seed: int | None = None,
                 global_batch: int | None = None, num_workers: int | None = None) -> TrainStream:
    """The training data stream of a run's ``Config`` for one rank (training, and the standing-statistics
    pass); ``seed``, ``global_batch`` and ``num_workers`` default to the run's (``train.seed``,
    ``optim.batch_size``, ``data.num_workers``)."""
    d, m = cfg.data, cfg.model
    source = open_split(cfg, "train")
    return TrainStream(
        source,
        global_batch=cfg.optim.batch_size if global_batch is None else global_batch,
        resolution=m.resolution,
        e_resolution=m.e_resolution if m.encoder.arch != "none" else m.resolution,
        augment=d.augment,
        channels=m.channels,
        seed=cfg.train.seed if seed is None else seed,
        rank=rank,
        world=world,
        num_workers=d.num_workers if num_workers is None else num_workers,
    )
