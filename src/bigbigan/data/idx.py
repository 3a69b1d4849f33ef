"""MNIST and Fashion-MNIST from their IDX files (plain or .gz), e.g. Debian's ``dataset-fashion-mnist``.

Debian installs ``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``;
the plain names, the ``*.idx3-ubyte`` spelling of some mirrors and torchvision's ``<Name>/raw/`` folder
are accepted too.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bigbigan.data.base import TensorSource
from bigbigan.data.errors import DataError

IDX_FILES = {  # official split -> (images stem, labels stem)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_UBYTE = 0x08  # IDX type code of unsigned bytes, the only one MNIST-style data sets use
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> Tensor:
    """Read one IDX file (gzip detected by content) into a uint8 tensor shaped as its header says.

    Layout: two zero bytes, a type byte (0x08 = uint8), a byte with the number of dims, one big-endian
    uint32 per dim, then the data; a wrong magic or a size that disagrees with the header is a DataError.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: corrupt gzip data ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != _UBYTE:
        raise DataError(f"{path}: IDX type code 0x{raw[2]:02x} is not supported (only 0x08, unsigned byte)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dims)")
    dims = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim)]
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header says {dims} ({expected} bytes) but the file has {len(raw)} bytes")
    data = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(data.copy())


def find_idx_file(data_dir: Path, stem: str) -> Path:
    """The file for ``stem`` in data_dir (or a ``raw/`` folder below it), plain or gzipped."""
    names = [stem, stem.replace("-idx", ".idx")]
    folders = [data_dir, data_dir / "raw", *sorted(data_dir.glob("*/raw"))]
    for folder in folders:
        for name in names:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
    raise DataError(f"{data_dir}: no {stem} or {stem}.gz found (IDX files of MNIST / Fashion-MNIST expected)")


def open_idx(name: str, data_dir: str | Path, split: str) -> TensorSource:
    """The official ``split`` ("train" or "test") of an MNIST-style data set: 1 channel, 10 classes."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{name}: data directory {data_dir} does not exist")
    image_stem, label_stem = IDX_FILES[split]
    image_path, label_path = find_idx_file(data_dir, image_stem), find_idx_file(data_dir, label_stem)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dim() != 3:
        raise DataError(f"{image_path}: expected 3 IDX dims (N, H, W), got {list(images.shape)}")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{label_path}: {list(labels.shape)} labels do not match {images.shape[0]} images")
    return TensorSource(images[:, None], labels.long(), name=name, split=split, num_classes=10)
