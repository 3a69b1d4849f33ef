"""torch.profiler table of the small32 training iteration: top operators by self time.

    python benchmarks/profile_iteration.py                                  # bf16, E x2, current code
    python benchmarks/profile_iteration.py --code before-issue16 --threads 1  # the code before issue 16
    python benchmarks/profile_iteration.py --set optim.fused_adam=true --precision fp32

Runs ``--warmup`` untimed iterations, then profiles ``--iters`` (CPU activities) and prints the ``--top``
operators by self CPU time with their share, per-iteration milliseconds and calls per iteration, and the
share of convolutions (forward and backward) in the total self time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from iteration_ab_inprocess import CODE, code
from throughput import RandomStream, case_config

from bigbigan.runtime import tune_allocator
from bigbigan.train.loop import Trainer

CONV_NAMES = {"aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution",
              "aten::convolution", "aten::conv2d", "aten::mkldnn_convolution_backward"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--code", choices=list(CODE), default="current")
    p.add_argument("--set", action="append", default=None,
                   help="config override (default: model.encoder.width=2, the benchmark's encoder)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--threads", type=int)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args(argv)
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = args.set if args.set is not None else ["model.encoder.width=2"]
    cfg = case_config("small32-base", args.precision, extra=tuple(sets))
    trainer = Trainer(cfg, "/tmp/bigbigan-profile", stream=RandomStream(cfg), progress=False)
    with code(args.code):
        for _ in range(args.warmup):
            trainer.train_iteration()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.iters):
                trainer.train_iteration()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_NAMES)
    calls = sum(e.count for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    n = args.iters
    print(f"small32 {args.precision}, {' '.join(sets)}, code {args.code}, {torch.get_num_threads()} threads: "
          f"{total / 1e3 / n:.0f} ms self CPU per iteration, convolutions {conv / total:.1%}, "
          f"{calls / n:.0f} operator calls per iteration")
    print("| operator | self CPU % | ms / it | calls / it |")
    print("|---|---|---|---|")
    for e in events[: args.top]:
        print(f"| {e.key} | {e.self_cpu_time_total / total:.1%} | {e.self_cpu_time_total / 1e3 / n:.1f} | "
              f"{e.count / n:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
