"""The small32 training iteration against a limit built from its own work (issue 16, item 1).

    python benchmarks/small32_limit.py                          # bf16, x2 encoder: the Fashion-MNIST benchmark's
    python benchmarks/small32_limit.py --precision fp32 --repeats 5
    python benchmarks/small32_limit.py --threads 1 --json benchmarks/results/small32_limit_bf16.json

The best-shape conv ceiling of ``throughput.py`` (the fastest of four large 3x3 shapes) is out of reach for
small32, whose convolutions are 16-128 channels at batch 32: no implementation runs them at the large shapes'
rate. The fair limit here is the iteration's own work done at the speed this machine does it alone:

- every ``aten.convolution`` and ``aten.convolution_backward`` call of one iteration is recorded (shapes,
  strides, i.e. memory format, dtype after autocast, and every argument) with a TorchDispatchMode, and each
  distinct call is replayed alone on random tensors of the same layout; the conv limit is the sum of those
  times over the iteration's calls;
- plus the memory-bound work no implementation avoids, at this machine's measured copy bandwidth (the best of
  a 16 MB and a 64 MB ``copy_``): BN forward 3 passes over its input (two reads: statistics, normalise; one
  write), BN backward 5 (read x and dy twice, write dx), each activation 2 forward (read, write) and 3 backward,
  each same-shape tensor ``add`` (residuals, gradient accumulation) 3; Adam 7 fp32 values per parameter and
  step (read p, g, m, v; write p, m, v), the EMA 3 per G and E parameter and iteration. SN power iterations,
  pooling, upsampling, casts and the losses are counted as avoidable (they are small at this size).

The iteration and one replay of the conv calls are timed in alternating blocks, so load on the machine falls on
both alike; the figure is iteration time / limit (1.0 = at the limit). The old metric (GFLOP/s against the
best-shape ceiling, measured in the same run) is printed alongside.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import types
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput
from throughput import CONV_SHAPES, RandomStream, case_config, conv_ceiling, count_flops

from bigbigan.runtime import tune_allocator
from bigbigan.train.loop import Trainer

aten = torch.ops.aten
CONV_OPS = (aten.convolution.default, aten.convolution_backward.default)
# Passes over the op's first tensor argument that no implementation avoids (see the module docstring).
MEMORY_PASSES = {
    aten.native_batch_norm.default: 3,
    aten._native_batch_norm_legit.default: 3,
    aten._native_batch_norm_legit_no_training.default: 2,
    aten.native_batch_norm_backward.default: 5,
    aten.relu.default: 2,
    aten.relu_.default: 2,
    aten.leaky_relu.default: 2,
    aten.threshold_backward.default: 3,
    aten.leaky_relu_backward.default: 3,
}
ADD_OPS = (aten.add.Tensor, aten.add_.Tensor)
ADAM_BYTES = 7 * 4
EMA_BYTES = 3 * 4
BANDWIDTH_SIZES_MB = (16, 64)
CLOCK = time.perf_counter  # --clock cpu: time.process_time


class TensorSpec(tuple):
    """(shape, stride, dtype) of a tensor argument: enough to replay the call on a random tensor."""

    def make(self) -> torch.Tensor:
        shape, stride, dtype = self
        return torch.empty_strided(shape, stride, dtype=dtype).normal_()


def _spec(a):
    if isinstance(a, torch.Tensor):
        return TensorSpec((tuple(a.shape), tuple(a.stride()), a.dtype))
    if isinstance(a, (list, tuple)):
        return tuple(_spec(x) for x in a)
    return a


def _make(a):
    if isinstance(a, TensorSpec):
        return a.make()
    if isinstance(a, tuple):
        return [_make(x) for x in a]
    return a


class OpRecorder(TorchDispatchMode):
    """Records the conv calls (replayable specs) and the memory-bound calls' bytes of one iteration."""

    def __init__(self) -> None:
        super().__init__()
        self.convs: Counter = Counter()
        self.memory_bytes: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in CONV_OPS:
            self.convs[(func, _spec(args))] += 1
        elif func in MEMORY_PASSES:
            x = args[0]
            self.memory_bytes[func.__name__] += MEMORY_PASSES[func] * x.numel() * x.element_size()
        elif func in ADD_OPS and isinstance(args[1], torch.Tensor) and args[0].shape == args[1].shape:
            self.memory_bytes["add (same shape)"] += 3 * args[0].numel() * args[0].element_size()
        return func(*args, **kwargs)


