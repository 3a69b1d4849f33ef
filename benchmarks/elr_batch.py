"""Is the paper's ↑E LR (E's learning rate x10) a large-batch effect? Its cost at two batch sizes, equal images seen.

    python benchmarks/elr_batch.py --seeds 0,1,2 --images 25600 --out RUNS/elr-batch --json benchmarks/results/elr_batch.json

At batch 32 the 10x E learning rate costs ~8-13 points of Cls. on Fashion-MNIST (BENCHMARKS.md, Table 1 at small32),
where the paper (batch 2048) gains 2.9. For every batch size in ``--batches``, seed and E learning-rate multiplier
(1 and ``--mult``) this trains ``small32`` base (bf16; the paper's encoder, ResNet x1 at G's resolution) on the
Fashion-MNIST training split for ``--images / batch`` iterations in ``OUT/b<B>-elr<M>-s<SEED>`` (resumable: rerunning
continues the runs), with the periodic fast probe on train_val every ``--probe-images`` images seen. It then reads
each run's train_val curve and reports, per batch size, the gap (x``--mult`` minus x1, in points) at every probe
point, mean over seeds, with Welch's t-test at the last one; runs go seed by seed, so an interrupted command leaves
whole seeds behind it. The learning rates are the configuration's at every batch size (no scaling rule), so the
larger batch takes fewer, less noisy Adam steps over the same images.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from bigbigan.ablate import welch
from bigbigan.evaluation.report import train_val_curve
from bigbigan.files import atomic_write_text
from bigbigan.presets import resolve
from bigbigan.runtime import tune_allocator
from bigbigan.workflows import train as run_training


def run_dir(out: Path, batch: int, mult: float, seed: int) -> Path:
    return out / f"b{batch}-elr{mult:g}-s{seed}"


def config(batch: int, mult: float, seed: int, images: int, probe_images: int, sets: list[str]):
    for n, what in ((images, "--images"), (probe_images, "--probe-images")):
        if n % batch:
            raise SystemExit(f"{what} {n} is not a multiple of batch size {batch}: equal images seen needs whole "
                             "iterations")
    return resolve("small32", "base", ["data.source=fashion-mnist", "train.precision=bf16", f"train.seed={seed}",
                                       f"optim.batch_size={batch}", f"optim.e_lr_mult={mult}",
                                       f"train.steps={images // batch}", f"train.eval_every={probe_images // batch}",
                                       *sets])


def curve_by_images(run: Path, batch: int) -> dict[int, float]:
    """train_val top-1 in percent by images seen."""
    return {p["step"] * batch: 100 * p["train_val_top1"] for p in train_val_curve(run)}


def summarise(curves: dict, batches: list[int], mult: float, seeds: list[int]) -> dict:
    """Per batch size: each arm's mean curve and the gap (x mult - x1) per images-seen point, Welch at the last."""
    out = {}
    for b in batches:
        base = [curves.get((b, 1.0, s)) for s in seeds]
        fast = [curves.get((b, mult, s)) for s in seeds]
        pairs = [(x, y) for x, y in zip(base, fast) if x and y]
        if not pairs:
            continue
        points = sorted(set.intersection(*(set(x) & set(y) for x, y in pairs)))
        rows = []
        for n in points:
            a = [y[n] for _, y in pairs]
            c = [x[n] for x, _ in pairs]
            rows.append({"images": n, "base": statistics.fmean(c), "elr": statistics.fmean(a),
                         "gap": statistics.fmean(a) - statistics.fmean(c), "gaps": [y - x for x, y in zip(c, a)]})
        last = points[-1]
        out[str(b)] = {"seeds": len(pairs), "points": rows,
                       "welch_last": welch([y[last] for _, y in pairs], [x[last] for x, _ in pairs])}
    return out


def table(summary: dict, mult: float) -> str:
    lines = [f"| batch | seeds | images seen | x1 train_val % | x{mult:g} train_val % | gap (points) | per seed |",
             "|---|---|---|---|---|---|---|"]
    for b, s in summary.items():
        for r in s["points"]:
            per = ", ".join(f"{g:+.2f}" for g in r["gaps"])
            lines.append(f"| {b} | {s['seeds']} | {r['images']:,} | {r['base']:.2f} | {r['elr']:.2f} | "
                         f"{r['gap']:+.2f} | {per} |")
    tests = []
    for b, s in summary.items():
        w = s["welch_last"]
        ci = f", 95% interval {w['ci95'][0]:+.2f} to {w['ci95'][1]:+.2f}, p = {w['p']:.3f}" if w["p"] is not None else ""
        tests.append(f"batch {b}: gap {w['diff']:+.2f}{ci}")
    return "\n".join(lines) + "\n\nWelch at the last point: " + "; ".join(tests)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--batches", default="32,128")
    p.add_argument("--mult", type=float, default=10.0, help="E learning-rate multiplier against x1")
    p.add_argument("--images", type=int, default=25600, help="training images seen per run")
    p.add_argument("--probe-images", type=int, default=12800, help="images seen between train_val probes")
    p.add_argument("--set", action="append", default=[], help="extra config override for every run")
    p.add_argument("--out", type=Path, default=Path("runs/elr-batch"))
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    tune_allocator()
    started = time.time()
    curves = {}
    for seed in seeds:
        for b in batches:
            for mult in (1.0, args.mult):
                run = run_dir(args.out, b, mult, seed)
                summary = run_training(config(b, mult, seed, args.images, args.probe_images, args.set), run,
                                       progress=sys.stderr.isatty())
                if summary["stopped_by"] not in ("steps", "minutes"):
                    print(f"{run}: stopped by {summary['stopped_by']}; the same command continues it")
                    return 1
                curves[(b, mult, seed)] = curve_by_images(run, b)
    result = {"meta": {"command": "python benchmarks/elr_batch.py " + " ".join(sys.argv[1:] if argv is None else argv),
                       "date": datetime.date.today().isoformat(), "machine":
                       f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
                       "minutes": (time.time() - started) / 60, "mult": args.mult, "images": args.images},
              "batches": summarise(curves, batches, args.mult, seeds)}
    print(table(result["batches"], args.mult))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
