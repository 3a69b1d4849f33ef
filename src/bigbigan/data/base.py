"""The image-source interface every data set implements, and its in-memory implementation."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from bigbigan.data.errors import DataError


class ImageSource(Dataset):
    """One split of an image data set: item ``i`` is (uint8 image [C, H, W], int label; -1 if unlabeled).

    Images stay uint8 at their stored size; resizing, cropping and scaling to [-1, 1] belong to
    ``bigbigan.data.transforms`` so the same source serves training (augmented) and evaluation (centred).
    """

    name: str = ""  # source name from SOURCES, for messages
    split: str = ""  # "train", "train_val", "train_sub" or "test"
    channels: int = 3  # 1 or 3
    num_classes: int = 0  # 0 when unlabeled

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        raise NotImplementedError

    def as_tensors(self) -> tuple[Tensor, Tensor] | None:
        """(uint8 [N, C, H, W], int64 [N]) when the whole split is held in memory at one size, else None.

        The returned tensors are the source's own storage: read them, never modify them in place.
        """
        return None

    def subset(self, indices: Tensor) -> ImageSource:
        """A source holding items ``indices`` (int64 [K]) of this one, in that order."""
        raise DataError(f"source {self.name!r} cannot be split by index")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, len={len(self)}, "
            f"channels={self.channels}, num_classes={self.num_classes})"
        )


class TensorSource(ImageSource):
    """A split held in memory as one uint8 tensor (IDX, digits, CIFAR-10): cheap batched augmentation."""

    def __init__(self, images: Tensor, labels: Tensor, *, name: str, split: str, num_classes: int):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 [N, 1|3, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match {images.shape[0]} images")
        self.images = images.contiguous()  # [N, C, H, W] uint8
        self.labels = labels.to(torch.int64)  # [N]
        self.name, self.split, self.num_classes = name, split, num_classes
        self.channels = int(images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def as_tensors(self) -> tuple[Tensor, Tensor]:
        return self.images, self.labels

    def subset(self, indices: Tensor) -> TensorSource:
        return TensorSource(
            self.images[indices], self.labels[indices], name=self.name, split=self.split,
            num_classes=self.num_classes,
        )
