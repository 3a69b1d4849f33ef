"""Decode image files or bytes into uint8 RGB tensors with PIL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
# What PIL raises for unreadable, truncated or hostile files; callers skip such files.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def decode_rgb(data: bytes | str | Path) -> Tensor:
    """uint8 [3, H, W] from a path or encoded bytes; the first frame of animations.

    Every image is converted to RGB so folder and shard sources always have 3 channels (a grey image
    becomes three equal channels). PIL's own exceptions propagate: callers decide how to skip.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(stream) as image:
        return pil_rgb(image)


def pil_rgb(image: Image.Image) -> Tensor:
    """uint8 [3, H, W] from an open PIL image, converted as ``decode_rgb`` converts files."""
    if image.mode in ("P", "PA", "LA"):
        image = image.convert("RGBA")  # palette / alpha images: via RGBA, so PIL drops alpha cleanly
    array = np.asarray(image.convert("RGB"))  # [H, W, 3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
