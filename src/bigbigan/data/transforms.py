"""Image transforms: uint8 [C, H, W] in, float32 in [-1, 1] out.

Two code paths share one crop sampler:
- ``crop_batch`` augments a whole in-memory batch with one ``affine_grid`` + ``grid_sample`` call per
  output resolution (crop boxes and flips encoded in the affine matrices), with no Python loop;
- ``crop_image`` crops one decoded image of any size and resizes it with antialiasing (folder, shards).
Crop boxes are (x0, y0, w, h) in pixel-edge coordinates of the source image: the image spans [0, W] x [0, H].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bigbigan.data.errors import DataError

AUGMENTS = ("resnet", "distorted", "flip", "none")
# Random-resized-crop parameters: (area fraction range, aspect ratio w/h range).
# "resnet": the Inception/ResNet crop (torchvision RandomResizedCrop defaults), Table 3's "ResNet-style".
# "distorted": compare_gan's ImageNet crop_method="distorted" (square boxes covering 50-100% of the
#   image area, i.e. 75% on average versus ~54% for "resnet"), the lighter crop of the paper's baseline.
CROPS = {
    "resnet": ((0.08, 1.0), (3 / 4, 4 / 3)),
    "distorted": ((0.5, 1.0), (1.0, 1.0)),
}
CROP_TRIES = 10  # boxes drawn per image before falling back to the centre crop, as torchvision does
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 luminance weights for RGB -> grey


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1]; float input is returned unchanged."""
    if images.dtype == torch.uint8:
        return images.float().mul_(1 / 127.5).sub_(1.0)
    return images


def match_channels(x: Tensor, channels: int) -> Tensor:
    """[..., C, H, W] -> [..., channels, H, W]: grey is replicated to RGB, RGB becomes its luminance."""
    have = x.shape[-3]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * weights).sum(-3, keepdim=True)
    raise DataError(f"cannot convert {have}-channel images to {channels} channels (use 1 or 3)")


def eval_transform(img: Tensor, resolution: int) -> Tensor:
    """Resize the minor side to ``resolution`` (bilinear, antialiased), then centre-crop a square.

    The evaluation / FID preprocessing (torchvision ``Resize(r)`` + ``CenterCrop(r)``, same rounding).
    Accepts uint8 [C, H, W] or [N, C, H, W] (or float already in [-1, 1]); returns float32 in [-1, 1].
    """
    x = to_unit_range(img)
    batched = x.dim() == 4
    x = x if batched else x[None]
    h, w = x.shape[-2:]
    if h <= w:
        size = (resolution, int(resolution * w / h))
    else:
        size = (int(resolution * h / w), resolution)
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    top = round((size[0] - resolution) / 2.0)
    left = round((size[1] - resolution) / 2.0)
    x = x[..., top: top + resolution, left: left + resolution].contiguous()
    return x if batched else x[0]


def centre_boxes(n: int, height: int, width: int) -> Tensor:
    """[n, 4] boxes of the largest centred square: the crop of ``eval_transform``."""
    side = min(height, width)
    box = torch.tensor([(width - side) / 2, (height - side) / 2, side, side], dtype=torch.float32)
    return box.expand(n, 4).clone()


