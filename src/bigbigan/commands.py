"""The commands that use a trained model as a tool: export, encode, sample, reconstruct, neighbours.

Each takes MODEL as ``bigbigan.load`` does (run directory, checkpoint, exported directory or shipped name) and
turns files into calls of ``bigbigan.model.BigBiGAN`` and its results back into files (features as .npy /
.safetensors / .csv, PNG grids).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor
from tqdm import tqdm

from .data import open_source
from .data.errors import DataError
from .data.folder import list_images, scan_folder
from .evaluation.knn import knn_neighbours
from .evaluation.pictures import neighbours_grid, reconstruction_grid, save_grid, to_uint8
from .export import export_run
from .files import replacing
from .model import BigBiGAN, load

FEATURE_FORMATS = (".npy", ".safetensors", ".csv")
CHUNK = 1024  # images decoded and encoded at a time by ``bigbigan encode`` (bounds memory on big folders)


def _model(args: argparse.Namespace) -> BigBiGAN:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load(args.model, checkpoint=args.checkpoint, device=device)


def image_paths(items: list[str]) -> list[str]:
    """Image files named by ``items``: files as given, directories expanded to their images (recursive, sorted)."""
    paths: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise DataError(f"no images found in {p}")
            paths += found
        elif p.is_file():
            paths.append(str(p))
        else:
            raise DataError(f"{p} does not exist")
    return paths


# ---- export ---------------------------------------------------------------------------------------------------


def export_cmd(args: argparse.Namespace) -> int:
    out = export_run(args.run, args.out, which=args.checkpoint, dtype=args.dtype, stats_images=args.stats_images,
                     data_dir=args.data_dir, device=args.device or "cpu",
                     standing_stats_batches=args.standing_stats_batches)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"exported: {out} (config.json, model.safetensors; {size:.1f} MiB); load it with bigbigan.load({str(out)!r})")
    return 0


# ---- encode ---------------------------------------------------------------------------------------------------


def _encode_items(args: argparse.Namespace):
    """(count, names [N], labels int64 [N], chunk iterator of images) for --images or --data."""
    if args.images:
        root = Path(args.images)
        if not root.is_dir():
            raise DataError(f"--images {root} is not a directory")
        files, labels, _ = scan_folder(root)
        if not files:
            raise DataError(f"no images found in {root}")
        names = [str(Path(f).relative_to(root)) for f in files]
        lab = torch.tensor(labels if labels else [-1] * len(files), dtype=torch.int64)
        chunks = (files[i: i + CHUNK] for i in range(0, len(files), CHUNK))
        return len(files), names, lab, chunks
    source = open_source(args.data, args.data_dir, args.split)
    n = len(source)
    tensors = source.as_tensors()
    if tensors is not None:
        images, lab = tensors
        chunks = (images[i: i + CHUNK] for i in range(0, n, CHUNK))
    else:
        lab = torch.tensor([int(source.labels[i]) for i in range(n)]) if hasattr(source, "labels") else None
        chunks = ([source[j][0] for j in range(i, min(n, i + CHUNK))] for i in range(0, n, CHUNK))
    files = getattr(source, "files", None)
    names = [files[i] for i in range(n)] if files is not None else [f"{args.data}/{args.split}/{i}" for i in range(n)]
    if lab is None:
        lab = torch.full((n,), -1, dtype=torch.int64)
    return n, names, lab.to(torch.int64), chunks


def save_features(path: str | Path, features: Tensor, labels: Tensor, names: list[str]) -> Path:
    """Features [N, F], labels [N] and names [N] in one file, by extension:

    - .npy: a structured array (fields ``file``, ``label``, ``features``), readable without pickle:
      ``a = np.load(path); a["features"]``;
    - .safetensors: tensors ``features`` and ``labels``, the names as JSON in the metadata key ``files``;
    - .csv: columns file, label, f0 .. f{F-1}.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in FEATURE_FORMATS:
        raise DataError(f"--out {path}: unknown format {ext or '(none)'!r}; use one of {', '.join(FEATURE_FORMATS)}")
    f = features.float().numpy()
    with replacing(path) as tmp:
        if ext == ".npy":
            width = max((len(s) for s in names), default=1)
            arr = np.empty(len(names), dtype=[("file", f"U{width}"), ("label", "i8"), ("features", "f4", f.shape[1:])])
            arr["file"], arr["label"], arr["features"] = names, labels.numpy(), f
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        elif ext == ".safetensors":
            save_file({"features": features.float().contiguous(), "labels": labels.contiguous()}, str(tmp),
                      metadata={"files": json.dumps(names)})
        else:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["file", "label", *(f"f{i}" for i in range(f.shape[1]))])
                for name, y, row in zip(names, labels.tolist(), f, strict=True):
                    w.writerow([name, y, *(f"{v:.7g}" for v in row)])
    return path


