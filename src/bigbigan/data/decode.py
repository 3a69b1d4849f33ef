"""Decode image files or bytes into uint8 RGB tensors with PIL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class UnsupportedImage(ValueError):
    """An image whose pixel values have no known 8-bit meaning (floating point, say); skipped like a corrupt
    file, with its one-line reason."""


# What PIL raises for unreadable, truncated or hostile files; callers skip such files.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)

# Integer greyscale modes wider than 8 bits, and the full scale of each: PIL's convert("RGB") clips them at
# 255 (a 16-bit PNG becomes near-white), so they are rescaled here. PNG and TIFF store 16-bit grey as I;16*
# or as I (32-bit) holding 0..65535.
_WIDE_GREY = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def _wide_grey_to_uint8(image: Image.Image) -> np.ndarray:
    """[H, W] uint8 from a 16-bit greyscale image: value * 255 / 65535, rounded."""
    array = np.asarray(image).astype(np.int64)
    if array.size and (array.min() < 0 or array.max() > _WIDE_GREY[image.mode]):
        raise UnsupportedImage(
            f"{image.mode} image with values {array.min()}..{array.max()} outside 0..65535 (unknown scale)"
        )
    return ((array * 255 + 32767) // 65535).astype(np.uint8)


def decode_rgb(data: bytes | str | Path) -> Tensor:
    """uint8 [3, H, W] from a path or encoded bytes; the first frame of animations.

    Every image is converted to RGB so folder and shard sources always have 3 channels (a grey image
    becomes three equal channels); 16-bit grey is scaled into 0..255, never clipped; floating-point images
    (mode F, no known range) raise UnsupportedImage. PIL's own exceptions propagate: callers decide how to skip.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(stream) as image:
        return pil_rgb(image)


def pil_rgb(image: Image.Image) -> Tensor:
    """uint8 [3, H, W] from an open PIL image, converted as ``decode_rgb`` converts files (16-bit grey scaled,
    float refused, palette and alpha via RGBA)."""
    if image.mode in _WIDE_GREY:
        grey = _wide_grey_to_uint8(image)
        array = np.repeat(grey[:, :, None], 3, axis=2)
    elif image.mode == "F":
        raise UnsupportedImage("floating-point (mode F) image: its value range is unknown; convert it to 8-bit")
    else:
        if image.mode in ("P", "PA", "LA", "La", "RGBa"):
            image = image.convert("RGBA")  # palette / alpha images: via RGBA, so PIL drops alpha cleanly
        array = np.asarray(image.convert("RGB"))  # [H, W, 3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
