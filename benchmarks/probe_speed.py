"""Linear-probe speed and agreement: the probe code of a git revision (A) against this tree's (B), side by side.

    python benchmarks/probe_speed.py --a-ref 5b3c1e0                     # the one-hour model's features
    python benchmarks/probe_speed.py --a-ref 5b3c1e0 --steps 500 --repeats 1 --json out.json

Features: the shipped ``fashion-mnist`` model (``bigbigan.load``) encodes its run's train_sub, train_val and test
splits once (cached in ``--cache``); the probes are those of ``bigbigan eval``: the fast probe (``linear``: lr
0.01) and the lr sweep (``linear-sweep``: 5 learning rates), each on the AvePool and the BN+CReLU feature, early
stopping on train_val, scored on test. A's ``evaluation/linear_probe.py`` is read from ``git show
A_REF:src/bigbigan/evaluation/linear_probe.py`` and imported beside B's. Each (probe, feature) cell runs A and B
in turn, ``--repeats`` times, the order alternating per repeat; the ratio is A's time over B's per repeat
(median). Agreement: B's test and train_val top-1, selected lr and step against A's.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import bigbigan
from bigbigan.data import open_split
from bigbigan.evaluation import linear_probe as probe_b

REPO = Path(__file__).resolve().parent.parent
PROBE = "src/bigbigan/evaluation/linear_probe.py"


def probe_module_at(ref: str):
    """The linear-probe module as it was at git revision ``ref`` (it imports nothing from bigbigan)."""
    text = subprocess.run(["git", "show", f"{ref}:{PROBE}"], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout
    path = Path(tempfile.mkdtemp()) / "linear_probe_a.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("linear_probe_a", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def features(name: str, cache: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    if cache.is_file():
        d = torch.load(cache, map_location="cpu", weights_only=True)
        return {k: (d[f"{k}_x"], d[f"{k}_y"]) for k in ("train", "val", "test")}
    model = bigbigan.load(name)
    out = {}
    for key, split in (("train", "train_sub"), ("val", "train_val"), ("test", "test")):
        images, labels = open_split(model.cfg, split).as_tensors()
        out[key] = (model.encode(images), labels)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"{k}_{t}": v[i] for k, v in out.items() for i, t in enumerate("xy")}, cache)
    return out


def run_cell(mod, mode: str, data: dict, steps: int) -> tuple[float, dict]:
    (tr_f, tr_y), (va_f, va_y), (te_f, te_y) = data["train"], data["val"], data["test"]
    fn = mod.sweep_linear_probe if mode == "linear-sweep" else mod.train_linear_probe
    t0 = time.perf_counter()
    r = fn(tr_f, tr_y, te_f, te_y, num_classes=10, steps=steps, val_x=va_f, val_y=va_y)
    return time.perf_counter() - t0, {"top1": r.top1, "train_val_top1": r.val_top1, "lr": r.lr, "step": r.steps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a-ref", required=True, help="git revision of side A's probe code")
    p.add_argument("--model", default="fashion-mnist", help="a shipped name, run directory or export")
    p.add_argument("--cache", default="benchmarks/runs/probe_features.pt", help="features file (made once)")
    p.add_argument("--steps", type=int, default=5000, help="probe steps (bigbigan eval: 5000)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--modes", default="linear,linear-sweep")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    probe_a = probe_module_at(args.a_ref)
    data = features(args.model, Path(args.cache))
    crelu = {}
    mean, std = data["train"][0].mean(0), data["train"][0].std(0)
    for k, (f, y) in data.items():
        crelu[k] = (probe_b.bn_crelu(f, mean, std), y)
    feats = {"avepool": data, "bn-crelu": crelu}
    load = os.getloadavg()[0]
    cells = []
    for mode in args.modes.split(","):
        for feat, d in feats.items():
            times = {"A": [], "B": []}
            res = {}
            for rep in range(args.repeats):
                for side in ("AB" if rep % 2 == 0 else "BA"):
                    t, r = run_cell(probe_a if side == "A" else probe_b, mode, d, args.steps)
                    times[side].append(t)
                    res[side] = r
            ratio = statistics.median(a / b for a, b in zip(times["A"], times["B"], strict=True))
            cell = {"mode": mode, "feature": feat, "seconds_a": times["A"], "seconds_b": times["B"],
                    "speedup": ratio, "a": res["A"], "b": res["B"],
                    "top1_diff_points": 100 * (res["B"]["top1"] - res["A"]["top1"])}
            cells.append(cell)
            print(f"{mode:13s} {feat:9s} A {statistics.median(times['A']):7.1f} s  B {statistics.median(times['B']):6.1f} s"
                  f"  A/B {ratio:5.2f}x  test top-1 A {100 * res['A']['top1']:.2f}% B {100 * res['B']['top1']:.2f}%"
                  f"  lr A {res['A']['lr']:g} B {res['B']['lr']:g}  step A {res['A']['step']} B {res['B']['step']}",
                  flush=True)
    total_a = sum(statistics.median(c["seconds_a"]) for c in cells)
    total_b = sum(statistics.median(c["seconds_b"]) for c in cells)
    print(f"all cells: A {total_a:.1f} s, B {total_b:.1f} s ({total_a / total_b:.2f}x); load average {load:.1f} "
          f"at the start, {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "load_average_start": load, "steps": args.steps,
            "a_ref": args.a_ref, "seconds_a_total": total_a, "seconds_b_total": total_b, "cells": cells,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
