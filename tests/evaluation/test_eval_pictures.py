"""Picture grids and learning curves: valid PNGs of the expected size, images where they belong."""

import numpy as np
import torch
from PIL import Image

from bigbigan.evaluation.pictures import (
    filter_grid,
    interpolation_grid,
    neighbours_grid,
    plot_curves,
    reconstruction_grid,
    save_grid,
)


def _open(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def test_save_grid_size_grayscale(tmp_path):
    path = save_grid(torch.zeros(5, 1, 8, 6), tmp_path / "sub" / "grid.png", nrow=3, padding=2)
    a = _open(path)
    assert a.shape == (2 * (8 + 2) + 2, 3 * (6 + 2) + 2, 3)
    assert _open(save_grid(torch.zeros(9, 3, 4, 4), tmp_path / "g.png", padding=0)).shape == (12, 12, 3)


def test_reconstruction_grid_puts_inputs_above_outputs(tmp_path):
    n, ncol, pad, h = 10, 4, 2, 6
    x = torch.linspace(-1, 0, n).view(n, 1, 1, 1).expand(n, 1, h, h)  # constant images, distinct values
    x_rec = torch.linspace(0.1, 1, n).view(n, 1, 1, 1).expand(n, 3, h, h)
    a = _open(reconstruction_grid(x, x_rec, tmp_path / "rec.png", ncol=ncol))
    assert a.shape == (6 * (h + pad) + pad, ncol * (h + pad) + pad, 3)  # 3 row pairs
    for i in range(n):
        r, c = divmod(i, ncol)
        col = pad + c * (h + pad) + h // 2
        above, below = (pad + row * (h + pad) + h // 2 for row in (2 * r, 2 * r + 1))
        assert a[above, col, 0] == round((x[i, 0, 0, 0].item() + 1) * 127.5)  # input in row 2r
        assert a[below, col, 0] == round((x_rec[i, 0, 0, 0].item() + 1) * 127.5)  # reconstruction below


def test_neighbours_grid(tmp_path):
    q = torch.ones(2, 3, 5, 5)  # white queries
    nb = -torch.ones(2, 3, 3, 5, 5) * 0.5
    a = _open(neighbours_grid(q, nb, tmp_path / "nn.png"))
    border, gap, pad = 2, 6, 2
    assert a.shape == (2 * (5 + 2 * border) + 2 * border, 2 * border + 5 + gap + 3 * (5 + pad) + pad, 3)
    assert (a[2 * border + 2, border + 2] == 255).all()  # a query pixel
    assert tuple(a[border, 0]) == (230, 40, 40)  # the query outline
    assert (a[2 * border + 2, 2 * border + 5 + gap + pad + 2] == 64).all()  # first neighbour


def test_filter_grid_normalises_each_filter(tmp_path):
    w = torch.randn(16, 3, 5, 5) * torch.arange(1, 17.0).view(16, 1, 1, 1)  # very different scales
    a = _open(filter_grid(w, tmp_path / "f.png", scale=4, padding=1))
    assert a.shape == (4 * 21 + 1, 4 * 21 + 1, 3)
    for i in range(16):
        r, c = divmod(i, 4)
        cell = a[1 + r * 21 : 1 + r * 21 + 20, 1 + c * 21 : 1 + c * 21 + 20]
        assert cell.min() == 0 and cell.max() == 255
    assert _open(filter_grid(torch.randn(4, 1, 3, 3), tmp_path / "g.png", scale=2)).shape == (
        2 * 7 + 1,
    ) * 2 + (3,)


def test_interpolation_grid(tmp_path):
    a = _open(interpolation_grid(torch.zeros(2, 5, 1, 8, 8), tmp_path / "i.png"))
    assert a.shape == (2 * 10 + 2, 5 * 10 + 2, 3)


def test_plot_curves_skips_non_numeric(tmp_path):
    records = [{"step": s, "loss": 1 / (s + 1), "fid": 100 - s, "name": "run", "ok": True} for s in range(5)]
    records.append({"step": 5, "loss": torch.tensor(0.1)})
    path = plot_curves(records, tmp_path / "curves.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (800, 280)  # two subplots: loss, fid
    assert _open(plot_curves(records, tmp_path / "one.png", keys=["loss"])).shape == (280, 400, 3)
