"""Standing statistics A/B: one checkpoint evaluated with and without BN standing statistics for EMA G and E.

    python benchmarks/standing_stats_ab.py RUN_DIR [--fid-samples 2000] [--probe-steps 5000] [--batches 16]

Evaluates the same checkpoint twice with ``bigbigan eval``'s own code (linear probe on the test split, AvePool
and BN+CReLU, and FID against the training split at ``--fid-samples`` images per side): once with the EMA's
copied running statistics (``standing_stats_batches=0``) and once with standing statistics over ``--batches``
seeded batches (default: the run's ``eval.standing_stats_batches``, or 16 where that is 0). Writes
``benchmarks/results/standing_stats_ab-<run name>.json`` and prints a Markdown table. The evaluation seeds
(z for FID, probe minibatches) are the same in both arms: only the BN statistics differ.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from bigbigan import dist as bdist
from bigbigan.checkpoint import load_file, resolve_checkpoint
from bigbigan.evaluation.run import evaluate
from bigbigan.files import atomic_write_text
from bigbigan.runtime import tune_allocator

ROOT = Path(__file__).resolve().parent
KEYS = ("linear_avepool_top1", "linear_bn_crelu_top1", "fid")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run directory (or checkpoint file)")
    p.add_argument("--checkpoint", choices=["latest", "best"], default="latest")
    p.add_argument("--fid-samples", type=int, default=2000, help="images per side for FID (default 2000)")
    p.add_argument("--probe-steps", type=int, default=5000, help="linear probe Adam steps (default 5000)")
    p.add_argument("--batches", type=int, help="standing-statistics batches of the 'with' arm")
    p.add_argument("--metrics", default="linear,fid", help="bigbigan eval metrics (default linear,fid)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", help="JSON path (default benchmarks/results/standing_stats_ab-<run>.json)")
    args = p.parse_args(argv)
    tune_allocator()
    bdist.init(args.device)
    batches = args.batches
    if batches is None:
        cfg = load_file(resolve_checkpoint(args.run, args.checkpoint))["config"]
        batches = int(cfg.get("eval", {}).get("standing_stats_batches", 0)) or 16
    if batches < 1:
        p.error("--batches must be >= 1 (the 'without' arm is always evaluated)")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    arms = {}
    for name, n in (("without", 0), ("with", batches)):
        arms[name] = evaluate(args.run, metrics, which=args.checkpoint, fid_samples=args.fid_samples,
                              probe_steps=args.probe_steps, standing_stats_batches=n, device=args.device,
                              pictures=False)
    if not bdist.info().is_main:
        return 0
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": str(Path(args.run).resolve()),
        "checkpoint": arms["with"]["checkpoint"],
        "step": arms["with"]["step"],
        "fid_samples": args.fid_samples,
        "probe_steps": args.probe_steps,
        "standing_stats_batches": batches,
        "without": arms["without"],
        "with": arms["with"],
        "delta_with_minus_without": {k: arms["with"][k] - arms["without"][k] for k in KEYS
                                     if isinstance(arms["with"].get(k), float)},
    }
    out = Path(args.out) if args.out else ROOT / "results" / f"standing_stats_ab-{Path(args.run).resolve().name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=2))
    print(f"| BN statistics of EMA G, E | {' | '.join(KEYS)} |")
    print(f"|---|{'---|' * len(KEYS)}")
    for name in ("without", "with"):
        label = "copied from the live networks" if name == "without" else f"standing, {batches} batches"
        cells = [f"{arms[name][k]:.4f}" if isinstance(arms[name].get(k), float) else "n/a" for k in KEYS]
        print(f"| {label} | {' | '.join(cells)} |")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