def conv_flops(func, args) -> int:
    """FLOPs of a recorded conv call (2 per multiply-add; backward: one conv-sized product per output)."""
    if func is aten.convolution.default:
        x, w, transposed = args[0], args[1], args[6]
        out_spatial = x[0][2] * x[0][3] if transposed else None
        if out_spatial is None:  # output size of a plain conv from its stride and padding
            stride, padding, dilation = args[3], args[4], args[5]
            h = (x[0][2] + 2 * padding[0] - dilation[0] * (w[0][2] - 1) - 1) // stride[0] + 1
            ww = (x[0][3] + 2 * padding[1] - dilation[1] * (w[0][3] - 1) - 1) // stride[1] + 1
            out_spatial = h * ww
        return 2 * x[0][0] * out_spatial * w[0][0] * w[0][1] * w[0][2] * w[0][3]
    gy, w, mask = args[0], args[2], args[10]
    per = 2 * gy[0][0] * gy[0][2] * gy[0][3] * w[0][0] * w[0][1] * w[0][2] * w[0][3]
    return per * (int(mask[0]) + int(mask[1]))


def record(trainer: Trainer) -> OpRecorder:
    rec = OpRecorder()
    with rec:
        trainer.train_iteration()
    return rec


def bandwidth(repeats: int) -> float:
    """Best copy bandwidth in bytes/s (read + write) over the buffer sizes."""
    best = 0.0
    for mb in BANDWIDTH_SIZES_MB:
        n = mb * 2**20 // 4
        a, b = torch.randn(n), torch.empty(n)
        b.copy_(a)
        times = []
        for _ in range(max(3, repeats)):
            t = CLOCK()
            b.copy_(a)
            times.append(CLOCK() - t)
        best = max(best, 2 * 4 * n / statistics.median(times))
    return best


class ConvReplay:
    """Each distinct conv call of the iteration on its own random tensors; ``__call__`` runs them all, each as
    often as the iteration does, and returns the seconds per distinct call (for the per-shape table)."""

    def __init__(self, convs: Counter) -> None:
        self.calls = [(func, args, count, [_make(a) for a in args]) for (func, args), count in convs.items()]

    @torch.no_grad()
    def __call__(self) -> list[float]:
        out = []
        for func, _, count, made in self.calls:
            t = CLOCK()
            for _ in range(count):
                func(*made)
            out.append((CLOCK() - t) / count)
        return out


def describe(func, args) -> str:
    x, w = (args[0], args[1]) if func is aten.convolution.default else (args[1], args[2])
    layout = "NHWC" if (x[1][1] == 1 and x[0][1] > 1) else "NCHW"
    kind = "fwd" if func is aten.convolution.default else "bwd" + ("".join(
        n for n, m in zip(("-in", "-w"), args[10][:2]) if m))
    stride = args[3] if func is aten.convolution.default else args[4]
    return (f"{kind} {w[0][1]}->{w[0][0]} k{w[0][2]}x{w[0][3]} s{stride[0]} @{x[0][2]}x{x[0][3]} b{x[0][0]} "
            f"{layout} {str(x[2]).replace('torch.', '')}")


def measure(args) -> dict:
    extra = (*((f"model.encoder.width={args.encoder_width}",) if args.encoder_width else ()), *args.set)
    cfg = case_config("small32-base", args.precision, extra=extra)
    trainer = Trainer(cfg, "/tmp/bigbigan-small32-limit", stream=RandomStream(cfg), progress=False)
    trainer.train_iteration()  # warm-up: allocator, oneDNN primitive caches
    flops = count_flops(trainer.train_iteration)
    rec = record(trainer)
    replay = ConvReplay(rec.convs)
    replay()
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in (("D", trainer.D), ("G", trainer.G),
                                                                      ("E", trainer.E)) if m is not None}
    adam_bytes = ADAM_BYTES * (cfg.optim.d_steps * n_params["D"] + n_params["G"] + n_params.get("E", 0))
    ema_bytes = EMA_BYTES * (n_params["G"] + n_params.get("E", 0))
    mem_bytes = sum(rec.memory_bytes.values()) + adam_bytes + ema_bytes
    bw = bandwidth(args.repeats)

    it_times, conv_times, per_call = [], [], []
    for _ in range(args.repeats):  # alternating blocks: iteration, conv replay
        t = CLOCK()
        for _ in range(args.iters):
            trainer.train_iteration()
        it_times.append((CLOCK() - t) / args.iters)
        t = CLOCK()
        for _ in range(args.iters):
            per_call.append(replay())
        conv_times.append((CLOCK() - t) / args.iters)
    bw_after = bandwidth(args.repeats)
    bw = max(bw, bw_after)
    ceilings = [conv_ceiling(c, s, b, args.precision, cfg.train.channels_last, args) for c, s, b in CONV_SHAPES]
    ceiling = max(r["gflops"] for r in ceilings)

    it, conv = statistics.median(it_times), statistics.median(conv_times)
    mem_s = mem_bytes / bw
    limit = conv + mem_s
    conv_flops_total = sum(conv_flops(f, a) * c for (f, a), c in rec.convs.items())
    shapes = []
    for i, (func, a, count, _) in enumerate(replay.calls):
        s = statistics.median(p[i] for p in per_call)
        fl = conv_flops(func, a)
        shapes.append({"call": describe(func, a), "count": count, "s_each": s, "s_total": s * count,
                       "gflops": fl / s / 1e9})
    shapes.sort(key=lambda r: -r["s_total"])
    return {
        "precision": args.precision, "clock": args.clock, "sets": args.set, "encoder_width": args.encoder_width or 1, "threads": torch.get_num_threads(),
        "channels_last": cfg.train.channels_last, "gflop_per_iter": flops / 1e9,
        "conv_gflop_per_iter": conv_flops_total / 1e9, "conv_calls": sum(rec.convs.values()),
        "distinct_conv_calls": len(rec.convs),
        "iteration_s_median": it, "iteration_s_min": min(it_times), "iteration_s_max": max(it_times),
        "conv_limit_s_median": conv, "conv_limit_s_min": min(conv_times), "conv_limit_s_max": max(conv_times),
        "memory_bytes": dict(rec.memory_bytes, adam=adam_bytes, ema=ema_bytes), "memory_bytes_total": mem_bytes,
        "bandwidth_gb_s": bw / 1e9, "memory_limit_s": mem_s, "limit_s": limit,
        "iteration_over_limit": it / limit, "fraction_of_limit": limit / it,
        "per_block_fraction": [(c + mem_s) / i for c, i in zip(conv_times, it_times)],
        "ceiling_gflops": ceiling, "ceilings": [{k: r[k] for k in ("case", "gflops")} for r in ceilings],
        "iteration_gflops": flops / it / 1e9, "fraction_of_best_shape_ceiling": flops / it / 1e9 / ceiling,
        "conv_replay_gflops": conv_flops_total / conv / 1e9, "shapes": shapes,
    }


