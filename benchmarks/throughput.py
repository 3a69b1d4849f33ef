"""Training and evaluation speed on this machine, against ceilings measured in the same run.

    python benchmarks/throughput.py                          # ceilings + tiny, small32, reference-matched sizes
    python benchmarks/throughput.py --precision bf16 --repeats 5
    python benchmarks/throughput.py --only small32-base --compile
    python benchmarks/throughput.py --only eval-features,eval-knn-d2,eval-knn-d1,eval-fid
    python benchmarks/throughput.py --eval --json benchmarks/results/throughput.json   # everything

Every time is the median of ``--repeats`` timed blocks (spread: their min-max) after one warm-up call.

Ceilings (measured first, in the run's precision and in each memory format the selected training cases use):
3x3 convolution forward + backward (grad input and weight) at 64 ch 32x32 batch 128, 128 ch 16x16 batch 128,
256 ch 16x16 batch 64 and 256 ch 8x8 batch 128 (the shapes of small32 and of the reference-size model); the
best of them is "the conv ceiling". A 2048^3 matmul in fp32 and bf16 is printed for reference.

Training cases (tiny-base, small32-base, ref-no-e-gan, ref-base; one iteration = d_steps D steps + 1 E+G step
on random images, so the model is measured, not the loader): FLOPs per iteration (torch.utils.flop_counter),
s/it, images/s (real images consumed: d_steps + 1 batches), GFLOP/s and its fraction of the conv ceiling;
loader share: d_steps + 1 ``next()`` calls of the real training stream (``build_stream``, Fashion-MNIST when
installed, else digits) over the iteration time (target <= 5%). ``--compile``: compile time = first
iteration - steady median, and an eager trainer of the same configuration timed in blocks alternating with the
compiled one (speed-up = eager median / compiled median). With ref-no-e-gan and ref-base: FLOP and time share
of the extras (E, H, J).

Evaluation cases (``--eval``, or by name with ``--only``): eval-features (small32 encoder features of
Fashion-MNIST test images, images/s), eval-knn-d2 / eval-knn-d1 (k=50 neighbour lists and top-5 votes, as
knn_table computes per distance, on random 2048-d features; targets at 10K x 60K: <= 30 s D2, <= 120 s D1),
eval-fid (bare TorchScript Inception forward on preprocessed 299x299 input against the full FID path from
32x32 grey images; target ratio <= 1.2). Evaluation runs in fp32 whatever ``--precision``. Ends with a
Markdown table of every row (case, precision, figure, spread, command) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bigbigan.data.sources import DEFAULT_DIRS
from bigbigan.presets import resolve
from bigbigan.runtime import tune_allocator
from bigbigan.train.loop import Trainer

RUN_DIR = "/tmp/bigbigan-throughput"
REF = ["model.generator.ch=64", "model.discriminator.ch=64", "optim.batch_size=64"]  # BigGAN's CIFAR size
CASES = {
    "tiny-base": ("tiny", "base", []),
    "small32-base": ("small32", "base", []),
    "ref-no-e-gan": ("small32", "no-e-gan", REF),
    "ref-base": ("small32", "base", REF),
}
EVAL_CASES = ["eval-features", "eval-knn-d2", "eval-knn-d1", "eval-fid"]
CONV_SHAPES = [(64, 32, 128), (128, 16, 128), (256, 16, 64), (256, 8, 128)]  # channels, side, batch
MATMUL_N = 2048
KNN_FULL = (10000, 60000, 2048)  # queries, training points, dims: the target size
KNN_TARGET_S = {2: 30.0, 1: 120.0}
KNN_K = 50  # knn_table's largest k: one neighbour list per distance serves every k of the table
FID_RATIO_TARGET = 1.2
LOADER_TARGET = 0.05
FLAG_CASES = {  # flags that change only some cases (the others change every case, or all ceilings)
    "compile": list(CASES),
    "feature_images": ["eval-features"],
    "knn_queries": ["eval-knn-d2", "eval-knn-d1"],
    "knn_train": ["eval-knn-d2", "eval-knn-d1"],
    "knn_dim": ["eval-knn-d2", "eval-knn-d1"],
    "fid_images": ["eval-fid"],
    "fid_batch": ["eval-fid"],
}


# ---- timing ------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Seconds per call: median, min and max over the timed blocks, and the warm-up call's own time."""

    median: float
    min: float
    max: float
    first: float

    def spread(self, unit: str = "s") -> str:
        return f"{self.min:.4g}-{self.max:.4g} {unit}"


