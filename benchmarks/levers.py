"""Which lever buys the most representation per CPU-minute? Short equal-time runs of the headline configuration.

    python benchmarks/levers.py --minutes 15 --out RUNS/levers --json benchmarks/results/levers.json
    python benchmarks/levers.py --arms base,d1 --minutes 15 --out RUNS/levers      # a subset

Each arm is the Fashion-MNIST benchmark's configuration (``small32`` base with ``fashion_mnist.DEFAULT_SETS``: bf16,
x2-wide encoder) with one change (``ARMS``), trained alone for ``--minutes`` of wall clock on this machine (run
one arm at a time, nothing else heavy beside it) with the periodic fast probe on train_val every
``--probe-images`` images seen, in ``OUT/<arm>-s<SEED>`` (resumable: an interrupted arm trains on for the rest of
its minutes; a finished arm, one with ``arm.json``, is read back). The probes' own time is taken off the clock:
each point's ``train_minutes`` is its wall clock less the ``eval_seconds`` of the evaluations before it, so an arm
that runs more evaluations (a faster iteration, a larger batch) is not charged for them. Arms are compared at the
same training minutes (linear interpolation of train_val top-1 between the probe points, in points against
``base``), and each arm's iteration count and pace are printed, so a fixed ``--steps`` run reproduces its end point
on any machine. One seed per arm unless ``--seeds``: the fast probe moves by ~0.5-1 point between seeds at these
lengths (BENCHMARKS.md), so only gaps beyond that are read as a lever's effect. Every arm's curve ends with the
same probe on its last checkpoint (outside the clock), so all arms have a point at their end of training.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from bigbigan.evaluation.features import load_models
from bigbigan.evaluation.periodic import PeriodicEval
from bigbigan.evaluation.report import train_val_curve, training_minutes
from bigbigan.files import atomic_write_text, read_jsonl
from bigbigan.presets import resolve
from bigbigan.runtime import tune_allocator
from bigbigan.workflows import train as run_training

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fashion_mnist import DEFAULT_SETS

# name -> (what it changes, overrides on top of the headline configuration). None of these is a paper setting
# except base (the paper's 2 D steps per E+G step, equal learning rates for E and G).
ARMS: dict[str, tuple[str, list[str]]] = {
    "base": ("the headline configuration (lr 2e-4 for G, E and D; 2 D steps per E+G step; batch 32)", []),
    "d1": ("1 D step per E+G step (D:EG balance; ~1/3 less work per iteration)", ["optim.d_steps=1"]),
    "lr2x": ("every learning rate x2 (4e-4)", ["optim.lr_g=4e-4", "optim.lr_d=4e-4"]),
    "elr0.5": ("E learning rate x0.5 (the other direction of the paper's ↑E LR)", ["optim.e_lr_mult=0.5"]),
    "b64": ("batch 64 (the same learning rates)", ["optim.batch_size=64"]),
    "ew3": ("x3-wide encoder (1,536-d AvePool feature)", ["model.encoder.width=3"]),
}


def config(arm: str, seed: int, minutes: float, probe_images: int, sets: list[str]):
    over = [*DEFAULT_SETS, "data.source=fashion-mnist", f"train.seed={seed}", *ARMS[arm][1], *sets]
    cfg = resolve("small32", "base", over)
    batch = cfg.optim.batch_size
    if probe_images % batch:
        raise SystemExit(f"--probe-images {probe_images} is not a multiple of arm {arm}'s batch size {batch}")
    return resolve("small32", "base", [*over, f"train.minutes={minutes}", "train.steps=100000000",
                                       f"train.eval_every={probe_images // batch}"])


def curve(run: Path) -> list[dict]:
    """The run's train_val points with the probes' own time taken off the clock (``train_minutes``)."""
    spent = {}
    total = 0.0
    for r in read_jsonl(run / "metrics.jsonl"):
        if "train_val_top1" in r:
            spent[r["step"]] = total  # evaluation seconds before this one
            total += r.get("eval_seconds", 0.0)
    out = []
    for p in train_val_curve(run):
        if p["minutes"] is None:
            continue
        out.append({"step": p["step"], "minutes": p["minutes"], "train_minutes": p["minutes"] - spent[p["step"]] / 60,
                    "train_val_top1": 100 * p["train_val_top1"]})
    return out


def at(points: list[dict], minutes: float) -> float | None:
    """train_val top-1 at ``minutes`` of training, linear between the neighbouring probe points."""
    for a, b in itertools.pairwise(points):
        if a["train_minutes"] <= minutes <= b["train_minutes"]:
            w = (minutes - a["train_minutes"]) / (b["train_minutes"] - a["train_minutes"])
            return a["train_val_top1"] + w * (b["train_val_top1"] - a["train_val_top1"])
    return None


def save_arm(run: Path, res: dict) -> dict:
    """Record a finished arm (``arm.json``: its figures and curve), and return it."""
    atomic_write_text(run / "arm.json", json.dumps(res, indent=1) + "\n")
    return res


def train_arm(arm: str, seed: int, args) -> dict:
    run = args.out / f"{arm}-s{seed}"
    record = run / "arm.json"
    if record.is_file():
        return json.loads(record.read_text())
    done = training_minutes(read_jsonl(run / "stats.jsonl")) if (run / "stats.jsonl").is_file() else 0.0
    cfg = config(arm, seed, max(args.minutes - done, 0.01), args.probe_images, args.set)
    summary = run_training(cfg, run, progress=sys.stderr.isatty())
    if summary["stopped_by"] not in ("steps", "minutes"):
        raise SystemExit(f"{run}: stopped by {summary['stopped_by']}; the same command continues it")
    evals = sum(r.get("eval_seconds", 0.0) for r in read_jsonl(run / "metrics.jsonl"))
    wall = 60 * done + summary["seconds"]  # all sessions, probes and checkpoints included
    res = {"arm": arm, "seed": seed, "change": ARMS[arm][0], "sets": ARMS[arm][1], "iterations": summary["step"],
           "batch": cfg.optim.batch_size, "wall_minutes": wall / 60, "probe_minutes": evals / 60,
           "s_per_it": (wall - evals) / summary["step"], "curve": curve(run)}
    return save_arm(run, res)


def with_final_probe(run: Path, res: dict) -> dict:
    """The arm's curve ends with the fast probe of its last checkpoint (EMA encoder, standing statistics: what a
    periodic probe at that step would have measured), run outside the clock, at its end of training; kept in
    ``arm.json``."""
    if res["curve"] and res["curve"][-1]["step"] == res["iterations"]:
        return res
    loaded = load_models(run)
    top1 = PeriodicEval(loaded.cfg).probe(loaded.E)
    res["curve"].append({"step": res["iterations"], "minutes": res["wall_minutes"],
                         "train_minutes": res["wall_minutes"] - res["probe_minutes"], "train_val_top1": 100 * top1,
                         "final": True})
    return save_arm(run, res)


def compare(results: list[dict]) -> dict:
    """Each arm's mean train_val top-1 over seeds at common training minutes, and its gap to base."""
    common = min(r["curve"][-1]["train_minutes"] for r in results)
    first = max(r["curve"][0]["train_minutes"] for r in results)  # before it some arm has no probe yet
    first = math.ceil(10 * first) / 10
    marks = sorted({first, round((first + common) / 2, 1), common})
    out = {"minutes": marks, "arms": {}}
    for arm in dict.fromkeys(r["arm"] for r in results):
        runs = [r for r in results if r["arm"] == arm]
        vals = [[at(r["curve"], m) for r in runs] for m in marks]
        out["arms"][arm] = {"seeds": [r["seed"] for r in runs], "top1": [statistics.fmean(v) for v in vals],
                            "per_seed": vals, "iterations": [r["iterations"] for r in runs],
                            "s_per_it": statistics.fmean(r["s_per_it"] for r in runs), "change": runs[0]["change"]}
    if "base" in out["arms"]:
        b = out["arms"]["base"]["top1"]
        for a in out["arms"].values():
            a["gap"] = [x - y for x, y in zip(a["top1"], b)]
    return out


