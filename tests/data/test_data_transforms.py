"""Transforms: the evaluation crop, the batched and per-image training crops, flips, channels, ranges."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from bigbigan.data import DataError, eval_transform, match_channels, to_unit_range
from bigbigan.data.transforms import augment_image, centre_boxes, crop_batch, crop_image, sample_crops


def _smooth(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """uint8 images without fine detail, so differently sampled versions can be compared closely."""
    low = torch.rand(n, c, 4, 4, generator=torch.Generator().manual_seed(seed))
    return (F.interpolate(low, size=(h, w), mode="bicubic", align_corners=True).clamp(0, 1) * 255).round().to(torch.uint8)


def test_eval_transform_constant_and_range():
    img = torch.full((1, 28, 28), 200, dtype=torch.uint8)
    out = eval_transform(img, 32)
    assert out.shape == (1, 32, 32) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, 200 / 127.5 - 1), atol=1e-6)
    extremes = eval_transform(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 2, 2), 2)
    assert extremes.min() == -1 and extremes.max() == 1


def test_eval_transform_centre_crops_the_middle():
    img = torch.arange(10 * 20, dtype=torch.int64).view(1, 10, 20).to(torch.uint8)  # minor side already 10
    assert torch.equal(eval_transform(img, 10), to_unit_range(img[:, :, 5:15]))
    tall = img.transpose(1, 2).contiguous()  # 20 x 10: crop the middle rows
    assert torch.equal(eval_transform(tall, 10), to_unit_range(tall[:, 5:15, :]))


def test_eval_transform_matches_torchvision_resize_centre_crop():
    img = torch.randint(0, 256, (2, 3, 45, 70), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    reference = TF.center_crop(TF.resize(to_unit_range(img), [32], antialias=True), [32, 32])
    assert torch.allclose(eval_transform(img, 32), reference, atol=1e-5)


def test_batched_full_box_reproduces_eval_transform():
    img = torch.randint(0, 256, (5, 1, 28, 28), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    no_flip = torch.zeros(5, dtype=torch.bool)
    assert torch.allclose(crop_batch(img, centre_boxes(5, 28, 28), no_flip, 32), eval_transform(img, 32), atol=1e-5)
    assert torch.allclose(crop_batch(img, centre_boxes(5, 28, 28), no_flip, 28), to_unit_range(img), atol=1e-5)
    smooth = _smooth(3, 3, 64, 64)  # a downscale: supersampled grid_sample vs antialiased resize
    out = crop_batch(smooth, centre_boxes(3, 64, 64), torch.zeros(3, dtype=torch.bool), 16)
    assert (out - eval_transform(smooth, 16)).abs().max() < 0.05


def test_crop_box_selects_the_region_and_flip_flips():
    img = torch.randint(0, 256, (2, 3, 16, 24), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    boxes = torch.tensor([[4.0, 2.0, 8.0, 8.0], [10.0, 6.0, 8.0, 8.0]])
    plain = crop_batch(img, boxes, torch.tensor([False, False]), 8)
    assert torch.allclose(plain[0], to_unit_range(img[0, :, 2:10, 4:12]), atol=1e-5)
    assert torch.allclose(plain[1], to_unit_range(img[1, :, 6:14, 10:18]), atol=1e-5)
    flipped = crop_batch(img, boxes, torch.tensor([True, False]), 8)
    assert torch.allclose(flipped[0], plain[0].flip(-1), atol=1e-5) and torch.equal(flipped[1], plain[1])
    assert not torch.allclose(flipped[0], plain[0], atol=1e-2)
    one = crop_image(img[0], boxes[0], True, 8)  # the per-image path agrees on whole-pixel boxes
    assert torch.allclose(one, flipped[0], atol=1e-5)


def test_two_resolutions_share_the_box():
    img = _smooth(4, 3, 40, 40, seed=4)
    boxes, flips = sample_crops(4, 40, 40, "resnet", torch.Generator().manual_seed(5))
    high, low = crop_batch(img, boxes, flips, 32), crop_batch(img, boxes, flips, 16)
    assert (F.avg_pool2d(high, 2) - low).abs().mean() < 0.01
    other, _ = sample_crops(4, 40, 40, "resnet", torch.Generator().manual_seed(6))
    assert (F.avg_pool2d(high, 2) - crop_batch(img, other, flips, 16)).abs().mean() > 0.1
    x, x_e = augment_image(img[0], augment="resnet", resolution=32, e_resolution=16, channels=3,
                           generator=torch.Generator().manual_seed(7))
    assert (F.avg_pool2d(x[None], 2)[0] - x_e).abs().mean() < 0.01


@pytest.mark.parametrize(("augment", "area", "ratio"), [("resnet", (0.08, 1.0), (3 / 4, 4 / 3)),
                                                      ("distorted", (0.5, 1.0), (1.0, 1.0))])
def test_sample_crops_ranges(augment: str, area: tuple, ratio: tuple):
    boxes, flips = sample_crops(4000, 30, 40, augment, torch.Generator().manual_seed(8))
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 40 + 1e-4).all() and (y0 + h <= 30 + 1e-4).all()
    fraction = w * h / (30 * 40)
    assert fraction.min() >= area[0] - 1e-4 and fraction.max() <= area[1] + 1e-4
    assert (w / h).min() >= ratio[0] - 1e-3 and (w / h).max() <= ratio[1] + 1e-3
    assert 0.45 < flips.float().mean() < 0.55
    again, _ = sample_crops(4000, 30, 40, augment, torch.Generator().manual_seed(8))
    assert torch.equal(again, boxes)


def test_distorted_is_lighter_than_resnet():
    g = torch.Generator().manual_seed(9)
    boxes = {a: sample_crops(4000, 32, 32, a, g)[0] for a in ("resnet", "distorted")}
    mean_area = {a: (b[:, 2] * b[:, 3]).mean().item() / 32**2 for a, b in boxes.items()}
    assert math.isclose(mean_area["distorted"], 0.75, abs_tol=0.02) and mean_area["resnet"] < 0.6


def test_flip_and_none_modes_use_the_centre_square():
    boxes, flips = sample_crops(100, 20, 30, "flip", torch.Generator().manual_seed(10))
    assert torch.equal(boxes, centre_boxes(100, 20, 30)) and 0 < flips.sum() < 100
    boxes, flips = sample_crops(5, 20, 30, "none", torch.Generator())
    assert boxes[0].tolist() == [5.0, 0.0, 20.0, 20.0] and not flips.any()
    with pytest.raises(DataError, match="resnet, distorted, flip, none"):
        sample_crops(1, 8, 8, "random", torch.Generator())


def test_match_channels():
    grey = torch.rand(2, 1, 4, 4) * 2 - 1
    rgb = match_channels(grey, 3)
    assert rgb.shape == (2, 3, 4, 4) and torch.equal(rgb[:, 2], grey[:, 0]) and rgb.is_contiguous()
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, 2, 2)
    assert torch.allclose(match_channels(red, 1), torch.full((1, 2, 2), 0.299 - 0.701))
    assert torch.allclose(match_channels(match_channels(grey, 3), 1), grey)
    with pytest.raises(DataError):
        match_channels(grey, 2)