def report(r: dict, top: int) -> None:
    print(f"small32 {r['precision']}, E x{r['encoder_width']}, {r['threads']} threads, {r['clock']} time: "
          f"{r['gflop_per_iter']:.1f} GFLOP/it ({r['conv_gflop_per_iter']:.1f} in {r['conv_calls']} conv calls, "
          f"{r['distinct_conv_calls']} distinct)")
    print(f"  iteration          {r['iteration_s_median']:.3f} s [{r['iteration_s_min']:.3f}-{r['iteration_s_max']:.3f}]")
    print(f"  conv calls alone   {r['conv_limit_s_median']:.3f} s [{r['conv_limit_s_min']:.3f}-"
          f"{r['conv_limit_s_max']:.3f}] ({r['conv_replay_gflops']:.0f} GFLOP/s)")
    print(f"  memory-bound work  {r['memory_limit_s']:.3f} s ({r['memory_bytes_total'] / 1e6:.0f} MB at "
          f"{r['bandwidth_gb_s']:.1f} GB/s)")
    pb = r["per_block_fraction"]
    print(f"  limit {r['limit_s']:.3f} s: iteration at {r['fraction_of_limit']:.2f} of the limit "
          f"(per block {min(pb):.2f}-{max(pb):.2f}); best-shape ceiling {r['ceiling_gflops']:.0f} GFLOP/s: "
          f"iteration at {r['fraction_of_best_shape_ceiling']:.2f} of it")
    print("  memory-bound bytes: " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in r["memory_bytes"].items()))
    print(f"  slowest conv calls (of {len(r['shapes'])}):")
    for s in r["shapes"][:top]:
        print(f"    {s['call']:58s} x{s['count']}  {s['s_total'] * 1e3:7.1f} ms  {s['gflops']:5.0f} GFLOP/s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--encoder-width", type=int, default=2, help="model.encoder.width (the benchmark's: 2)")
    p.add_argument("--repeats", type=int, default=5, help="alternating timed blocks")
    p.add_argument("--iters", type=int, default=2, help="iterations (conv replays) per block")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--set", action="append", default=[], help="config override, e.g. optim.fused_adam=true")
    p.add_argument("--top", type=int, default=12, help="slowest conv calls to print")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: process CPU time (all threads) for every figure, ceilings included: steadier than "
                   "wall time on a shared machine, and fair with --threads 1")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.process_time
        throughput.time = types.SimpleNamespace(perf_counter=time.process_time)  # its timed() reads this clock
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    r = measure(args)
    r["meta"] = {"command": "python benchmarks/small32_limit.py " + " ".join(sys.argv[1:] if argv is None else argv),
                 "date": datetime.date.today().isoformat(), "machine": platform.machine(), "torch": torch.__version__,
                 "load_average_at_start": load, "load_average_at_end": os.getloadavg()[0]}
    report(r, args.top)
    print(f"  load average {load:.1f} at the start, {r['meta']['load_average_at_end']:.1f} at the end")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(r, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