def table(cmp: dict) -> str:
    ms = cmp["minutes"]
    head = " | ".join(f"{m:.1f} min" for m in ms)
    lines = [f"| arm | change | s/it | iterations | train_val top-1 at {head} | gap to base at {ms[-1]:.1f} min |",
             "|---|---|---|---|" + "---|" * len(ms) + "---|"]
    for name, a in cmp["arms"].items():
        vals = " | ".join(f"{v:.2f}%" for v in a["top1"])
        gap = f"{a['gap'][-1]:+.2f}" if "gap" in a else ""
        its = ", ".join(f"{i:,}" for i in a["iterations"])
        lines.append(f"| {name} | {a['change']} | {a['s_per_it']:.3f} | {its} | {vals} | {gap} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from: {', '.join(ARMS)}")
    p.add_argument("--seeds", default="0")
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock training minutes per arm")
    p.add_argument("--probe-images", type=int, default=8000, help="training images seen between train_val probes")
    p.add_argument("--set", action="append", default=[], help="extra config override for every arm")
    p.add_argument("--out", type=Path, default=Path("runs/levers"))
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    for arm in arms:  # every configuration is checked before the first minute of training
        config(arm, seeds[0], args.minutes, args.probe_images, args.set)
    tune_allocator()
    started = time.time()
    results = [with_final_probe(args.out / f"{arm}-s{seed}", train_arm(arm, seed, args))
               for seed in seeds for arm in arms]
    cmp = compare(results)
    out = {"meta": {"command": "python benchmarks/levers.py " + " ".join(sys.argv[1:] if argv is None else argv),
                    "date": datetime.date.today().isoformat(),
                    "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                               f"torch {torch.__version__}",
                    "minutes": (time.time() - started) / 60, "headline_sets": DEFAULT_SETS},
           "compare": cmp, "runs": results}
    print(table(cmp))
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
