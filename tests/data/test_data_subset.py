"""Evaluation subsets: seeded, class-stratified samples of the whole split, never its first N images."""

import pytest
import torch

from bigbigan.data import TensorSource
from bigbigan.data.subset import sample_indices, source_labels, subset_source


def test_stratified_quotas_follow_class_frequencies_by_largest_remainder():
    labels = torch.tensor([0] * 6 + [1] * 4)  # quotas for n=5: 3.0 and 2.0
    idx = sample_indices(10, 5, labels=labels, seed=0)
    assert torch.bincount(labels[idx], minlength=2).tolist() == [3, 2]
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)  # n=4: quotas 2.0, 1.2, 0.8 -> 2, 1, 1
    for seed in range(5):
        idx = sample_indices(10, 4, labels=labels, seed=seed)
        assert torch.bincount(labels[idx], minlength=3).tolist() == [2, 1, 1]


def test_sample_is_sorted_distinct_deterministic_and_moves_with_the_seed():
    labels = torch.arange(1000) // 100  # sorted by class, as folder data is
    a = sample_indices(1000, 50, labels=labels, seed=3)
    assert torch.equal(a, sample_indices(1000, 50, labels=labels, seed=3))  # same on every rank / run
    assert torch.equal(a, a.sort().values) and a.unique().numel() == 50
    assert torch.bincount(labels[a], minlength=10).tolist() == [5] * 10  # every class, not the first one
    assert not torch.equal(a, sample_indices(1000, 50, labels=labels, seed=4))
    shuffled = sample_indices(1000, 50, labels=labels, seed=3, sort=False)
    assert torch.equal(shuffled.sort().values, a) and not torch.equal(shuffled, a)


def test_fewer_items_than_classes_are_spread_over_random_classes():
    labels = torch.arange(100) // 10
    picked = {tuple(labels[sample_indices(100, 3, labels=labels, seed=s)].tolist()) for s in range(8)}
    assert all(len(set(p)) == 3 for p in picked)  # three distinct classes each time
    assert len(picked) > 1 and picked != {(0, 1, 2)}  # ties are not broken towards class 0


def test_unlabeled_is_a_plain_seeded_sample_and_n_at_least_size_is_everything():
    idx = sample_indices(20, 5, seed=7)
    assert torch.equal(idx, torch.randperm(20, generator=torch.Generator().manual_seed(7))[:5].sort().values)
    assert torch.equal(sample_indices(20, None), torch.arange(20))
    assert torch.equal(sample_indices(20, 25, labels=torch.zeros(20, dtype=torch.long)), torch.arange(20))
    with pytest.raises(ValueError):
        sample_indices(20, 5, labels=torch.zeros(19, dtype=torch.long))


def test_subset_source_keeps_every_class_of_a_class_sorted_split():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous()
    src = TensorSource(images, torch.arange(40) // 10, name="t", split="train", num_classes=4)
    part = subset_source(src, 8, seed=1)
    assert len(part) == 8 and torch.bincount(part.labels, minlength=4).tolist() == [2, 2, 2, 2]
    assert torch.equal(part.images[:, 0, 0, 0].long(), sample_indices(40, 8, labels=src.labels, seed=1))
    assert subset_source(src, None) is src and subset_source(src, 40) is src
    unlabeled = TensorSource(images, torch.full((40,), -1), name="t", split="train", num_classes=0)
    assert source_labels(unlabeled) is None


def test_folder_and_shard_sources_subset_by_label(tmp_path):
    import numpy as np
    from PIL import Image

    from bigbigan.data import open_source
    from tests.data.datafiles import write_shard

    for k in range(4):  # 4 classes x 5 images, class-sorted on disk
        (tmp_path / "f" / f"c{k}").mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((4, 4, 3), 10 * k + i, np.uint8)).save(tmp_path / "f" / f"c{k}" / f"{i}.png")
    folder = subset_source(open_source("folder", str(tmp_path / "f"), "train"), 8, seed=2)
    assert sorted(int(folder.labels[i]) for i in range(8)) == [0, 0, 1, 1, 2, 2, 3, 3]
    rows = [(f"s{k}-{i}", np.full((4, 4, 3), k, np.uint8), k) for k in range(4) for i in range(5)]
    write_shard(tmp_path / "s.tar", rows)
    shards = subset_source(open_source("shards", str(tmp_path / "s.tar"), "train"), 8, seed=2)
    assert sorted(label for _, label in shards.iter_samples(shuffle=False)) == [0, 0, 1, 1, 2, 2, 3, 3]