def timed(fn: Callable[[], object], repeats: int, inner: int = 1, warmup: Callable[[], object] | None = None
          ) -> Timing:
    """Time ``fn``: one warm-up call (``warmup``, default ``fn``), then ``repeats`` blocks of ``inner`` calls."""
    t = time.perf_counter()
    (warmup or fn)()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return Timing(statistics.median(times), min(times), max(times), first)


def timed_alternating(fa: Callable[[], object], fb: Callable[[], object], repeats: int, inner: int = 1
                      ) -> tuple[Timing, Timing]:
    """Time two warmed-up functions in alternating blocks (a, b, a, b, ...), so drift of the machine falls on
    both alike; ``first`` of each Timing is 0."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((fa, times[0]), (fb, times[1])):
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            out.append((time.perf_counter() - t) / inner)
    return tuple(Timing(statistics.median(x), min(x), max(x), 0.0) for x in times)


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs of one call of ``fn`` (torch.utils.flop_counter: one multiply-add = 2 FLOPs)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def rate_spread(work: float, t: Timing, unit: str) -> str:
    """The spread of a rate ``work / seconds`` over the timed blocks."""
    return f"{work / t.max:.4g}-{work / t.min:.4g} {unit}"


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def data_source() -> str:
    """Fashion-MNIST where it is installed, else scikit-learn's digits (always available)."""
    return "fashion-mnist" if Path(DEFAULT_DIRS["fashion-mnist"]).is_dir() else "digits"


# ---- ceilings ----------------------------------------------------------------------------------------------