def sample_crops(n: int, height: int, width: int, augment: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Crop boxes [n, 4] (x0, y0, w, h in pixels, float32) and horizontal flips [n] (bool) for ``augment``.

    Random-resized crops follow torchvision's RandomResizedCrop, vectorised: CROP_TRIES (area, log-ratio)
    draws per image, the first box that fits wins, else the whole image clipped to the ratio range,
    centred. Boxes are continuous (no rounding). Draws a fixed number of numbers per image for a given
    mode, so a shared generator stays in step whatever the boxes turn out to be.
    """
    if augment not in AUGMENTS:
        raise DataError(f"unknown augment {augment!r}; choose one of {', '.join(AUGMENTS)}")
    if augment in ("none", "flip"):
        flips = torch.rand(n, generator=generator) < 0.5 if augment == "flip" else torch.zeros(n, dtype=torch.bool)
        return centre_boxes(n, height, width), flips
    (area_lo, area_hi), (ratio_lo, ratio_hi) = CROPS[augment]
    area = torch.empty(n, CROP_TRIES).uniform_(area_lo, area_hi, generator=generator) * (height * width)
    log_ratio = torch.empty(n, CROP_TRIES).uniform_(math.log(ratio_lo), math.log(ratio_hi), generator=generator)
    offsets = torch.rand(n, 2, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    w = torch.sqrt(area * torch.exp(log_ratio))
    h = torch.sqrt(area * torch.exp(-log_ratio))
    fits = (w <= width) & (h <= height)  # [n, tries]
    first = fits.int().argmax(1, keepdim=True)  # first fitting try (0 when none fits)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    fallback_w, fallback_h = float(width), float(height)
    if width / height < ratio_lo:
        fallback_h = width / ratio_lo
    elif width / height > ratio_hi:
        fallback_w = height * ratio_hi
    found = fits.any(1)
    w = torch.where(found, w, fallback_w)
    h = torch.where(found, h, fallback_h)
    x0 = torch.where(found, offsets[:, 0] * (width - w), (width - w) / 2)
    y0 = torch.where(found, offsets[:, 1] * (height - h), (height - h) / 2)
    return torch.stack([x0, y0, w, h], 1), flips


def supersampling(boxes: Tensor, resolution: int) -> int:
    """Factor k (1..4) with every box side at least k x ``resolution``: how finely to sample a downscale."""
    if boxes.shape[0] == 0:
        return 1
    return max(1, min(4, int(boxes[:, 2:].min()) // resolution))


def crop_batch(images: Tensor, boxes: Tensor, flips: Tensor, resolution: int, k: int | None = None) -> Tensor:
    """Crop boxes [N, 4] out of images [N, C, H, W], resize to ``resolution`` and flip: one grid_sample.

    Bilinear, align_corners=False, border padding. Downscaling crops are sampled at k x the resolution
    and k x k average-pooled, a cheap antialias; k defaults to ``supersampling(boxes)`` and callers that
    split one batch into pieces (ranks) pass the whole batch's k so every piece is computed alike.
    Upscaling crops (the usual case for small in-memory data sets) have k = 1: plain bilinear sampling.
    Returns float32 [N, C, resolution, resolution] in [-1, 1].
    """
    n, c, height, width = images.shape
    x = images.float() if images.dtype == torch.uint8 else (images + 1) * 127.5
    boxes = boxes.to(device=x.device, dtype=torch.float32)
    x0, y0, w, h = boxes.unbind(1)
    sx = w / width
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = torch.where(flips.to(x.device), -sx, sx)
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    k = supersampling(boxes, resolution) if k is None else k
    grid = F.affine_grid(theta, [n, c, resolution * k, resolution * k], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if k > 1:
        out = F.avg_pool2d(out, k)
    return out.mul_(1 / 127.5).sub_(1.0)


def crop_image(img: Tensor, box: Tensor, flip: bool, resolution: int) -> Tensor:
    """Crop one box (rounded to whole pixels) of uint8 [C, H, W], antialiased resize, flip: float [-1, 1]."""
    height, width = img.shape[-2:]
    x0, y0, w, h = box.tolist()
    w, h = min(width, max(1, round(w))), min(height, max(1, round(h)))
    left, top = min(width - w, max(0, round(x0))), min(height - h, max(0, round(y0)))
    patch = to_unit_range(img[None, :, top: top + h, left: left + w])
    out = F.interpolate(patch, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return (out.flip(-1) if flip else out)[0]


def augment_image(
    img: Tensor, *, augment: str, resolution: int, e_resolution: int, channels: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One training view of uint8 [C, H, W] at G/D's and E's resolutions from the same crop box.

    Returns (x [channels, R, R], x_e [channels, Re, Re]); x_e is x itself when Re == R.
    """
    boxes, flips = sample_crops(1, img.shape[-2], img.shape[-1], augment, generator)
    x = match_channels(crop_image(img, boxes[0], bool(flips[0]), resolution), channels)
    if e_resolution == resolution:
        return x, x
    return x, match_channels(crop_image(img, boxes[0], bool(flips[0]), e_resolution), channels)
