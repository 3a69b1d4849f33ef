"""Inception (FID/KID features) speed and FID agreement of its precisions, side by side (issue 16, item 3).

    python benchmarks/inception_speed.py                                  # 2,000 train vs 2,000 test images
    python benchmarks/inception_speed.py --images 200 --modes fp32,fp32-eager,bf16   # a quick look
    python benchmarks/inception_speed.py --json benchmarks/results/inception_speed.json

Real Fashion-MNIST images at 32 px (the first ``--images`` of the train split against the first ``--images`` of
the test split, as FID's two sides) go through the full feature path (``InceptionFeatures``: 8-bit
quantisation, TF resize to 299, Inception pool3) once per precision mode. Modes run batch by batch in turn
(fp32, bf16, fp32, bf16, ...), so the load of a shared machine falls on all alike; each batch's time ratio
against the first mode gives the speed-up (median and range over batches). FID(train, test) is computed from
each mode's features; the figure is its relative difference to the first mode's (the issue's bound: 1%).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from bigbigan.data import load_eval_tensors, open_source
from bigbigan.evaluation.fid import feature_stats, frechet_distance, kid
from bigbigan.evaluation.inception import FEATURE_PRECISIONS, InceptionFeatures
from bigbigan.runtime import tune_allocator


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000, help="images per side (train and test)")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--modes", default="fp32,bf16", help=f"comma list of {', '.join(FEATURE_PRECISIONS)}; the "
                   "first is the reference")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    nets = {m: InceptionFeatures.load(precision=m) for m in modes}
    sides = {split: load_eval_tensors(open_source(args.data, None, split), resolution=32, channels=1,
                                      limit=args.images)[0] for split in ("train", "test")}
    load = os.getloadavg()[0]
    feats: dict[str, dict[str, list[torch.Tensor]]] = {m: {s: [] for s in sides} for m in modes}
    times: dict[str, list[float]] = {m: [] for m in modes}
    with torch.no_grad():
        for m in modes:  # warm-up (oneDNN primitives, TorchScript profiling runs), untimed
            for _ in range(2):
                nets[m](sides["test"][: args.batch])
        start = time.perf_counter()
        for split, x in sides.items():
            for i in range(0, x.shape[0], args.batch):
                for m in modes:
                    t = time.perf_counter()
                    feats[m][split].append(nets[m](x[i : i + args.batch]))
                    times[m].append(time.perf_counter() - t)
                done = sum(len(v) for v in feats[modes[-1]].values()) * args.batch
                print(f"\r{done}/{2 * args.images} images per mode, {time.perf_counter() - start:.0f} s",
                      end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    ref = modes[0]
    out: dict = {"meta": {"command": "python benchmarks/inception_speed.py " + " ".join(
        sys.argv[1:] if argv is None else argv), "date": datetime.date.today().isoformat(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "load_average_at_start": load, "load_average_at_end": os.getloadavg()[0],
        "images_per_side": args.images, "batch": args.batch}, "modes": {}}
    for m in modes:
        f = {s: torch.cat(v) for s, v in feats[m].items()}
        fid = frechet_distance(*feature_stats(f["train"]), *feature_stats(f["test"]))
        kid_mean, _ = kid(f["train"], f["test"])
        ratios = [a / b for a, b in zip(times[ref], times[m])]
        out["modes"][m] = {"fid": fid, "kid": kid_mean, "img_per_s_median": args.batch / statistics.median(times[m]),
                           "speedup_median": statistics.median(ratios), "speedup_min": min(ratios),
                           "speedup_max": max(ratios), "batches": len(times[m]),
                           "max_abs_feature_diff": float((f["test"] - torch.cat(feats[ref]["test"])).abs().max())}
    r0 = out["modes"][ref]
    for m, r in out["modes"].items():
        r["fid_rel_diff"] = (r["fid"] - r0["fid"]) / r0["fid"]
        print(f"{m:11s} FID {r['fid']:.4f} ({r['fid_rel_diff']:+.3%} vs {ref}), KID {r['kid']:.5f}, "
              f"{r['img_per_s_median']:.1f} img/s (under load), speed-up vs {ref} {r['speedup_median']:.2f}x "
              f"[{r['speedup_min']:.2f}-{r['speedup_max']:.2f}] over {r['batches']} batches, "
              f"max |feature diff| {r['max_abs_feature_diff']:.3g}")
    print(f"load average {load:.1f} at the start, {out['meta']['load_average_at_end']:.1f} at the end; "
          f"{torch.get_num_threads()} threads")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