def conv_ceiling(channels: int, side: int, batch: int, precision: str, channels_last: bool, args) -> dict:
    """GFLOP/s of a 3x3 conv forward + backward (grad input and grad weight) of one shape."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=fmt)
    x = torch.randn(batch, channels, side, side).contiguous(memory_format=fmt).requires_grad_(True)
    flops = 3 * 2 * batch * channels * channels * 9 * side * side

    def once():
        with autocast(precision):
            conv(x).sum().backward()

    t = timed(once, args.repeats, args.iters)
    layout = "NHWC" if channels_last else "NCHW"
    return {"kind": "ceiling", "case": f"conv {channels}ch@{side}x{side} b{batch} {layout}", "precision": precision,
            "channels_last": channels_last, "gflops": flops / t.median / 1e9,
            "figure": f"{flops / t.median / 1e9:.0f} GFLOP/s", "spread": rate_spread(flops / 1e9, t, "GFLOP/s")}


def matmul_ceiling(dtype: torch.dtype, args) -> dict:
    a, b = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype), torch.randn(MATMUL_N, MATMUL_N, dtype=dtype)
    t = timed(lambda: a @ b, args.repeats, args.iters)
    flops = 2 * MATMUL_N**3
    name = "bf16" if dtype == torch.bfloat16 else "fp32"
    return {"kind": "ceiling", "case": f"matmul {MATMUL_N}^3", "precision": name, "gflops": flops / t.median / 1e9,
            "figure": f"{flops / t.median / 1e9:.0f} GFLOP/s", "spread": rate_spread(flops / 1e9, t, "GFLOP/s")}


# ---- training cases ----------------------------------------------------------------------------------------


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


def case_config(name: str, precision: str, compile_: bool = False, extra: tuple[str, ...] = ()):
    scale, variant, sets = CASES[name]
    return resolve(scale, variant, [*sets, f"train.precision={precision}", f"train.compile={compile_}",
                                    "train.log_every=100000", *extra])


def loader_timing(name: str, batches: int, args) -> tuple[Timing, str]:
    """``batches`` next() calls of the real training stream of case ``name`` (what one iteration consumes)."""
    from bigbigan.data import build_stream

    source = data_source()
    stream = build_stream(case_config(name, args.precision, extra=(f"data.source={source}",)))
    return timed(lambda: [next(stream) for _ in range(batches)], args.repeats, args.iters), source


def measure_training(name: str, args, ceilings: dict[bool, float]) -> dict:
    cfg = case_config(name, args.precision, args.compile)
    trainer = Trainer(cfg, RUN_DIR, stream=RandomStream(cfg), progress=False)
    plain = trainer if not args.compile else Trainer(case_config(name, args.precision), RUN_DIR,
                                                     stream=RandomStream(cfg), progress=False)
    flops = count_flops(plain.train_iteration)  # before timing, so a compiled trainer's first call is timed
    if args.compile:  # compiled and eager trainers of the same configuration, timed in alternating blocks
        start = time.perf_counter()
        trainer.train_iteration()
        first = time.perf_counter() - start
        trainer.train_iteration()  # a second untimed call: anything compiled lazily after the first
        t, eager = timed_alternating(trainer.train_iteration, plain.train_iteration, args.repeats, args.iters)
        t = Timing(t.median, t.min, t.max, first)
    else:
        t = timed(trainer.train_iteration, args.repeats, args.iters)
    batches = cfg.optim.d_steps + 1
    loader, source = loader_timing(name, batches, args)
    b, ceiling, cl = cfg.optim.batch_size, ceilings[cfg.train.channels_last], cfg.train.channels_last
    gflops = flops / t.median / 1e9
    r = {"kind": "train", "case": name, "precision": precision_label(args), "channels_last": cl, "batch": b,
         "batches_per_iter": batches, "gflop_per_iter": flops / 1e9, "s_per_iter_median": t.median,
         "s_per_iter_min": t.min, "s_per_iter_max": t.max, "it_per_s": 1 / t.median,
         "img_per_s": batches * b / t.median, "gflops_achieved": gflops, "ceiling_gflops": ceiling,
         "fraction_of_ceiling": gflops / ceiling, "loader_source": source, "loader_s_median": loader.median,
         "loader_s_min": loader.min, "loader_s_max": loader.max, "loader_share": loader.median / t.median}
    r["figure"] = (f"{t.median:.3f} s/it ({r['img_per_s']:.0f} img/s), {flops / 1e9:.1f} GFLOP/it, {gflops:.0f} "
                   f"GFLOP/s = {gflops / ceiling:.2f} of conv ceiling {ceiling:.0f}; loader {r['loader_share']:.1%} "
                   f"({source}, target <= {LOADER_TARGET:.0%})")
    r["spread"] = t.spread("s/it")
    if args.compile:
        r["first_iter_s"], r["compile_s"] = t.first, t.first - t.median
        r["eager_s_per_iter_median"] = eager.median
        r["eager_s_per_iter_min"], r["eager_s_per_iter_max"] = eager.min, eager.max
        r["compile_speedup"] = eager.median / t.median
        r["figure"] += (f"; compile {r['compile_s']:.1f} s; eager {eager.median:.3f} s/it in the same run "
                        f"({eager.spread('s/it')}): compiled {r['compile_speedup']:.2f}x")
    return r


def extras_row(rows: list[dict]) -> dict | None:
    """FLOP and time share of E, H and J: ref-base against ref-no-e-gan (same G, F, batch)."""
    by = {r["case"]: r for r in rows}
    if not {"ref-no-e-gan", "ref-base"} <= by.keys():
        return None
    gan, base = by["ref-no-e-gan"], by["ref-base"]
    flop_share = (base["gflop_per_iter"] - gan["gflop_per_iter"]) / base["gflop_per_iter"]
    time_share = (base["s_per_iter_median"] - gan["s_per_iter_median"]) / base["s_per_iter_median"]
    return {"kind": "derived", "case": "extras E+H+J in ref-base", "precision": base["precision"],
            "flop_share": flop_share, "time_share": time_share,
            "figure": f"{flop_share:.1%} of FLOPs, {time_share:.1%} of time",
            "spread": f"ref-base {base['spread']}, ref-no-e-gan {gan['spread']}", "only": "ref-no-e-gan,ref-base"}


# ---- evaluation cases --------------------------------------------------------------------------------------


def eval_features(args) -> dict:
    from bigbigan.data import open_source
    from bigbigan.evaluation.features import extract_features
    from bigbigan.nets import build_models

    cfg = resolve("small32", "base")
    E = build_models(cfg)[2].eval()
    source = data_source()
    src = open_source(source, None, "test")
    n = min(args.feature_images, len(src))
    kw = {"resolution": cfg.model.e_resolution, "channels": cfg.model.channels, "progress": False}
    t = timed(lambda: extract_features(E, src, limit=n, **kw), args.repeats,
              warmup=lambda: extract_features(E, src, limit=min(n, 250), **kw))
    one = torch.zeros(1, cfg.model.channels, cfg.model.e_resolution, cfg.model.e_resolution)
    with torch.no_grad():
        gflop = count_flops(lambda: E.features(one)) * n / 1e9  # per image, times the image count
    return {"kind": "eval", "case": "eval-features", "precision": "fp32", "images": n, "source": source,
            "s_median": t.median, "s_min": t.min, "s_max": t.max, "img_per_s": n / t.median,
            "gflops": gflop / t.median, "figure": f"{n / t.median:.0f} img/s ({t.median:.2f} s for {n} {source} "
            f"test images), {gflop / t.median:.0f} GFLOP/s", "spread": t.spread()}


@functools.cache
def knn_data(queries: int, train: int, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random non-negative (post-ReLU-like) features: (train [N, d], labels [N], queries [Q, d]), made once."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(train, dim, generator=g), torch.randint(0, 10, (train,), generator=g),
            torch.rand(queries, dim, generator=g))


def eval_knn(p: int, args) -> dict:
    from bigbigan.evaluation.knn import knn_topk

    q, n, d = args.knn_queries, args.knn_train, args.knn_dim
    train, labels, queries = knn_data(q, n, d)
    t = timed(lambda: knn_topk(train, labels, queries, KNN_K, p), args.repeats,
              warmup=lambda: knn_topk(train, labels, queries[:32], KNN_K, p))
    terms = q * n * d
    rate = f"{2 * terms / t.median / 1e9:.0f} GFLOP/s (2QNd)" if p == 2 else f"{terms / t.median / 1e9:.1f} G terms/s"
    target = KNN_TARGET_S[p]
    if (q, n, d) == KNN_FULL:
        verdict = f"target <= {target:.0f} s: {'met' if t.median <= target else 'missed'}"
    else:
        full = t.median * (KNN_FULL[0] * KNN_FULL[1] * KNN_FULL[2]) / terms
        verdict = f"~{full:.0f} s extrapolated to {KNN_FULL[0]}x{KNN_FULL[1]} (target <= {target:.0f} s)"
    return {"kind": "eval", "case": f"eval-knn-d{p}", "precision": "fp32", "queries": q, "train": n, "dim": d,
            "k": KNN_K, "s_median": t.median, "s_min": t.min, "s_max": t.max,
            "figure": f"{t.median:.2f} s for {q}x{n}x{d}, k={KNN_K}, {rate}; {verdict}", "spread": t.spread()}


def eval_fid(args) -> dict:
    from bigbigan.data import load_eval_tensors, open_source
    from bigbigan.evaluation.generative import inception_features
    from bigbigan.evaluation.inception import InceptionFeatures, inception_preprocess

    net = InceptionFeatures.load()
    bs = args.fid_batch
    n = max(bs, args.fid_images // bs * bs)  # whole batches: one input shape for the TorchScript executor
    source = data_source()
    x, _ = load_eval_tensors(open_source(source, None, "test"), resolution=32, channels=1, limit=n)
    x = x.repeat((n + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:n]  # digits' test split is small
    pre = [inception_preprocess(b) for b in x.split(bs)]

    @torch.no_grad()
    def bare(batches: list[torch.Tensor]) -> list[torch.Tensor]:
        return [net.net(b).reshape(b.shape[0], -1).float() for b in batches]

    flop_per_img = count_flops(lambda: bare([pre[0][:1]]))
    t_bare = timed(lambda: bare(pre), args.repeats, warmup=lambda: bare(pre[:1] * 2))  # 2 calls: TorchScript
    t_full = timed(lambda: inception_features(net, x, batch_size=bs, progress=False), args.repeats,
                   warmup=lambda: inception_features(net, x[:bs], batch_size=bs, progress=False))
    ratio = t_full.median / t_bare.median
    gflop = flop_per_img * n / 1e9
    return {"kind": "eval", "case": "eval-fid", "precision": "fp32", "images": n, "batch": bs,
            "gflop_per_image": flop_per_img / 1e9, "bare_s_median": t_bare.median, "bare_s_min": t_bare.min,
            "bare_s_max": t_bare.max, "full_s_median": t_full.median, "full_s_min": t_full.min,
            "full_s_max": t_full.max, "ratio": ratio, "bare_gflops": gflop / t_bare.median,
            "full_img_per_s": n / t_full.median,
            "figure": f"full path {n / t_full.median:.1f} img/s, bare forward {n / t_bare.median:.1f} img/s: ratio "
            f"{ratio:.2f} (target <= {FID_RATIO_TARGET}); bare {gflop / t_bare.median:.0f} GFLOP/s, "
            f"{flop_per_img / 1e9:.1f} GFLOP/img", "spread": f"full {t_full.spread()}, bare {t_bare.spread()}"}


EVAL_FNS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "eval-features": eval_features,
    "eval-knn-d2": lambda args: eval_knn(2, args),
    "eval-knn-d1": lambda args: eval_knn(1, args),
    "eval-fid": eval_fid,
}


# ---- output ------------------------------------------------------------------------------------------------


def precision_label(args) -> str:
    return args.precision + (", compiled" if args.compile else "")


def command(only: str, flags: dict[str, str]) -> str:
    """The command that measures the cases in ``only`` (comma list) again, with this run's relevant flags."""
    cases = set(only.split(","))
    kept = [f for dest, f in flags.items() if dest not in FLAG_CASES or cases & set(FLAG_CASES[dest])]
    return " ".join(["python benchmarks/throughput.py --only", only, *kept])


