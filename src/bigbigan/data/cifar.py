"""CIFAR-10 from its binary release (``cifar-10-batches-bin``); the pickled python release is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bigbigan.data.base import TensorSource
from bigbigan.data.errors import DataError

BINARY_DIR = "cifar-10-batches-bin"
BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_FILES = {"train": tuple(f"data_batch_{k}.bin" for k in range(1, 6)), "test": ("test_batch.bin",)}
_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green and 1024 blue bytes (row-major)


def find_cifar_dir(data_dir: Path) -> Path:
    """``data_dir`` itself or its ``cifar-10-batches-bin`` child, whichever holds the batch files."""
    for folder in (data_dir, data_dir / BINARY_DIR):
        if (folder / "test_batch.bin").is_file() or (folder / "data_batch_1.bin").is_file():
            return folder
    for folder in (data_dir, data_dir / "cifar-10-batches-py"):
        if (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file():
            raise DataError(
                f"{folder} holds the pickled python version of CIFAR-10, which bigbigan never unpickles; "
                f"download the binary version ({BINARY_URL}) and point data_dir at cifar-10-batches-bin"
            )
    raise DataError(f"cifar10: no {BINARY_DIR}/data_batch_*.bin or test_batch.bin under {data_dir}")


def read_cifar_records(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [N, 3, 32, 32], int64 [N]) from one binary batch file of 3073-byte records."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {_RECORD}-byte CIFAR-10 records")
    records = raw.reshape(-1, _RECORD)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    if int(labels.max()) > 9:
        raise DataError(f"{path}: label {int(labels.max())} out of range 0..9 (is this CIFAR-100?)")
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    return images, labels


def open_cifar10(data_dir: str | Path, split: str) -> TensorSource:
    """The official ``split`` ("train": 5 batches, 50000 images; "test": 10000) of CIFAR-10."""
    folder = find_cifar_dir(Path(data_dir))
    paths = [folder / name for name in CIFAR_FILES[split]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"cifar10: {folder} lacks {', '.join(missing)}")
    parts = [read_cifar_records(p) for p in paths]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    return TensorSource(images, labels, name="cifar10", split=split, num_classes=10)
