"""Any directory of images, labelled by class sub-folders when it has them (the ImageNet layout)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from torch import Tensor

from bigbigan.data.base import ImageSource
from bigbigan.data.decode import DECODE_ERRORS, IMAGE_EXTENSIONS, decode_rgb
from bigbigan.data.errors import DataError

EVAL_DIRS = ("val", "test")  # sub-folders that hold the official evaluation split, in order of preference


def _image_files(folder: Path, recursive: bool) -> list[str]:
    """Sorted paths of the image files in ``folder`` (hidden files and folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        found += [
            os.path.join(dirpath, f) for f in filenames
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found)


def list_images(folder: str | Path) -> list[str]:
    """Sorted paths of every image file under ``folder`` (recursive; hidden files and folders skipped)."""
    return _image_files(Path(folder), recursive=True)


def _has_image(folder: Path) -> bool:
    """Whether ``folder`` holds an image at any depth; stops at the first one found."""
    for _, _, filenames in os.walk(folder, followlinks=True):
        if any(not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS) for f in filenames):
            return True
    return False


def class_names(root: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``root`` that contain images: the class labels."""
    subdirs = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
    return [name for name in subdirs if _has_image(root / name)]


def scan_folder(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[int], list[str]]:
    """(files, labels, class names) of ``root``.

    Class sub-folders that contain images (at any depth) are labelled 0..K-1 in sorted name order and
    files lying directly in ``root`` are then ignored, as torchvision's ImageFolder does; without such
    sub-folders every image in ``root`` is unlabeled (-1). ``classes`` imposes the training split's
    mapping on an evaluation split.
    """
    present = class_names(root)
    if not present:
        return _image_files(root, recursive=False), [], []
    if classes is None:
        classes = present
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise DataError(f"{root}: class folders {unknown[:5]} do not exist in the training split")
    index = {name: k for k, name in enumerate(classes)}
    files, labels = [], []
    for name in present:
        class_files = _image_files(root / name, recursive=True)
        files += class_files
        labels += [index[name]] * len(class_files)
    return files, labels, classes


class PathTable:
    """Many file paths packed in two numpy arrays.

    Python lists of strings are touched by reference counting in every forked DataLoader worker, which
    copies their pages and multiplies memory on ImageNet-sized folders (pytorch/pytorch#13246); one byte
    blob plus offsets is shared for free.
    """

    def __init__(self, paths: list[str]):
        encoded = [p.encode() for p in paths]
        self._blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self._ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        start = int(self._ends[index - 1]) if index > 0 else 0
        return self._blob[start: int(self._ends[index])].tobytes().decode()


class FolderSource(ImageSource):
    """Images decoded on access from a list of files; unreadable files are skipped.

    A corrupt file is replaced by the next readable one (wrapping around), so a few bad files in a big
    crawl do not stop training; the first one is reported with ``warnings.warn`` once per process and
    all are collected in ``bad_files`` (per process: DataLoader workers keep their own sets).
    """

    channels = 3

    def __init__(self, files: list[str], labels: list[int], classes: list[str], *, root: Path, split: str):
        if not files:
            raise DataError(f"folder: no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
        self.files = PathTable(files)
        self.labels = np.asarray(labels if labels else [-1] * len(files), dtype=np.int64)
        self.classes, self.root, self.name, self.split = classes, root, "folder", split
        self.num_classes = len(classes)
        self.bad_files: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        n = len(self.files)
        for k in range(n):
            j = (int(index) + k) % n
            try:
                image = decode_rgb(self.files[j])
            except DECODE_ERRORS as err:
                self._skip(self.files[j], err)
                continue
            return image, int(self.labels[j])
        raise DataError(f"folder: none of the {n} image files under {self.root} could be decoded")

    def _skip(self, path: str, err: Exception) -> None:
        if not self.bad_files:
            warnings.warn(
                f"skipping unreadable image {path} ({type(err).__name__}: {err}); further unreadable files "
                "are skipped silently and counted in FolderSource.bad_files",
                RuntimeWarning,
                stacklevel=3,
            )
        self.bad_files.add(path)

    @property
    def skipped(self) -> int:
        """How many distinct unreadable files this process has skipped so far."""
        return len(self.bad_files)

    def subset(self, indices: Tensor) -> FolderSource:
        keep = indices.tolist()
        return FolderSource(
            [self.files[k] for k in keep], self.labels[keep].tolist(), self.classes, root=self.root,
            split=self.split,
        )


def open_folder(data_dir: str | Path, split: str) -> FolderSource:
    """The official ``split`` of an image folder: ``train/`` and ``val/`` (or ``test/``) when present.

    Without a ``train/`` sub-folder the whole directory is the training split and asking for "test"
    is a DataError.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"folder: {root} is not a directory")
    train_root = root / "train" if (root / "train").is_dir() else root
    if split == "train":
        files, labels, classes = scan_folder(train_root)
        return FolderSource(files, labels, classes, root=train_root, split=split)
    eval_root = next((root / d for d in EVAL_DIRS if (root / d).is_dir()), None)
    if train_root == root or eval_root is None:
        raise DataError(f"folder: {root} has no train/ with val/ or test/ sub-folders, so it has no test split")
    classes = class_names(train_root)
    files, labels, classes = scan_folder(eval_root, classes or None)
    return FolderSource(files, labels, classes, root=eval_root, split=split)
