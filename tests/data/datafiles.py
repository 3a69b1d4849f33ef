"""Builders of tiny on-disk data sets in the real formats, for the data pipeline tests (not a test module)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """An IDX file of uint8 ``array``: magic 00 00 08 ndim, big-endian uint32 dims, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_idx_dataset(folder: Path, n_train: int = 12, n_test: int = 5, *, gz: bool = False, seed: int = 0):
    """MNIST-layout IDX files; returns {split: (images [N, 28, 28], labels [N])} as numpy arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)
        arrays[split] = (images, labels)
    return arrays


def encode(array: np.ndarray, fmt: str) -> bytes:
    """uint8 [H, W, 3] encoded as PNG / JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def write_shard(path: Path, samples: list[tuple[str, np.ndarray, int | None]]) -> Path:
    """A webdataset tar shard: ``key.png`` (+ ``key.cls``) per sample."""
    with tarfile.open(path, "w") as tar:
        for key, array, label in samples:
            files = [(f"{key}.png", encode(array, "PNG"))]
            if label is not None:
                files.append((f"{key}.cls", str(label).encode()))
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path
