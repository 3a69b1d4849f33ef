"""A/B of one training iteration (``Trainer.train_iteration``) between two source trees, in alternating processes.

    git worktree add /tmp/bigbigan-before 8291f21      # or: git archive 8291f21 src | tar -x -C /tmp/bigbigan-before
    python benchmarks/iteration_ab.py --a /tmp/bigbigan-before/src --b src --rounds 6 --iterations 10
    python benchmarks/iteration_ab.py --a /tmp/old/src --b src --set train.precision=bf16 --set model.encoder.width=2

Each round starts one process per tree (A then B, then B then A in the next round, so drift of a shared machine
falls on both alike); a process builds the ``--scale`` trainer on random images held in memory (the model is
measured, not the loader), runs ``--warmup`` iterations, then times ``--iterations`` more and prints seconds per
iteration. Prints the per-round times, each tree's median and the ratio B / A (below 1: B is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def random_image_trainer(scale: str, sets: list[str], run_dir: str):
    """The ``scale`` base trainer (config overrides ``sets``) on fixed random images held in memory, in training
    mode: timing it measures the model, not the loader."""
    import torch

    from bigbigan.presets import resolve
    from bigbigan.train.loop import Trainer

    cfg = resolve(scale, "base", ["train.image_every=100000", "train.ckpt_every=100000", *sets])
    m = cfg.model

    class RandomStream:  # the trainer's stream interface
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.x = torch.rand(cfg.optim.batch_size, m.channels, m.resolution, m.resolution, generator=g) * 2 - 1
            self.x_e = None if m.e_resolution == m.resolution else torch.rand(
                cfg.optim.batch_size, m.channels, m.e_resolution, m.e_resolution, generator=g) * 2 - 1

        def __next__(self):
            return self.x, self.x_e, torch.zeros(self.x.shape[0], dtype=torch.long)

        def state_dict(self) -> dict:
            return {}

        def load_state_dict(self, state: dict) -> None:
            pass

    trainer = Trainer(cfg, run_dir, stream=RandomStream(), progress=False)
    for module in trainer.modules():
        module.train()
    return trainer


def child(scale: str, sets: list[str], warmup: int, iterations: int) -> None:
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpCounter(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = random_image_trainer(scale, sets, run_dir)
        for _ in range(warmup):
            trainer.train_iteration()
        t, c = time.perf_counter(), time.process_time()
        for _ in range(iterations):
            trainer.train_iteration()
        wall, cpu = (time.perf_counter() - t) / iterations, (time.process_time() - c) / iterations
        counter = OpCounter()
        with counter:  # the tensor operations one iteration dispatches: a count that no load can disturb
            trainer.train_iteration()
        print(json.dumps({"s_per_it": wall, "cpu_s_per_it": cpu, "ops_per_it": counter.n}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="src directory of tree A (the reference)")
    p.add_argument("--b", required=True, help="src directory of tree B")
    p.add_argument("--scale", default="small32")
    p.add_argument("--set", action="append", default=[], help="config override for both trees (repeatable)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--json", help="write the per-round times and medians here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.scale, args.set, args.warmup, args.iterations)
        return
    times: dict[str, list[float]] = {"A": [], "B": []}
    cpu: dict[str, list[float]] = {"A": [], "B": []}
    ops: dict[str, int] = {}
    for r in range(args.rounds):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        for name in order:
            src = os.path.abspath(args.a if name == "A" else args.b)
            env = {**os.environ, "PYTHONPATH": src}
            out = subprocess.run([sys.executable, __file__, "--child", "--a", args.a, "--b", args.b,
                                  "--scale", args.scale, "--warmup", str(args.warmup),
                                  "--iterations", str(args.iterations), *(f"--set={s}" for s in args.set)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            rec = json.loads(out.strip().splitlines()[-1])
            times[name].append(rec["s_per_it"])
            cpu[name].append(rec["cpu_s_per_it"])
            ops[name] = rec["ops_per_it"]
        print(f"round {r}: A {times['A'][-1]:.4f} s/it ({cpu['A'][-1]:.4f} CPU), "
              f"B {times['B'][-1]:.4f} s/it ({cpu['B'][-1]:.4f} CPU)", flush=True)
    a, b = statistics.median(times["A"]), statistics.median(times["B"])
    ca, cb = statistics.median(cpu["A"]), statistics.median(cpu["B"])
    print(f"median A {a:.4f} s/it, B {b:.4f} s/it, ratio B/A {b / a:.3f}; CPU time ratio {cb / ca:.3f}; "
          f"tensor ops per iteration A {ops['A']}, B {ops['B']} ({args.scale}, {args.rounds} rounds x "
          f"{args.iterations} iterations)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(sys.argv), "scale": args.scale, "sets": args.set, "a": args.a, "b": args.b,
                       "s_per_it": times, "cpu_s_per_it": cpu, "median_s_per_it": {"A": a, "B": b},
                       "ratio_b_over_a": b / a, "speedup_a_over_b": a / b, "ops_per_it": ops}, f, indent=1)


if __name__ == "__main__":
    main()
