"""Seeded, class-stratified subsets of a split: the one way evaluation takes "n images of a split".

Folder data (ImageNet's layout) and many in-memory data sets are stored sorted by class, so the first N images
of a split cover a handful of classes; every limited evaluation (the periodic train_val probe, FID/KID reference
statistics, reconstructions, ``eval --train-limit``, picture queries) draws its images here instead. The sample
depends only on (split size, labels, n, seed): it is the same on every rank and in every run, so feature and
Inception caches keyed by (n, seed) stay valid.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bigbigan.data.base import ImageSource, TensorSource
from bigbigan.data.folder import FolderSource
from bigbigan.data.shards import ShardSource

SUBSET_SEED = 0  # default seed of evaluation subsets; fixed (not the run's seed) so runs share FID references


def sample_indices(size: int, n: int | None, *, labels: Tensor | None = None, seed: int = SUBSET_SEED,
                   sort: bool = True) -> Tensor:
    """int64 [min(n, size)] distinct indices into a split of ``size`` items, a seeded random sample.

    With ``labels`` (int [size]; -1 marks an unlabeled item, its own stratum) the sample is class-stratified:
    class k gets round(n * count_k / size) items by the largest-remainder rule (ties between equal remainders
    broken in a seeded random class order, so small n does not favour low class ids), drawn uniformly within
    the class. Without labels it is a plain seeded random sample: the first n of ``torch.randperm(size)``.
    ``n`` None or >= size gives every index. ``sort`` returns the indices ascending (storage order, what
    streamed sources need); otherwise they come in a seeded random order (for picture grids).
    """
    if n is None or n >= size:
        return torch.arange(size)
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    gen = torch.Generator().manual_seed(seed)
    if labels is not None and not bool((torch.as_tensor(labels) >= 0).any()):
        labels = None  # nothing labeled: one stratum, the plain sample
    if labels is None:
        chosen = torch.randperm(size, generator=gen)[:n]
    else:
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (size,):
            raise ValueError(f"labels {tuple(labels.shape)} do not match a split of {size} items")
        classes, counts = labels.unique(return_counts=True)  # classes ascending
        base, rem = (counts * n) // size, (counts * n) % size  # quota n * count / size, in exact integers
        # Largest remainder first; a random class order breaks ties (a stable sort keeps it among equals).
        order = torch.randperm(len(classes), generator=gen)
        by_rem = order[torch.sort(-rem[order], stable=True).indices]
        base[by_rem[: n - int(base.sum())]] += 1
        parts = []
        for k, take in zip(classes.tolist(), base.tolist(), strict=True):
            members = (labels == k).nonzero()[:, 0]
            parts.append(members[torch.randperm(len(members), generator=gen)[:take]])
        chosen = torch.cat(parts)
        chosen = chosen[torch.randperm(len(chosen), generator=gen)]  # mix the classes for unsorted callers
    return chosen.sort().values if sort else chosen


def source_labels(source: ImageSource) -> Tensor | None:
    """int64 [len] labels of every item of ``source`` without decoding images; None when unlabeled or unknown."""
    if isinstance(source, TensorSource):
        labels = source.labels
    elif isinstance(source, FolderSource):
        labels = torch.from_numpy(source.labels)
    elif isinstance(source, ShardSource):  # one pass over tar headers and .cls files, cached by the source
        labels = torch.tensor([label for _, label in source.index()], dtype=torch.int64)
    else:
        return None
    return labels if bool((labels >= 0).any()) else None  # all -1: unlabeled


def subset_source(source: ImageSource, n: int | None, *, seed: int = SUBSET_SEED) -> ImageSource:
    """``source`` limited to a seeded, class-stratified sample of ``n`` items (all of it when n is None or large),
    in storage order."""
    if n is None or n >= len(source):
        return source
    idx = sample_indices(len(source), n, labels=source_labels(source), seed=seed)
    if isinstance(source, ShardSource):  # streamed: keep the sampled samples, read in shard order
        return source.holdout(idx, keep=True)
    return source.subset(idx)