def report(row: dict) -> None:
    print(f"{row['case']:28s} {row['precision']:6s} {row['figure']}  [{row['spread']}]", flush=True)
    if "compile_s" in row:
        print(f"{'':28s} compile time {row['compile_s']:.1f} s = first iteration {row['first_iter_s']:.1f} s - "
              f"steady {row['s_per_iter_median']:.3f} s/it; steady speed {row['it_per_s']:.2f} it/s, "
              f"{row['img_per_s']:.0f} img/s", flush=True)


def markdown(rows: list[dict]) -> str:
    lines = ["| case | precision | figure | spread | command |", "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['precision']} | {r['figure']} | {r['spread']} | `{r['command']}` |" for r in rows]
    return "\n".join(lines)


def parse(argv) -> tuple[argparse.Namespace, dict[str, str]]:
    """The arguments, and the non-default ones as flags ({dest: "--flag value"}) for the per-row commands."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks (median and min-max over them)")
    p.add_argument("--iters", type=int, default=3, help="training iterations (ceiling calls) per timed block")
    p.add_argument("--compile", action="store_true", help="train.compile=True; report the compile time")
    p.add_argument("--only", help="comma list of cases: " + ", ".join([*CASES, *EVAL_CASES]))
    p.add_argument("--eval", action="store_true", help="also run the evaluation cases")
    p.add_argument("--feature-images", type=int, default=10000, help="eval-features: test images")
    p.add_argument("--knn-queries", type=int, default=KNN_FULL[0])
    p.add_argument("--knn-train", type=int, default=KNN_FULL[1])
    p.add_argument("--knn-dim", type=int, default=KNN_FULL[2])
    p.add_argument("--fid-images", type=int, default=200, help="eval-fid: images (whole batches)")
    p.add_argument("--fid-batch", type=int, default=50)
    p.add_argument("--json", help="write the rows as JSON")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else [*CASES, *(EVAL_CASES if args.eval else [])]
    unknown = [n for n in names if n not in CASES and n not in EVAL_CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join([*CASES, *EVAL_CASES])}")
    args.names = names
    flags = {}
    for action in p._actions:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "only", "eval", "json") or value == action.default:
            continue
        flags[action.dest] = action.option_strings[0] + ("" if value is True else f" {value}")
    return args, flags


def main(argv=None) -> int:
    args, flags = parse(argv)
    tune_allocator()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.1f} before the start: other processes share the cores, and "
              "contended OpenMP threads can slow small models many-fold; measure on an idle machine", flush=True)
    train_names = [n for n in args.names if n in CASES]
    rows: list[dict] = []

    def add(row: dict, only: str) -> None:
        row["command"] = command(row.pop("only", only), flags)
        rows.append(row)
        report(row)

    ceilings: dict[bool, float] = {}
    for cl in sorted({case_config(n, args.precision).train.channels_last for n in train_names}):
        conv = [conv_ceiling(c, s, b, args.precision, cl, args) for c, s, b in CONV_SHAPES]
        for row in conv:
            add(row, train_names[0])
        ceilings[cl] = max(r["gflops"] for r in conv)
        print(f"conv ceiling ({'NHWC' if cl else 'NCHW'}, {args.precision}): {ceilings[cl]:.0f} GFLOP/s "
              "(best of the shapes above)", flush=True)
    for dtype in (torch.float32, torch.bfloat16):
        add(matmul_ceiling(dtype, args), args.names[0])
    for name in train_names:
        add(measure_training(name, args, ceilings), name)
    extras = extras_row(rows)
    if extras is not None:
        add(extras, "")
    for name in (n for n in args.names if n in EVAL_CASES):
        add(EVAL_FNS[name](args), name)

    meta = {"command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": datetime.date.today().isoformat(), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "load_average_at_start": load}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "ceilings_gflops": {str(k): v for k, v in ceilings.items()}, "rows": rows},
                      f, indent=2)
    print(f"\n{meta['command']} ({meta['date']}, {meta['threads']} threads, torch {meta['torch']})\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
