"""Pictures a user expects from a BigBiGAN run (paper Sec. 3.3, App. A-D): sample, reconstruction,
nearest-neighbour, interpolation and first-layer filter grids (PNG via PIL), and learning curves
(matplotlib, Agg backend). Images are float tensors in [-1, 1], [N, 1 | 3, H, W].
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

_BACKGROUND = 0  # padding colour (black)
_OUTLINE = (230, 40, 40)  # query outline colour in neighbour grids


def to_uint8(images: Tensor) -> np.ndarray:
    """[N, 1 | 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] (grayscale replicated)."""
    x = images.detach().float().cpu()
    if x.ndim == 3:
        x = x[None]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
    v = torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
    return v.permute(0, 2, 3, 1).numpy()


def grid_array(cells: np.ndarray, nrow: int, padding: int = 2) -> np.ndarray:
    """Tile uint8 images [N, H, W, 3] on a black canvas, ``nrow`` images per row, ``padding`` pixels
    around and between them: size (rows * (H + p) + p) x (nrow * (W + p) + p)."""
    n, h, w, c = cells.shape
    rows = math.ceil(n / nrow)
    canvas = np.full(
        (rows * (h + padding) + padding, nrow * (w + padding) + padding, c), _BACKGROUND, np.uint8
    )
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        canvas[y : y + h, x : x + w] = cells[i]
    return canvas


def _save(array: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return path


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, padding: int = 2) -> Path:
    """Images [N, C, H, W] in [-1, 1] as one PNG grid of ``nrow`` columns (default ceil(sqrt(N)))."""
    cells = to_uint8(images)
    nrow = nrow or math.ceil(math.sqrt(len(cells)))
    return _save(grid_array(cells, nrow, padding), path)


def reconstruction_grid(x: Tensor, x_rec: Tensor, path: str | Path, ncol: int = 8, padding: int = 2) -> Path:
    """Inputs x and reconstructions G(E(x)) (Sec. 3.3, Fig. 2): row pairs of ``ncol`` images, inputs in
    row 2r and their reconstructions directly below in row 2r + 1 (grayscale and RGB may be mixed)."""
    if x.shape[0] != x_rec.shape[0] or x.shape[2:] != x_rec.shape[2:]:
        raise ValueError(f"x {tuple(x.shape)} and x_rec {tuple(x_rec.shape)} differ in count or size")
    a, b = to_uint8(x), to_uint8(x_rec)
    n = len(a)
    ncol = min(ncol, n)
    rows = []
    for start in range(0, n, ncol):
        rows += [a[start : start + ncol], b[start : start + ncol]]
    blank = np.zeros_like(a[:1])
    cells = np.concatenate([np.concatenate([r, np.repeat(blank, ncol - len(r), 0)]) for r in rows])
    return _save(grid_array(cells, ncol, padding), path)


def neighbours_grid(queries: Tensor, neighbours: Tensor, path: str | Path, padding: int = 2) -> Path:
    """Nearest neighbours (App. C, Fig. 12): each row is a query [Q, C, H, W] followed by its K neighbours
    [Q, K, C, H, W]; the query column is outlined and set apart by a wider gap."""
    q = to_uint8(queries)
    nb = neighbours.shape
    nbr = to_uint8(neighbours.reshape(nb[0] * nb[1], *nb[2:])).reshape(nb[0], nb[1], *q.shape[1:])
    n_q, k = nbr.shape[:2]
    h, w = q.shape[1:3]
    border = max(padding, 2)  # outline thickness, drawn in the padding around the query
    gap = 3 * border  # extra space between the query column and its neighbours
    left = 2 * border + w + gap
    height = n_q * (h + 2 * border) + 2 * border
    width = left + k * (w + padding) + padding
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
    for i in range(n_q):
        y = border + i * (h + 2 * border) + border
        canvas[y - border : y + h + border, 0 : w + 2 * border] = _OUTLINE
        canvas[y : y + h, border : border + w] = q[i]
        for j in range(k):
            x = left + padding + j * (w + padding)
            canvas[y : y + h, x : x + w] = nbr[i, j]
    return _save(canvas, path)


def filter_grid(weight: Tensor, path: str | Path, scale: int = 8, padding: int = 1) -> Path:
    """First-layer conv filters [O, I, kh, kw] (App. A, Fig. 3), each min-max normalised to [0, 1] on its
    own, shown in RGB when I == 3 and as grayscale otherwise (the mean over input channels when I != 1),
    magnified ``scale`` times (nearest); ceil(sqrt(O)) filters per row."""
    w = weight.detach().float().cpu()
    if w.shape[1] != 3:
        w = w.mean(dim=1, keepdim=True)
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)
    w = w.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    cells = to_uint8(w * 2 - 1)
    return _save(grid_array(cells, math.ceil(math.sqrt(len(cells))), padding), path)


def interpolation_grid(images: Tensor, path: str | Path, padding: int = 2) -> Path:
    """Latent interpolations [R, S, C, H, W]: one row of S steps per pair."""
    r, s = images.shape[:2]
    return save_grid(images.reshape(r * s, *images.shape[2:]), path, nrow=s, padding=padding)


def _is_number(v: object) -> bool:
    if isinstance(v, Tensor):
        return v.numel() == 1 and v.dtype != torch.bool
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def plot_curves(
    records: Sequence[dict], path: str | Path, keys: list[str] | None = None, x_key: str = "step"
) -> Path:
    """Learning curves (App. D): one small subplot per scalar key against ``x_key`` (record index when a
    record lacks it); keys default to every numeric key seen; non-numeric values are skipped."""
    # Imported late: matplotlib is slow to import and only the learning curves need it. No pyplot: no global
    # state, an Agg canvas for the PNG.
    from matplotlib.figure import Figure

    if keys is None:
        keys = []
        for rec in records:
            keys += [k for k, v in rec.items() if k != x_key and k not in keys and _is_number(v)]
    keys = keys or ["(no numeric keys)"]
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(4 * ncols, 2.8 * nrows), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [
            (float(rec.get(x_key, i)), float(rec[key]))
            for i, rec in enumerate(records)
            if _is_number(rec.get(key)) and _is_number(rec.get(x_key, i))
        ]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="." if len(pts) < 50 else None)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(x_key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