def encode_cmd(args: argparse.Namespace) -> int:
    if Path(args.out).suffix.lower() not in FEATURE_FORMATS:  # refuse before the encoding work
        raise DataError(f"--out {args.out}: unknown format; use one of {', '.join(FEATURE_FORMATS)}")
    model = _model(args)
    n, names, labels, chunks = _encode_items(args)
    feats = []
    with tqdm(total=n, unit="img", desc=f"encode ({args.feature})", disable=args.no_progress,
              dynamic_ncols=True, leave=False) as bar:
        for chunk in chunks:
            f = model.encode(chunk, args.feature, batch_size=args.batch_size, progress=False)
            feats.append(f)
            bar.update(f.shape[0])
    features = torch.cat(feats)
    out = save_features(args.out, features, labels, names)
    print(f"encoded {n} images -> {out} ({args.feature}, {features.shape[1]} dims)")
    return 0


# ---- sample / reconstruct / neighbours -------------------------------------------------------------------------


def save_images(images: Tensor, folder: str | Path, prefix: str = "sample") -> list[Path]:
    """One PNG per image [N, C, H, W] in [-1, 1] (grey images as 8-bit grey)."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = to_uint8(images)  # [N, H, W, 3]
    paths = []
    for i, a in enumerate(arrays):
        p = folder / f"{prefix}-{i:05d}.png"
        Image.fromarray(a[..., 0] if images.shape[1] == 1 else a).save(p)
        paths.append(p)
    return paths


def sample_cmd(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise DataError(f"-n must be at least 1, got {args.n}")
    model = _model(args)
    x = model.sample(args.n, seed=args.seed, progress=not args.no_progress)
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        save_grid(x, out, nrow=args.nrow)
        print(f"{args.n} samples (seed {args.seed}) -> {out}")
    else:
        save_images(x, out)
        print(f"{args.n} samples (seed {args.seed}) -> {out}/sample-*.png")
    return 0


def reconstruct_cmd(args: argparse.Namespace) -> int:
    model = _model(args)
    paths = image_paths(args.images)
    rec = model.reconstruct(paths, progress=not args.no_progress)
    x = model.preprocess(paths, resolution=model.resolution)  # inputs as G sees the data, above the outputs
    out = reconstruction_grid(x, rec, args.out, ncol=args.ncol)
    print(f"{len(paths)} reconstructions G(E(x)) -> {out} (inputs above, reconstructions below)")
    return 0


def neighbours_cmd(args: argparse.Namespace) -> int:
    """Nearest index images of each query by the paper's D_p distance (App. C) on AvePool features."""
    model = _model(args)
    queries = image_paths(args.query)
    index = image_paths([args.index])
    progress = not args.no_progress
    q_f = model.encode(queries, progress=progress)
    i_f = model.encode(index, progress=progress)
    dist, idx = knn_neighbours(i_f, q_f, args.k, args.p)  # [Q, k], nearest first
    for qi, q in enumerate(queries):
        print(q)
        for rank, (d, j) in enumerate(zip(dist[qi].tolist(), idx[qi].tolist(), strict=True), 1):
            print(f"  {rank:>3}  D{args.p}={d:.4f}  {index[j]}")
    if args.out:
        q_img = model.preprocess(queries, resolution=model.resolution)
        n_img = model.preprocess([index[j] for j in idx.flatten().tolist()], resolution=model.resolution)
        neighbours_grid(q_img, n_img.view(len(queries), idx.shape[1], *n_img.shape[1:]), args.out)
        print(f"grid: {args.out} (each row: the query, outlined, then its neighbours nearest first)")
    return 0
