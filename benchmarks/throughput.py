"""Training-iteration throughput (2 D steps + 1 E+G step) against this machine's measured conv ceiling.

    python benchmarks/throughput.py                          # tiny, small32, reference-matched sizes, fp32
    python benchmarks/throughput.py --precision bf16 --repeats 5
    python benchmarks/throughput.py --only small32-base

For each case: FLOPs per iteration (torch.utils.flop_counter on one iteration), seconds per iteration
(median and spread over ``--repeats`` timed blocks), images/s (real images consumed: 3 batches per
iteration), achieved GFLOP/s and its fraction of the ceiling measured in the same run: a 3x3 convolution
forward+backward at the reference size (64 channels, 32x32, batch 128), in the same precision and memory format.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from bigbigan.presets import resolve
from bigbigan.runtime import tune_allocator
from bigbigan.train.loop import Trainer

REF = ["model.generator.ch=64", "model.discriminator.ch=64", "optim.batch_size=64"]  # BigGAN's CIFAR size
CASES = {
    "tiny-base": ("tiny", "base", []),
    "small32-base": ("small32", "base", []),
    "ref-no-e-gan": ("small32", "no-e-gan", REF),
    "ref-base": ("small32", "base", REF),
}


class RandomStream:
    """Random images of the configured size: measures the model, not the loader."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(0)

    def __next__(self):
        m, b = self.cfg.model, self.cfg.optim.batch_size
        x = torch.rand(b, m.channels, m.resolution, m.resolution, generator=self.gen) * 2 - 1
        x_e = None if m.e_resolution == m.resolution else torch.rand(b, m.channels, m.e_resolution, m.e_resolution)
        return x, x_e, torch.zeros(b, dtype=torch.long)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def conv_ceiling(precision: str, channels_last: bool, repeats: int) -> float:
    """GFLOP/s of a 3x3 conv forward+backward (64 ch, 32x32, batch 128)."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    x = torch.randn(128, 64, 32, 32, requires_grad=True)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_(True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    flops = 3 * 2 * 128 * 64 * 64 * 9 * 32 * 32  # forward + grad input + grad weight

    def once():
        with ctx:
            conv(x).sum().backward()

    once()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(5):
            once()
        times.append((time.perf_counter() - t) / 5)
    return flops / statistics.median(times) / 1e9


def measure(name: str, precision: str, repeats: int, iters: int) -> dict:
    scale, variant, sets = CASES[name]
    cfg = resolve(scale, variant, [*sets, f"train.precision={precision}", "train.log_every=100000"])
    trainer = Trainer(cfg, "/tmp/bigbigan-throughput", stream=RandomStream(cfg), progress=False)
    trainer.train_iteration()  # warm-up
    with FlopCounterMode(display=False) as fc:
        trainer.train_iteration()
    flops = fc.get_total_flops()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(iters):
            trainer.train_iteration()
        times.append((time.perf_counter() - t) / iters)
    med = statistics.median(times)
    b = cfg.optim.batch_size
    return {"case": name, "precision": precision, "channels_last": cfg.train.channels_last, "batch": b,
            "gflop_per_iter": flops / 1e9, "s_per_iter_median": med, "s_per_iter_min": min(times),
            "s_per_iter_max": max(times), "it_per_s": 1 / med, "img_per_s": 3 * b / med,
            "gflops_achieved": flops / med / 1e9}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=3, help="iterations per timed block")
    p.add_argument("--only", help="comma list of cases: " + ", ".join(CASES))
    p.add_argument("--json", help="write the rows as JSON")
    args = p.parse_args(argv)
    tune_allocator()
    rows = []
    ceilings = {cl: conv_ceiling(args.precision, cl, args.repeats) for cl in (False, True)}
    for name in (args.only.split(",") if args.only else CASES):
        r = measure(name, args.precision, args.repeats, args.iters)
        r["ceiling_gflops"] = ceilings[r["channels_last"]]
        r["fraction_of_ceiling"] = r["gflops_achieved"] / r["ceiling_gflops"]
        rows.append(r)
        print(f"{name:14s} {args.precision} bs {r['batch']:3d}: {r['s_per_iter_median']:.3f} s/it "
              f"[{r['s_per_iter_min']:.3f}-{r['s_per_iter_max']:.3f}], {r['img_per_s']:.0f} img/s, "
              f"{r['gflop_per_iter']:.1f} GFLOP/it, {r['gflops_achieved']:.0f} GFLOP/s = "
              f"{r['fraction_of_ceiling']:.2f} of the {r['ceiling_gflops']:.0f} GFLOP/s conv ceiling", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ceilings_gflops": {str(k): v for k, v in ceilings.items()}, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
