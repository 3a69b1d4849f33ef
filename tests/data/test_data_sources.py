"""Sources read the real on-disk formats exactly, split deterministically and fail with clear DataErrors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import encode, write_idx, write_idx_dataset, write_shard
from PIL import Image

from bigbigan.data import DEFAULT_DIRS, SOURCES, DataError, open_source
from bigbigan.data.idx import read_idx


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, gz: bool):
    arrays = write_idx_dataset(tmp_path, gz=gz)
    for split in ("train", "test"):
        source = open_source("fashion-mnist", str(tmp_path), split)
        images, labels = source.as_tensors()
        assert images.shape == (len(arrays[split][0]), 1, 28, 28) and images.dtype == torch.uint8
        assert np.array_equal(images[:, 0].numpy(), arrays[split][0])
        assert np.array_equal(labels.numpy(), arrays[split][1].astype(np.int64))
        image, label = source[3]
        assert image.shape == (1, 28, 28) and label == int(arrays[split][1][3])
        assert source.channels == 1 and source.num_classes == 10


def test_idx_header_dims(tmp_path: Path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert read_idx(write_idx(tmp_path / "x", array)).tolist() == array.tolist()


def test_idx_bad_magic_and_truncation(tmp_path: Path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
    path = write_idx(tmp_path / "short", np.zeros((2, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="header says"):
        read_idx(path)


def test_idx_missing_files(tmp_path: Path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        open_source("mnist", str(tmp_path), "train")


@pytest.mark.skipif(not Path(DEFAULT_DIRS["fashion-mnist"]).is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train = open_source("fashion-mnist", None, "train")
    test = open_source("fashion-mnist", None, "test")
    assert train.as_tensors()[0].shape == (60000, 1, 28, 28)
    assert len(test) == 10000
    assert sorted(train.as_tensors()[1].unique().tolist()) == list(range(10))


# ---------------------------------------------------------------- digits and the held-out splits
def test_digits_split_sizes_and_determinism():
    train, test = open_source("digits", None, "train"), open_source("digits", None, "test")
    assert (len(train), len(test)) == (1438, 359)
    images = train.as_tensors()[0]
    assert images.shape[1:] == (1, 8, 8) and int(images.max()) == 255
    again = open_source("digits", None, "test").as_tensors()
    assert torch.equal(again[0], test.as_tensors()[0]) and torch.equal(again[1], test.as_tensors()[1])
    rows = {tuple(x.flatten().tolist()) for x in images}
    overlap = sum(tuple(x.flatten().tolist()) in rows for x in test.as_tensors()[0])
    assert overlap < 10  # a few digits are pixel-identical duplicates, but the splits are disjoint by index


def _rows(source) -> list[tuple[int, ...]]:
    images, labels = source.as_tensors()
    return [(*x, y) for x, y in zip(images.flatten(1).tolist(), labels.tolist(), strict=True)]


def test_train_val_and_train_sub_partition_train():
    train = open_source("digits", None, "train")
    val = open_source("digits", None, "train_val", train_val_size=300, seed=3)
    sub = open_source("digits", None, "train_sub", train_val_size=300, seed=3)
    assert (len(val), len(sub), val.split, sub.split) == (300, 1138, "train_val", "train_sub")
    assert sorted(_rows(val) + _rows(sub)) == sorted(_rows(train))  # disjoint, and together all of train
    again = open_source("digits", None, "train_val", train_val_size=300, seed=3)
    other = open_source("digits", None, "train_val", train_val_size=300, seed=4)
    assert torch.equal(again.as_tensors()[0], val.as_tensors()[0])
    assert not torch.equal(other.as_tensors()[0], val.as_tensors()[0])


def test_split_errors():
    with pytest.raises(DataError, match="train_val_size"):
        open_source("digits", None, "train_val")  # 10000 >= 1438
    with pytest.raises(DataError, match="choose one of: " + ", ".join(SOURCES)):
        open_source("imagenet", None, "train")
    with pytest.raises(DataError, match="train, train_val, train_sub, test"):
        open_source("digits", None, "validation")
    with pytest.raises(DataError, match="needs a data_dir"):
        open_source("cifar10", None, "train")


# ---------------------------------------------------------------- image folders
def _image(rng: np.random.Generator, h: int = 12, w: int = 10) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_folder_classes_and_corrupt_file(tmp_path: Path):
    rng = np.random.default_rng(0)
    pixels = _image(rng)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
    Image.fromarray(pixels).save(tmp_path / "cat" / "a.png")
    (tmp_path / "cat" / "b.JPG").write_bytes(encode(_image(rng), "JPEG"))
    (tmp_path / "dog" / "c.png").write_bytes(b"not an image")  # corrupt
    d_pixels = _image(rng)
    (tmp_path / "dog" / "d.png").write_bytes(encode(d_pixels, "PNG"))
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    source = open_source("folder", str(tmp_path), "train")
    assert (len(source), source.classes, source.num_classes, source.channels) == (4, ["cat", "dog"], 2, 3)
    image, label = source[0]
    assert label == 0 and image.dtype == torch.uint8 and torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        image, label = source[2]  # c.png is corrupt: d.png comes instead
        source[2]
    assert len(record) == 1 and "c.png" in str(record[0].message)  # warned once, naming the file
    assert source.skipped == 1 and label == 1 and torch.equal(image, torch.from_numpy(d_pixels).permute(2, 0, 1))
    with pytest.raises(DataError, match="no train/ with val/"):
        open_source("folder", str(tmp_path), "test")


def test_folder_train_val_layout_and_unlabeled(tmp_path: Path):
    rng = np.random.default_rng(1)
    for split, classes in (("train", ("a", "b", "c")), ("val", ("b",))):
        for cls in classes:
            (tmp_path / split / cls).mkdir(parents=True)
            Image.fromarray(_image(rng)).save(tmp_path / split / cls / "x.png")
    test = open_source("folder", str(tmp_path), "test")
    assert (len(test), test[0][1], test.num_classes) == (1, 1, 3)  # "b" keeps its training label
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in range(3):
        Image.fromarray(_image(rng)).save(flat / f"{k}.webp")
    source = open_source("folder", str(flat), "train")
    assert (len(source), source[1][1], source.num_classes) == (3, -1, 0)


def test_folder_empty_or_unreadable(tmp_path: Path):
    with pytest.raises(DataError, match=str(tmp_path)):
        open_source("folder", str(tmp_path), "train")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    source = open_source("folder", str(tmp_path), "train")
    with warnings.catch_warnings(), pytest.raises(DataError, match="could be decoded"):
        warnings.simplefilter("ignore")
        source[0]


# ---------------------------------------------------------------- CIFAR-10 binary
def _write_cifar(folder: Path, rng: np.random.Generator, n: int = 4) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    records = {}
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        rows = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        rows[:, 0] = rng.integers(0, 10, n)
        rows.tofile(folder / name)
        records[name] = rows
    return records


def test_cifar10_binary_exact(tmp_path: Path):
    records = _write_cifar(tmp_path / "cifar-10-batches-bin", np.random.default_rng(2))
    for data_dir in (tmp_path, tmp_path / "cifar-10-batches-bin"):
        train = open_source("cifar10", str(data_dir), "train")
        images, labels = train.as_tensors()
        assert images.shape == (20, 3, 32, 32) and train.num_classes == 10
        rows = records["data_batch_2.bin"]
        assert np.array_equal(images[4:8].reshape(4, -1).numpy(), rows[:, 1:])
        assert np.array_equal(labels[4:8].numpy(), rows[:, 0])
        assert np.array_equal(images[5, 1].numpy(), rows[1, 1 + 1024: 1 + 2048].reshape(32, 32))  # green plane
    test = open_source("cifar10", str(tmp_path), "test")
    assert np.array_equal(test.as_tensors()[1].numpy(), records["test_batch.bin"][:, 0])


def test_cifar10_python_version_refused(tmp_path: Path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x04pickle")
    with pytest.raises(DataError, match="binary version"):
        open_source("cifar10", str(tmp_path), "train")


def test_cifar10_truncated(tmp_path: Path):
    _write_cifar(tmp_path, np.random.default_rng(3))
    (tmp_path / "test_batch.bin").write_bytes(b"\x01" * 3000)
    with pytest.raises(DataError, match="3073-byte"):
        open_source("cifar10", str(tmp_path), "test")


# ---------------------------------------------------------------- webdataset shards
def _write_shards(folder: Path, rng: np.random.Generator, per_shard: int = 3, shards: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for s in range(shards):
        samples = []
        for k in range(per_shard):
            key, array, label = f"s{s}_{k:03d}", _image(rng, 9, 11), (s * per_shard + k) % 7
            samples.append((key, array, label))
            expected[key] = (array, label)
        write_shard(folder / f"shard-{s:04d}.tar", samples)
    return expected


def test_shards_iterate_and_labels(tmp_path: Path):
    expected = _write_shards(tmp_path, np.random.default_rng(4))
    source = open_source("shards", str(tmp_path), "train")
    assert (len(source), source.num_classes, source.as_tensors()) == (6, 6, None)
    ordered = list(source.iter_samples(shuffle=False))
    arrays = [a for a, _ in expected.values()]
    assert [label for _, label in ordered] == [label for _, label in expected.values()]
    assert all(torch.equal(img, torch.from_numpy(a).permute(2, 0, 1)) for (img, _), a in zip(ordered, arrays, strict=True))
    rank0 = list(source.iter_samples(0, 2, seed=1, epoch=0))
    rank1 = list(source.iter_samples(1, 2, seed=1, epoch=0))
    assert sorted(y for _, y in rank0 + rank1) == sorted(y for _, y in ordered) and len(rank0) == 3
    pattern = str(tmp_path / "shard-{0000..0001}.tar")
    assert len(list(open_source("shards", pattern, "train").iter_samples())) == 6
    with pytest.raises(DataError, match="no train/ with val/"):
        open_source("shards", str(tmp_path), "test")


def test_shards_train_val_split(tmp_path: Path):
    _write_shards(tmp_path / "train", np.random.default_rng(5), per_shard=4)
    _write_shards(tmp_path / "val", np.random.default_rng(6), per_shard=1)
    assert len(open_source("shards", str(tmp_path), "test")) == 2
    val = open_source("shards", str(tmp_path), "train_val", train_val_size=3, seed=0)
    sub = open_source("shards", str(tmp_path), "train_sub", train_val_size=3, seed=0)
    val_labels = [y for _, y in val.iter_samples(shuffle=False)]
    sub_labels = [y for _, y in sub.iter_samples(shuffle=False)]
    assert len(val_labels) == len(val) == 3 and len(sub_labels) == 5
    assert sorted(val_labels + sub_labels) == sorted(y for _, y in open_source("shards", str(tmp_path), "train"))
