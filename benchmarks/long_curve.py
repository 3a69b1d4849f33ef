"""Where the learning curve of one long run levels: train_val accuracy and a generation measure against iterations.

    python benchmarks/long_curve.py RUN                       # curve from RUN/metrics.jsonl, CFD of kept checkpoints
    python benchmarks/long_curve.py RUN --cfd-every 2000 --json benchmarks/results/fashion_mnist_long_curve.json \
        --png docs/fashion_mnist_long_curve.png --compare benchmarks/results/fashion_mnist.json

The run is any training with a periodic fast probe (``train.eval_every``), e.g. the long run of
``benchmarks/fashion_mnist.py --minutes 240 --set train.keep_ckpts=100`` (keeping every checkpoint lets this script
score the generator along the way). It reads:

- the periodic train_val top-1 of the fast probe (``RUN/metrics.jsonl``) with the minutes of training behind it;
- for every kept checkpoint at a multiple of ``--cfd-every`` iterations, the Fréchet distance of ``--cfd-samples``
  EMA samples to as many training images in the small Fashion-MNIST classifier's feature space
  (``classifier_fd.py``: about a minute per checkpoint for 10K samples, where a 10K Inception FID costs 6-20);
  scores already computed are kept in ``RUN/long_curve_cfd.json``, so a rerun scores only new checkpoints.

"Levels" is read from the gain per 1,000 iterations between successive windows of ``--window`` iterations (the
mean train_val top-1 of the evaluations in each window, so one noisy probe does not decide it): the curve is
called level from the first window whose gain over the previous one is below ``--flat`` points per 1,000
iterations and stays below it for every later window. ``--compare`` overlays the train_val curves of another
results file (the one-hour table's seeds) on the picture.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from tqdm import tqdm

import bigbigan
from bigbigan.checkpoint import list_checkpoints
from bigbigan.evaluation.report import train_val_curve
from bigbigan.files import atomic_write_text

ROOT = Path(__file__).resolve().parent


def train_val_points(run: Path) -> list[dict]:
    """The periodic fast-probe evaluations of ``run``: step, minutes of training over all its sessions and
    train_val top-1 in percent (``metrics.jsonl`` records a fraction)."""
    pts = [{**p, "train_val_top1": 100 * p["train_val_top1"]} for p in train_val_curve(run)]
    if not pts:
        raise SystemExit(f"long_curve: {run / 'metrics.jsonl'} holds no periodic train_val evaluation "
                         "(train with --set train.eval_every=N)")
    return pts


def window_gains(points: list[dict], window: int) -> list[dict]:
    """Mean train_val top-1 over consecutive windows of ``window`` iterations ((0, w], (w, 2w], ...) and each
    window's gain over the previous one, in points per 1,000 iterations."""
    buckets: dict[int, list[float]] = {}
    for p in points:
        buckets.setdefault((p["step"] - 1) // window, []).append(p["train_val_top1"])
    out: list[dict] = []
    for i in sorted(buckets):
        vals = buckets[i]
        rec = {"from_step": i * window, "to_step": (i + 1) * window, "evaluations": len(vals),
               "mean_top1": sum(vals) / len(vals)}
        if out and out[-1]["to_step"] == rec["from_step"]:
            rec["gain_per_1000"] = (rec["mean_top1"] - out[-1]["mean_top1"]) * 1000 / window
        out.append(rec)
    return out


def level_from(windows: list[dict], flat: float) -> int | None:
    """The first iteration from which every window's gain per 1,000 iterations stays below ``flat``; None if the
    last window still gains ``flat`` or more (the curve has not levelled within the run)."""
    start = None
    for w in windows:
        g = w.get("gain_per_1000")
        if g is None:
            continue
        if g < flat:
            start = w["from_step"] if start is None else start
        else:
            start = None
    return start


def cfd_scores(run: Path, every: int, samples: int) -> dict[int, dict]:
    """CFD / KID (classifier features) of the EMA generator at each kept checkpoint whose step is a multiple of
    ``every``; cached in ``run/long_curve_cfd.json`` by step (for the same sample count)."""
    cache_path = run / "long_curve_cfd.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    if cache.get("samples") != samples:
        cache = {"samples": samples, "steps": {}}
    todo = [(s, p) for s, p in list_checkpoints(run) if s % every == 0 and str(s) not in cache["steps"]]
    if todo:
        # classifier_fd is this folder's sibling script (on sys.path when run as a script, see main)
        from classifier_fd import distances, features, load_classifier, split_tensors

        net = load_classifier()
        f_train = features(net, split_tensors("train", samples)[0])
        for step, path in tqdm(todo, desc="CFD of checkpoints", unit="ckpt"):
            rec = distances(f_train, features(net, bigbigan.load(path).sample(samples, seed=0)))
            cache["steps"][str(step)] = rec
            atomic_write_text(cache_path, json.dumps(cache, indent=2))  # each score kept as soon as it exists
    return {int(s): r for s, r in cache["steps"].items()}


def plot(points: list[dict], cfd: dict[int, dict], compare: dict[str, list[dict]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6 if cfd else 3.4), dpi=110)
    axes = fig.subplots(1, 2 if cfd else 1, squeeze=False)[0]
    ax = axes[0]
    for name, pts in compare.items():
        ax.plot([p["step"] for p in pts], [p["train_val_top1"] for p in pts], color="0.6", lw=1, label=name)
    ax.plot([p["step"] for p in points], [p["train_val_top1"] for p in points], marker=".", color="C0",
            label="long run")
    ax.set_xlabel("iteration")
    ax.set_ylabel("train_val top-1 (%), fast probe")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    timed = [p for p in points if p.get("minutes")]
    if len(timed) >= 2:  # a minutes axis on top, from the run's own pace (evaluations included)
        rate = (timed[-1]["minutes"] - timed[0]["minutes"]) / (timed[-1]["step"] - timed[0]["step"])
        off = timed[0]["minutes"] - rate * timed[0]["step"]
        top = ax.secondary_xaxis("top", functions=(lambda s: off + rate * s, lambda m: (m - off) / rate))
        top.set_xlabel("minutes of this run (approx.)", fontsize=8)
    if cfd:
        steps = sorted(cfd)
        bx = axes[1]
        bx.plot(steps, [cfd[s]["cfd"] for s in steps], marker="o", color="C1")
        bx.set_yscale("log")
        bx.set_xlim(ax.get_xlim())  # the same iteration axis as the accuracy panel
        bx.set_xlabel("iteration")
        bx.set_ylabel("CFD, EMA samples vs training (log)")
        bx.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory with metrics.jsonl (and checkpoints for the CFD)")
    p.add_argument("--window", type=int, default=2000, help="iterations per window for the gain (default 2000)")
    p.add_argument("--flat", type=float, default=0.25,
                   help="points per 1,000 iterations below which the curve counts as level (default 0.25)")
    p.add_argument("--cfd-every", type=int, default=2000, help="score checkpoints at multiples of this; 0: none")
    p.add_argument("--cfd-samples", type=int, default=10000)
    p.add_argument("--compare", help="a fashion_mnist.py results JSON whose seeds' train_val curves to overlay")
    p.add_argument("--json", help="write the curve, the windows and the CFD here")
    p.add_argument("--png", help="write the picture here")
    args = p.parse_args(argv)
    run = Path(args.run)
    if not run.is_dir():
        raise SystemExit(f"long_curve: {run} is not a run directory")
    if args.window < 1 or args.flat <= 0:
        raise SystemExit("long_curve: --window must be >= 1 and --flat > 0")

    points = train_val_points(run)
    windows = window_gains(points, args.window)
    level = level_from(windows, args.flat)
    sys.path.insert(0, str(ROOT))
    cfd = cfd_scores(run, args.cfd_every, args.cfd_samples) if args.cfd_every > 0 else {}
    best = max(points, key=lambda q: q["train_val_top1"])

    print(f"{len(points)} evaluations, iterations {points[0]['step']}-{points[-1]['step']}; best train_val "
          f"{best['train_val_top1']:.2f}% at iteration {best['step']}")
    for w in windows:
        gain = f"{w['gain_per_1000']:+.2f} points / 1,000 it" if "gain_per_1000" in w else ""
        print(f"  iterations {w['from_step']:>6}-{w['to_step']:<6} mean {w['mean_top1']:.2f}% "
              f"({w['evaluations']} evaluations) {gain}")
    print(f"level (gain < {args.flat} / 1,000 it from then on): "
          + (f"from iteration {level}" if level is not None else "not within this run"))
    for s in sorted(cfd):
        print(f"  CFD at {s}: {cfd[s]['cfd']:.3f} (KID {cfd[s]['ckid']:.4f} ± {cfd[s]['ckid_std']:.4f})")

    compare = {}
    if args.compare:
        res = json.loads(Path(args.compare).read_text())
        for seed in res.get("trained", {}).get("seeds", []):
            if seed.get("train_val_curve"):
                compare[f"one-hour table, seed {seed.get('seed')}"] = [  # fractions there, percent here
                    {**q, "train_val_top1": 100 * q["train_val_top1"]} for q in seed["train_val_curve"]]
    if args.png:
        plot(points, cfd, compare, Path(args.png),
             f"{run.name}: fast-probe train_val top-1 and CFD along training ({points[-1]['step']} iterations)")
    if args.json:
        out = {"run": str(run), "date": datetime.date.today().isoformat(), "command": " ".join(sys.argv),
               "points": points, "windows": windows, "window": args.window, "flat": args.flat,
               "level_from_step": level, "best": best, "cfd_samples": args.cfd_samples if cfd else None,
               "cfd": {str(s): cfd[s] for s in sorted(cfd)}}
        atomic_write_text(Path(args.json), json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
