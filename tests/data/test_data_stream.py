"""TrainStream: epochs, determinism, exact resume, rank slicing; evaluation batches in order."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import write_shard
from PIL import Image

from bigbigan.data import DataError, TrainStream, eval_batches, eval_transform, load_eval_tensors, open_source
from bigbigan.data.base import TensorSource


def _memory_source(n: int = 42, size: int = 12, channels: int = 1) -> TensorSource:
    images = torch.randint(0, 256, (n, channels, size, size), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    return TensorSource(images, torch.arange(n), name="test", split="train", num_classes=n)


def _stream(source, **overrides) -> TrainStream:
    kwargs = {"global_batch": 8, "resolution": 16, "e_resolution": 8, "augment": "resnet", "channels": 1,
              "seed": 0}
    return TrainStream(source, **{**kwargs, **overrides})


def _take(stream: TrainStream, k: int) -> list[tuple[torch.Tensor, ...]]:
    return list(itertools.islice(stream, k))


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b, strict=True):
        for ta, tb in zip(batch_a, batch_b, strict=True):
            assert torch.equal(ta, tb)


def _round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_batches_shapes_and_epochs():
    stream = _stream(_memory_source(), channels=3)
    x, x_e, y = next(stream)
    assert x.shape == (8, 3, 16, 16) and x_e.shape == (8, 3, 8, 8) and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1
    epoch = [y] + [b[2] for b in _take(stream, 4)]  # 42 // 8 = 5 steps, the last 2 samples dropped
    labels = torch.cat(epoch)
    assert labels.unique().numel() == 40
    next_epoch = torch.cat([b[2] for b in _take(stream, 5)])
    assert next_epoch.unique().numel() == 40 and not torch.equal(next_epoch, labels)
    same = _stream(_memory_source(), e_resolution=16)
    x, x_e, _ = next(same)
    assert x_e is x


def test_determinism_and_seed():
    source = _memory_source()
    _assert_same(_take(_stream(source), 3), _take(_stream(source), 3))
    other = _take(_stream(source, seed=1), 1)[0]
    assert not torch.equal(other[2], _take(_stream(source), 1)[0][2])


@pytest.mark.parametrize("augment", ["resnet", "distorted", "flip", "none"])
def test_exact_resume(augment: str):
    source = _memory_source()
    original = _stream(source, augment=augment)
    _take(original, 4)
    state = _round_trip(original.state_dict())
    assert set(state) >= {"epoch", "step", "augmentation_rng"}
    resumed = _stream(source, augment=augment)
    resumed.load_state_dict(state)
    _assert_same(_take(resumed, 4), _take(original, 4))  # crosses the epoch boundary


def test_world_two_equals_world_one():
    source = _memory_source(size=40)  # crops both up- and downscaled
    single = _take(_stream(source, augment="resnet"), 6)
    halves = [_take(_stream(source, rank=r, world=2), 6) for r in (0, 1)]
    joined = [tuple(torch.cat(parts) for parts in zip(a, b, strict=True)) for a, b in zip(*halves, strict=True)]
    _assert_same(single, joined)


def test_batch_errors():
    with pytest.raises(DataError, match="12.*5"):
        _stream(_memory_source(), global_batch=12, world=5)
    with pytest.raises(DataError, match="fewer than one batch"):
        _stream(_memory_source(n=6))
    with pytest.raises(DataError, match="augment"):
        _stream(_memory_source(), augment="jitter")
    stream = _stream(_memory_source())
    with pytest.raises(DataError, match="global_batch"):
        stream.load_state_dict(_stream(_memory_source(), global_batch=4).state_dict())


def _folder(tmp_path: Path, n: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for k in range(n):
        (tmp_path / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10 + k % 3, 12, 3), dtype=np.uint8)).save(tmp_path / f"c{k % 2}/{k}.png")
    return tmp_path


@pytest.mark.parametrize("num_workers", [0, 2])
def test_folder_stream_resume_and_ranks(tmp_path: Path, num_workers: int):
    source = open_source("folder", str(_folder(tmp_path)), "train")
    kwargs = {"global_batch": 4, "channels": 3, "num_workers": num_workers}
    original = _stream(source, **kwargs)
    first = _take(original, 2)
    assert first[0][0].shape == (4, 3, 16, 16) and first[0][1].shape == (4, 3, 8, 8)
    resumed = _stream(source, **kwargs)
    resumed.load_state_dict(_round_trip(original.state_dict()))
    _assert_same(_take(resumed, 3), _take(original, 3))
    single = _take(_stream(source, **kwargs), 2)
    halves = [_take(_stream(source, rank=r, world=2, **kwargs), 2) for r in (0, 1)]
    joined = [tuple(torch.cat(parts) for parts in zip(a, b, strict=True)) for a, b in zip(*halves, strict=True)]
    _assert_same(single, joined)


def _shards(tmp_path: Path, shards: int = 2, per_shard: int = 5) -> Path:
    rng = np.random.default_rng(1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        samples = [(f"{s}_{k}", rng.integers(0, 256, (9, 9, 3), dtype=np.uint8), s * per_shard + k)
                   for k in range(per_shard)]
        write_shard(tmp_path / f"{s:03d}.tar", samples)
    return tmp_path


@pytest.mark.parametrize("num_workers", [0, 2])
def test_shard_stream_resume(tmp_path: Path, num_workers: int):
    source = open_source("shards", str(_shards(tmp_path)), "train")
    kwargs = {"global_batch": 3, "channels": 3, "num_workers": num_workers, "e_resolution": 16}
    original = _stream(source, **kwargs)
    seen = torch.cat([b[2] for b in _take(original, 3)])
    assert seen.numel() == 9 and seen.unique().numel() >= 5  # samples of both shards, epoch after epoch
    resumed = _stream(source, **kwargs)
    resumed.load_state_dict(_round_trip(original.state_dict()))
    _assert_same(_take(resumed, 4), _take(original, 4))
    original.close()
    resumed.close()


def test_eval_batches_in_order_and_by_rank():
    source = _memory_source(n=10)
    batches = list(eval_batches(source, resolution=16, channels=3, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2] and batches[0][0].shape[1:] == (3, 16, 16)
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(10))
    expected = eval_transform(source.as_tensors()[0][:4], 16).expand(4, 3, 16, 16)
    assert torch.allclose(batches[0][0], expected)
    rank1 = torch.cat([b[1] for b in eval_batches(source, resolution=16, channels=1, batch_size=4, rank=1, world=3)])
    assert rank1.tolist() == [1, 4, 7]
    x, y = load_eval_tensors(source, resolution=8, channels=1, limit=7)
    assert x.shape == (7, 1, 8, 8) and y.tolist() == list(range(7))


def test_eval_batches_folder_and_shards(tmp_path: Path):
    folder = open_source("folder", str(_folder(tmp_path / "f", n=5)), "train")
    x, y = load_eval_tensors(folder, resolution=8, channels=1)
    assert x.shape == (5, 1, 8, 8) and y.tolist() == [0, 0, 0, 1, 1]
    assert torch.allclose(x[1], eval_transform(folder[1][0], 8).mul(torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1))
                          .sum(0, keepdim=True), atol=1e-6)
    shards = open_source("shards", str(_shards(tmp_path / "s")), "train")
    x, y = load_eval_tensors(shards, resolution=8, channels=3, limit=7)
    assert x.shape == (7, 3, 8, 8) and y.tolist() == list(range(7))
