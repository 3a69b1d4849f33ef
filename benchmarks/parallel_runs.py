"""Training iterations per second on this CPU: one run using every thread against several single-thread runs
side by side (what ``bigbigan ablate --jobs`` and ``benchmarks/fashion_mnist.py`` seeds in parallel buy).

    python benchmarks/parallel_runs.py --rounds 3 --seconds 60

Each round measures A (one process with ``--threads`` threads) and B (``--jobs`` processes with
``--threads / --jobs`` threads each, at the same time), in alternating order (A B, then B A) so drift of the
machine falls on both alike. Every process builds the trainer of the published configuration (small32 base with
``fashion_mnist.DEFAULT_SETS``: bf16, x2 encoder; ``--set`` adds overrides) on random images held in memory,
runs ``--warmup`` iterations, waits for a start time common to the round's processes, then counts the
iterations it completes in ``--seconds``. A case's figure is iterations per second summed over its processes;
prints each round, the medians and the ratio B / A (above 1: side-by-side runs learn more per second in all).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fashion_mnist import DEFAULT_SETS
from iteration_ab import random_image_trainer


def child(threads: int, sets: list[str], warmup: int, start: float, seconds: float) -> None:
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = random_image_trainer("small32", sets, run_dir)
        for _ in range(warmup):
            trainer.train_iteration()
        late = time.time() > start  # the warm-up overran the common start: the window is shorter, still fair
        time.sleep(max(0.0, start - time.time()))
        t0, n = time.time(), 0
        while time.time() < start + seconds:
            trainer.train_iteration()
            n += 1
        print(json.dumps({"iterations": n, "seconds": time.time() - t0, "late": late}))


def measure(n_procs: int, threads: int, args) -> float:
    """Summed iterations per second of ``n_procs`` processes with ``threads`` threads each, run at once."""
    start = time.time() + args.lead
    cmd = [sys.executable, __file__, "--child", "--threads", str(threads), "--start", repr(start),
           "--seconds", str(args.seconds), "--warmup", str(args.warmup), *[a for s in args.set for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(n_procs)]
    recs = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a measuring process failed (exit {proc.returncode})")
        recs.append(json.loads(out.strip().splitlines()[-1]))
    if any(r["late"] for r in recs):
        print(f"  note: a warm-up overran the {args.lead:.0f} s lead; raise --lead", flush=True)
    return sum(r["iterations"] / r["seconds"] for r in recs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of the one run A (default: cores)")
    p.add_argument("--jobs", type=int, default=2, help="processes of B, sharing --threads (default 2)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60.0, help="measuring window per case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lead", type=float, default=40.0, help="seconds from launch to the common start")
    p.add_argument("--set", action="append", default=[], help="config overrides (after DEFAULT_SETS)")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    sets = [*DEFAULT_SETS, *args.set]
    if args.child:
        child(args.threads, sets, args.warmup, args.start, args.seconds)
        return
    per_job = max(1, args.threads // args.jobs)
    rate: dict[str, list[float]] = {"A": [], "B": []}
    for r in range(args.rounds):
        for name in (("A", "B") if r % 2 == 0 else ("B", "A")):
            rate[name].append(measure(1, args.threads, args) if name == "A" else measure(args.jobs, per_job, args))
        print(f"round {r}: A (1 x {args.threads} threads) {rate['A'][-1]:.3f} it/s, "
              f"B ({args.jobs} x {per_job}) {rate['B'][-1]:.3f} it/s", flush=True)
    a, b = statistics.median(rate["A"]), statistics.median(rate["B"])
    command = "python " + " ".join(sys.argv)
    print(f"median A {a:.3f} it/s, B {b:.3f} it/s, ratio B/A {b / a:.2f} ({args.rounds} rounds x {args.seconds:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "A_it_per_s": rate["A"], "B_it_per_s": rate["B"], "median_A": a, "median_B": b, "ratio_B_over_A": b / a,
            "threads": args.threads, "jobs": args.jobs, "sets": sets, "command": command,
            "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores"},
            indent=2))


if __name__ == "__main__":
    main()
