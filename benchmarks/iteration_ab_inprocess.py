"""A/B of the small32 training iteration in one process: two trainers, iterations alternating A, B, A, B, ...

    python benchmarks/iteration_ab_inprocess.py --a-code before-issue16               # bf16, E x2
    python benchmarks/iteration_ab_inprocess.py --b-set optim.fused_adam=true --precision fp32
    python benchmarks/iteration_ab_inprocess.py --a-code before-issue16 --b-set optim.fused_adam=true --threads 1 --clock cpu

Both trainers are built from the same configuration (plus each side's ``--a-set`` / ``--b-set`` overrides) on
random images. ``--a-code before-issue16`` runs side A with the code as it was before issue 16 (the spectral-norm forward
computing W v twice, the gradient norm through clip_grad_norm_; kept here as the reference; ``old-sn``: only
the former), patched in around each of A's iterations. After ``--warmup``
untimed pairs, ``--pairs`` pairs are timed one iteration at a time, the order within a pair alternating; the
speed-up of a pair is A's time over B's, reported as the median and range over pairs. Interleaving single
iterations makes the load of a shared machine fall on both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import RandomStream, case_config

from bigbigan.nets import layers
from bigbigan.runtime import tune_allocator
from bigbigan.train.loop import Trainer


def sn_weight_before_issue16(self) -> torch.Tensor:
    """The spectral-norm forward before issue 16 (the power iteration's W v computed a second time for sigma)."""
    w = self.weight
    with torch.autocast(device_type=w.device.type, enabled=False):
        w_mat = w.float().flatten(1)
        with torch.no_grad():
            u = self.sn_u
            v = layers._normalize(w_mat.t() @ u, self.sn_eps)
            if self.training:
                u = layers._normalize(w_mat @ v, self.sn_eps)
                self.sn_u.copy_(u)
                u = u.clone()
        sigma = torch.dot(u, w_mat @ v)
    return w / sigma.to(w.dtype)


def step_phase_before_issue16(self, phase: str) -> None:
    """``Trainer._step_phase`` before issue 16 (gradient norm via clip_grad_norm_ with an infinite bound)."""
    d_phase = phase == "D"
    self.D.requires_grad_(d_phase)
    opt = self.opt_d if d_phase else self.opt_ge
    opt.zero_grad(set_to_none=True)
    loss = self.phase_loss(phase, self.next_batch())
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(self._phase_params[phase], float("inf"), foreach=True)
    self.stats.report(f"grad_norm/{phase}", gnorm)
    opt.step()


# name -> {(owner, attribute): replacement} patched in around each of that side's iterations
CODE = {
    "current": {},
    "old-sn": {(layers.SpectralNormMixin, "sn_weight"): sn_weight_before_issue16},
    "before-issue16": {(layers.SpectralNormMixin, "sn_weight"): sn_weight_before_issue16,
                       (Trainer, "_step_phase"): step_phase_before_issue16},
}


@contextlib.contextmanager
def code(name: str):
    patches = CODE[name]
    saved = {key: getattr(*key) for key in patches}
    for (owner, attr), fn in patches.items():
        setattr(owner, attr, fn)
    try:
        yield
    finally:
        for (owner, attr), fn in saved.items():
            setattr(owner, attr, fn)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a-code", choices=list(CODE), default="current")
    p.add_argument("--b-code", choices=list(CODE), default="current")
    p.add_argument("--a-set", action="append", default=[], help="config override for A only (repeatable)")
    p.add_argument("--b-set", action="append", default=[], help="config override for B only (repeatable)")
    p.add_argument("--set", action="append", default=None,
                   help="override for both (default: model.encoder.width=2, the benchmark's encoder)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--a-threads", type=int, help="torch.set_num_threads around A's iterations (default --threads)")
    p.add_argument("--b-threads", type=int, help="the same for B")
    p.add_argument("--warmup", type=int, default=2, help="untimed pairs")
    p.add_argument("--pairs", type=int, default=12, help="timed pairs of iterations")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: process CPU time (all threads), steadier than wall time on a shared machine")
    p.add_argument("--json")
    args = p.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    shared = args.set if args.set is not None else ["model.encoder.width=2"]
    sides = {"A": (args.a_code, shared + args.a_set), "B": (args.b_code, shared + args.b_set)}
    trainers = {}
    for side, (_, sets) in sides.items():
        cfg = case_config("small32-base", args.precision, extra=tuple(sets))
        trainers[side] = Trainer(cfg, f"/tmp/bigbigan-iteration-ab-{side}", stream=RandomStream(cfg), progress=False)

    default_threads = torch.get_num_threads()
    threads = {"A": args.a_threads or default_threads, "B": args.b_threads or default_threads}

    def one(side: str) -> float:
        torch.set_num_threads(threads[side])
        with code(sides[side][0]):
            t = clock()
            trainers[side].train_iteration()
            return clock() - t

    for _ in range(args.warmup):
        one("A"), one("B")
    load = os.getloadavg()[0]
    times: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(args.pairs):
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            times[side].append(one(side))
    ratios = [a / b for a, b in zip(times["A"], times["B"])]
    res = {"command": "python benchmarks/iteration_ab_inprocess.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "precision": args.precision, "clock": args.clock, "threads": threads, "sides": sides,
           "a_s_per_iter": times["A"], "b_s_per_iter": times["B"], "speedup_median": statistics.median(ratios),
           "speedup_min": min(ratios), "speedup_max": max(ratios),
           "speedup_of_medians": statistics.median(times["A"]) / statistics.median(times["B"]),
           "load_average_at_start": load, "load_average_at_end": os.getloadavg()[0]}
    print(f"A {sides['A']}, {threads['A']} threads: {statistics.median(times['A']):.3f} s/it [{min(times['A']):.3f}-{max(times['A']):.3f}]")
    print(f"B {sides['B']}, {threads['B']} threads: {statistics.median(times['B']):.3f} s/it [{min(times['B']):.3f}-{max(times['B']):.3f}]")
    print(f"B is {res['speedup_median']:.3f}x as fast as A (median over {args.pairs} alternating pairs; range "
          f"{res['speedup_min']:.3f}-{res['speedup_max']:.3f}; ratio of medians {res['speedup_of_medians']:.3f}); "
          f"{args.precision}, {args.clock} time, load average {load:.1f} -> "
          f"{res['load_average_at_end']:.1f} (absolute times measured under load)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
