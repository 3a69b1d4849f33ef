"""The GPU check: correctness on CUDA, speed at the paper's size, a short imagenet128 training, in one run.

    bash benchmarks/gpu_check.sh                                    # on a GPU machine: everything into $OUT
    python benchmarks/gpu_check.py --out DIR --budget-s 500         # the same without the wheel install
    python benchmarks/gpu_check.py --out DIR --dry-run              # on a CPU: every section at tiny sizes

A lent GPU comes with minutes, not hours, so the sections run in this order, each in its own process with a
time limit, each writing DIR/SECTION.json as it goes (what a killed section had measured survives), and a
section is skipped when the time left cannot hold it:

- env: versions, the device, and the bf16 matmul rate on this card (8192^3), the MFU ceiling measured here.
- nccl: a one-process NCCL group: cross-replica BN's distributed branch (the functional all-reduce and its
  backward) against plain BN, fp32 and bf16; a DDP-wrapped step against the unwrapped one; all_gather_cat.
- cli: ``torchrun --nproc_per_node 1 -m bigbigan train`` (tiny) in fp32 and bf16 on CUDA, then the fp32 run
  resumed on the CPU (a checkpoint written on the GPU, read on the CPU) and evaluated there.
- speed: one training iteration (d_steps D steps + one E+G step) of imagenet128 base and of ``ref`` (BigGAN's
  CIFAR size: ch 64, batch 64, 32 px) on fixed random images held on the device, so the model is measured,
  not the loader: the largest batch that fits (imagenet128), s/it, images/s, peak memory, FLOPs per iteration
  (torch.utils.flop_counter, as benchmarks/throughput.py counts them on the CPU) and MFU against the H200's
  dense bf16 peak (989.4 TFLOP/s, the datasheet's) and against the matmul rate measured in env. Then the same
  with ``train.compile=true`` (compile time = first iteration - steady iteration), as long as time is left.
- train128 and tests, side by side: ``bigbigan train --scale imagenet128`` for a few minutes on generated
  folder data (10 classes of drawn shapes, 128 px PNGs; the losses should move), and the test suite with
  ``--device cuda`` (pytest-xdist).

Finally DIR/gpu_check.json gathers every section's JSON, and DIR/logs.tar.gz the logs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

from bigbigan.files import atomic_write_text, read_jsonl

H200_DENSE_BF16_TFLOPS = 989.4  # NVIDIA's H200 SXM datasheet, dense (no sparsity)
REF = ["model.generator.ch=64", "model.discriminator.ch=64", "optim.batch_size=64"]  # BigGAN's CIFAR size
SPEED_CASES = {  # name: (scale, overrides, batch sizes to try, largest first)
    "imagenet128": ("imagenet128", [], [512, 256, 128, 64]),
    "ref": ("small32", REF, [64]),
}
DRY_SPEED_CASES = {"tiny": ("tiny", [], [16, 8])}
SECTIONS = ("env", "nccl", "cli", "speed", "train128", "tests")
# The least time each section needs to be worth starting, and the most it may take (seconds).
MIN_S = {"env": 20, "nccl": 20, "cli": 60, "speed": 90, "train128": 120, "tests": 90}
MAX_S = {"env": 60, "nccl": 60, "cli": 180, "speed": 180, "train128": 330, "tests": 330}


def write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- sections (each runs in its own process: python gpu_check.py --section NAME) ------------------------------


def section_env(ctx: argparse.Namespace, out: dict, save) -> None:
    dev = ctx.device
    out.update({"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                "cpus": os.cpu_count(), "device": str(dev)})
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        out.update({"gpu": p.name, "capability": f"{p.major}.{p.minor}", "gpu_memory_gib": p.total_memory / 2**30,
                    "multiprocessors": p.multi_processor_count, "cudnn": torch.backends.cudnn.version()})
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit", "--format=csv"],
                check=False, capture_output=True, text=True, timeout=20).stdout.strip()
    save()
    n = 8192 if dev.type == "cuda" else 512
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(dev)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        sync(dev)
        times.append(time.perf_counter() - t)
    out["matmul_bf16_n"] = n
    out["matmul_bf16_tflops"] = 2 * n**3 / statistics.median(times) / 1e12


def section_nccl(ctx: argparse.Namespace, out: dict, save) -> None:
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    from bigbigan import dist as bdist
    from bigbigan.nets import layers

    dev = ctx.device
    backend = "nccl" if dev.type == "cuda" else "gloo"
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())})
    dist.init_process_group(backend, rank=0, world_size=1)
    out["backend"] = dist.get_backend()
    try:
        # Force cross-replica BN's distributed branch: its reduction runs over the real group (one process), so
        # it must equal plain BN, values and gradients, with the all-reduce and its backward on this backend.
        layers._world = lambda: 2
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            crbn = layers.CrossReplicaBatchNorm2d(32).to(dev)
            plain = nn.BatchNorm2d(32).to(dev)
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32  # a bf16 conv's output feeds BN
            x = torch.randn(16, 32, 8, 8, device=dev).to(dtype)
            g = torch.randn(16, 32, 8, 8, device=dev)
            xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            cast = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16"
                    else contextlib.nullcontext())
            with cast:
                ya, yb = crbn(xa), plain(xb)
            ya.float().backward(g)
            yb.float().backward(g)
            out[f"crbn_{precision}"] = {"in_dtype": str(x.dtype),
                "out_dtype": str(ya.dtype),
                "max_abs_diff_y": (ya.float() - yb.float()).abs().max().item(),
                "max_abs_diff_grad_x": (xa.grad.float() - xb.grad.float()).abs().max().item(),
                "max_abs_diff_running_mean": (crbn.running_mean - plain.running_mean).abs().max().item(),
                "max_abs_diff_running_var": (crbn.running_var - plain.running_var).abs().max().item()}
            save()
        layers._world = lambda: dist.get_world_size()
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(dev)
        twin = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(dev)
        twin.load_state_dict(model.state_dict())
        ddp = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        x = torch.randn(32, 64, device=dev)
        ddp(x).square().mean().backward()
        twin(x).square().mean().backward()
        out["ddp_max_abs_diff_grad"] = max((p.grad - q.grad).abs().max().item()
                                           for p, q in zip(model.parameters(), twin.parameters()))
        t = torch.arange(6.0, device=dev).reshape(3, 2)
        out["all_gather_cat_equal"] = bool(torch.equal(bdist.all_gather_cat(t), t))
        out["ok"] = (all(out[f"crbn_{p}"]["max_abs_diff_y"] < (1e-4 if p == "fp32" else 5e-2)
                         and out[f"crbn_{p}"]["max_abs_diff_grad_x"] < (1e-4 if p == "fp32" else 5e-2)
                         for p in ("fp32", "bf16"))
                     and out["ddp_max_abs_diff_grad"] < 1e-5 and out["all_gather_cat_equal"])
    finally:
        dist.destroy_process_group()


def _run(cmd: list[str], log: Path, timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd`` into ``log``; at ``timeout`` it gets SIGABRT first, so that Python's faulthandler writes where
    every thread was into the log (a hang is then a stack, not a silence), and is killed 5 s later."""
    t = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})})
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = "timeout"
    return {"cmd": " ".join(cmd), "rc": rc, "wall_s": time.perf_counter() - t,
            "log_tail": log.read_text(errors="replace")[-1500:]}


def _losses(run: Path) -> dict:
    """First and last logged loss/D and loss/EG of a run, and the steps they were logged at."""
    rows = [r for r in read_jsonl(run / "stats.jsonl") if "loss/D" in r]
    if not rows:
        return {}
    keys = ["loss/D", "loss/EG", "acc/D/x", "acc/D/z", "acc/D/xz", "perf/it_per_s"]
    return {"logged": len(rows), "first": {"step": rows[0]["step"], **{k: rows[0].get(k) for k in keys}},
            "last": {"step": rows[-1]["step"], **{k: rows[-1].get(k) for k in keys}}}


def section_cli(ctx: argparse.Namespace, out: dict, save) -> None:
    from bigbigan.checkpoint import load_latest

    work, dev = ctx.work, ctx.device
    common = ["train", "--scale", "tiny", "--no-progress", "--set", "data.train_val_size=100",
              "--set", "train.ckpt_every=10", "--set", "train.image_every=1000"]
    for precision in ("fp32", "bf16"):
        run = work / f"cli_{precision}"
        shutil.rmtree(run, ignore_errors=True)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               "-m", "bigbigan", *common, "--steps", "20", "--precision", precision, "--device", dev.type,
               "--out", str(run)]
        r = _run(cmd, work / f"cli_{precision}.log", 150)
        state = load_latest(run) if r["rc"] == 0 else None
        r["step"] = state["step"] if state else None
        r["losses"] = _losses(run)
        out[f"torchrun_{precision}"] = r
        save()
    run = work / "cli_fp32"
    r = _run([sys.executable, "-m", "bigbigan", *common, "--steps", "30", "--device", "cpu", "--out", str(run)],
             work / "cli_resume_cpu.log", 120)
    state = load_latest(run) if r["rc"] == 0 else None
    r["step"] = state["step"] if state else None
    out["resume_on_cpu"] = r
    save()
    r = _run([sys.executable, "-m", "bigbigan", "eval", str(run), "--metrics", "linear,knn,recon", "--device",
              "cpu", "--train-limit", "500", "--probe-steps", "200", "--json", str(work / "cli_eval.json")],
             work / "cli_eval_cpu.log", 120)
    if r["rc"] == 0:
        res = json.loads((work / "cli_eval.json").read_text())
        r["results"] = {k: v for k, v in res.items() if isinstance(v, (int, float)) and "top1" in k or k == "rel_l1"}
    out["eval_on_cpu"] = r
    out["ok"] = all(out[k]["rc"] == 0 for k in ("torchrun_fp32", "torchrun_bf16", "resume_on_cpu", "eval_on_cpu")) \
        and out["resume_on_cpu"]["step"] == 30


class DeviceImages:
    """The same random images every call, already on the device: measures the model, not the loader."""

    def __init__(self, cfg, device: torch.device) -> None:
        m, b = cfg.model, cfg.optim.batch_size
        gen = torch.Generator(device=device).manual_seed(0)
        self.x = torch.rand(b, m.channels, m.resolution, m.resolution, generator=gen, device=device) * 2 - 1
        self.x_e = None if m.e_resolution == m.resolution else \
            torch.rand(b, m.channels, m.e_resolution, m.e_resolution, generator=gen, device=device) * 2 - 1
        self.y = torch.zeros(b, dtype=torch.long, device=device)

    def __next__(self):
        return self.x, self.x_e, self.y

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _trainer(scale: str, sets: list[str], batch: int, compile_: bool, ctx: argparse.Namespace):
    from bigbigan.presets import resolve
    from bigbigan.train.loop import Trainer

    precision = "bf16"
    cfg = resolve(scale, "base", [*sets, f"optim.batch_size={batch}", f"train.precision={precision}",
                                  f"train.channels_last={ctx.device.type == 'cuda'}", f"train.compile={compile_}",
                                  "train.log_every=1000000", "train.image_every=1000000"])
    run = ctx.work / f"speed_{scale}_{batch}_{int(compile_)}"
    return Trainer(cfg, run, stream=DeviceImages(cfg, ctx.device), device=ctx.device, progress=False), cfg


def _timed(trainer, dev: torch.device, n: int) -> list[float]:
    times = []
    for _ in range(n):
        sync(dev)
        t = time.perf_counter()
        trainer.train_iteration()
        sync(dev)
        times.append(time.perf_counter() - t)
    return times


def section_speed(ctx: argparse.Namespace, out: dict, save) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    dev, deadline = ctx.device, ctx.deadline
    if dev.type == "cuda":
        torch.zeros(1, device=dev)  # a CUDA context first: the memory-statistics calls refuse a device without one
    env = ctx.out / "env.json"
    matmul = json.loads(env.read_text()).get("matmul_bf16_tflops") if env.is_file() else None
    cases = DRY_SPEED_CASES if ctx.dry_run else SPEED_CASES
    timed_n = 3 if ctx.dry_run else 10
    for compile_ in (False, True):
        # compiled: the smaller model first, the likelier to finish inside the time left
        for name, (scale, sets, batches) in (reversed(cases.items()) if compile_ else cases.items()):
            if name == "imagenet128" and ctx.batches:
                batches = [int(b) for b in ctx.batches.split(",")]
            key = f"{name}_{'compiled' if compile_ else 'eager'}"
            if time.time() > deadline - (60 if compile_ else 30):
                out[key] = {"skipped": "out of time"}
                save()
                continue
            if compile_:  # the eager case's batch: compiled and eager compared at the same size
                eager = out.get(f"{name}_eager", {})
                if "batch" not in eager:
                    continue
                batches = [eager["batch"]]
            row: dict = {"tried": []}
            out[key] = row
            for b in batches:
                trainer = None
                try:
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                        torch.cuda.reset_peak_memory_stats(dev)
                    trainer, cfg = _trainer(scale, sets, b, compile_, ctx)
                    t0 = time.perf_counter()
                    trainer.train_iteration()
                    sync(dev)
                    first = time.perf_counter() - t0
                    trainer.train_iteration()
                    sync(dev)
                except torch.cuda.OutOfMemoryError:
                    row["tried"].append({"batch": b, "result": "out of memory"})
                    del trainer
                    continue
                row.update({"batch": b, "first_iter_s": first, "d_steps": cfg.optim.d_steps})
                save()
                if not compile_:
                    with FlopCounterMode(display=False) as fc:
                        trainer.train_iteration()
                    row["tflop_per_iter"] = fc.get_total_flops() / 1e12
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                times = _timed(trainer, dev, timed_n)
                s = statistics.median(times)
                flops = out.get(f"{name}_eager", row).get("tflop_per_iter")
                row.update({"s_per_iter_median": s, "s_per_iter_min": min(times), "s_per_iter_max": max(times),
                            "iters_timed": timed_n, "img_per_s": (cfg.optim.d_steps + 1) * b / s})
                if dev.type == "cuda":
                    row["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
                if flops:
                    row["tflops"] = flops / s
                    row["mfu_vs_datasheet"] = flops / s / H200_DENSE_BF16_TFLOPS
                    if matmul:
                        row["fraction_of_measured_matmul"] = flops / s / matmul
                if compile_:
                    row["compile_s"] = first - s
                    row["speedup_vs_eager"] = out[f"{name}_eager"]["s_per_iter_median"] / s
                save()
                del trainer
                break


def _draw_image(args: tuple[int, int, str]) -> None:
    """One 128 px PNG of class ``k``: a filled shape (class = shape x colour family) on a soft gradient."""
    from PIL import Image

    k, i, path = args
    rng = np.random.default_rng(k * 100003 + i)
    n = 128
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    bg = rng.uniform(0.1, 0.5, 3)[None, None, :] + 0.2 * (yy / n)[:, :, None] * rng.uniform(-1, 1, 3)
    cx, cy, r = rng.uniform(40, 88), rng.uniform(40, 88), rng.uniform(16, 34)
    shape = k % 5
    if shape == 0:
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
    elif shape == 1:
        mask = (abs(xx - cx) < r) & (abs(yy - cy) < r)
    elif shape == 2:
        mask = abs(xx - cx) + abs(yy - cy) < r
    elif shape == 3:
        mask = ((abs(xx - cx) < r) & (abs(yy - cy) < r / 4)) | ((abs(xx - cx) < r / 4) & (abs(yy - cy) < r))
    else:
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r**2) & ((xx - cx) ** 2 + (yy - cy) ** 2 > (r / 2) ** 2)
    colour = np.array([[0.9, 0.2, 0.2], [0.2, 0.4, 0.9]][k // 5]) + rng.uniform(-0.1, 0.1, 3)
    img = np.where(mask[:, :, None], colour[None, None, :], bg)
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)


def make_folder_data(root: Path, classes: int, per_class: int) -> None:
    from multiprocessing import Pool

    jobs = []
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
        jobs += [(k, i, str(root / f"class{k}" / f"{i:05d}.png")) for i in range(per_class)]
    with Pool(min(8, os.cpu_count() or 1)) as pool:
        pool.map(_draw_image, jobs, chunksize=32)


def section_train128(ctx: argparse.Namespace, out: dict, save) -> None:
    work = ctx.work
    data, run = work / "shapes", work / "train128"
    shutil.rmtree(run, ignore_errors=True)
    t = time.perf_counter()
    per_class = 20 if ctx.dry_run else 300
    make_folder_data(data, 10, per_class)
    out["data"] = {"images": 10 * per_class, "classes": 10, "px": 128, "make_s": time.perf_counter() - t}
    save()
    minutes = max(0.5, (ctx.deadline - time.time() - 75) / 60)  # leaves time for start-up and the checkpoint
    batch = 8 if ctx.dry_run else ctx.train_batch
    speed = ctx.out / "speed.json"
    fits = json.loads(speed.read_text()).get("imagenet128_eager", {}).get("batch") if speed.is_file() else None
    if fits and not ctx.dry_run:  # never more than the speed section found to fit
        batch = min(batch, fits)
    scale = "tiny" if ctx.dry_run else "imagenet128"
    cmd = [sys.executable, "-m", "bigbigan", "train", "--scale", scale, "--data", "folder", "--data-dir", str(data),
           "--minutes", f"{minutes:.2f}", "--steps", "10000000", "--precision", "bf16", "--device", ctx.device.type,
           "--set", f"optim.batch_size={batch}", "--set", f"train.channels_last={ctx.device.type == 'cuda'}",
           "--set", f"data.num_workers={0 if ctx.dry_run else 6}", "--set", "train.log_every=10",
           "--set", "train.image_every=100", "--set", "train.ckpt_every=1000000",
           "--set", f"data.train_val_size={per_class}", "--out", str(run)]
    out["minutes"], out["batch"] = minutes, batch
    r = _run(cmd, work / "train128.log", ctx.deadline - time.time())
    r["losses"] = _losses(run)
    out.update(r)
    pics = sorted((run / "images").glob("samples-*.png")) if (run / "images").is_dir() else []
    if pics:
        shutil.copy(pics[-1], ctx.out / "train128_samples.png")
        out["samples_png"] = pics[-1].name
    first, last = r["losses"].get("first", {}), r["losses"].get("last", {})
    out["ok"] = r["rc"] == 0 and bool(first) and first["step"] < last["step"] and \
        first.get("loss/D") != last.get("loss/D")


def section_tests(ctx: argparse.Namespace, out: dict, save) -> None:
    repo = Path(__file__).resolve().parents[1]
    log = ctx.work / "tests.log"
    workers = ["-n", "8"] if not ctx.dry_run and not ctx.tests else []
    sel = ctx.tests.split() if ctx.tests else (["tests/train/test_trainer.py"] if ctx.dry_run else [])
    if importlib.util.find_spec("pytest_timeout") is not None:
        sel = ["--timeout", "120", "--tb", "short", *sel]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-v", "-rfE", *workers,
           "--device", ctx.device.type, *sel]
    r = _run(cmd, log, ctx.deadline - time.time() - 5, env={"OMP_NUM_THREADS": "1"})  # workers share the cores
    text = log.read_text(errors="replace")
    counts = {w: text.count(f" {w} ") + text.count(f" {w}\n") for w in ("PASSED", "FAILED", "SKIPPED", "ERROR")}
    r.update({"cwd": str(repo), "counts_from_log": counts,
              "failed": sorted({ln.split(" - ")[0].replace("FAILED ", "") for ln in text.splitlines()
                                if ln.startswith("FAILED ")}),
              "summary": [ln for ln in text.splitlines() if " passed" in ln or " failed" in ln][-1:]})
    out.update(r)


FNS = {"env": section_env, "nccl": section_nccl, "cli": section_cli, "speed": section_speed,
       "train128": section_train128, "tests": section_tests}


def run_section(ctx: argparse.Namespace) -> int:
    out: dict = {"section": ctx.section, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = ctx.out / f"{ctx.section}.json"

    def save() -> None:
        write_json(path, out)

    try:
        FNS[ctx.section](ctx, out, save)
    except Exception as e:  # noqa: BLE001 (recorded, not raised: the other sections still run and report)
        import traceback

        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()[-4000:]
    out["finished"] = True
    save()
    return 0 if "error" not in out else 1


# ---- the orchestrator ----------------------------------------------------------------------------------------


def _start(name: str, ctx: argparse.Namespace, limit: float) -> tuple[subprocess.Popen, float]:
    argv = [sys.executable, __file__, "--section", name, "--out", str(ctx.out), "--work", str(ctx.work),
            "--deadline", str(time.time() + limit), "--train-batch", str(ctx.train_batch)] + \
        (["--dry-run"] if ctx.dry_run else []) + (["--tests", ctx.tests] if ctx.tests else []) + \
        (["--batches", ctx.batches] if ctx.batches else [])
    with open(ctx.work / f"section_{name}.log", "w") as log:  # the child keeps its own handle
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), limit


def _wait(name: str, proc: subprocess.Popen, limit: float, status: dict, started: float) -> None:
    try:
        rc = proc.wait(timeout=max(1.0, started + limit + 15 - time.time()))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "killed at its time limit"
    status[name] = {"rc": rc, "wall_s": time.time() - started}
    print(f"== {name}: {status[name]}", flush=True)


def orchestrate(ctx: argparse.Namespace) -> int:
    t_end = time.time() + ctx.budget_s
    status: dict = {}
    wanted = set(ctx.sections.split(","))
    for name in ("env", "nccl", "cli", "speed"):
        if name not in wanted:
            continue
        left = t_end - time.time() - MIN_S["train128"]  # keep room for the last pair
        if left < MIN_S[name]:
            status[name] = {"skipped": "out of time"}
            continue
        limit = min(MAX_S[name], left)
        t = time.time()
        proc, limit = _start(name, ctx, limit)
        _wait(name, proc, limit, status, t)
    left = t_end - time.time()
    if left >= MIN_S["train128"]:  # the training and the test suite side by side: GPU work, then CPU work
        t = time.time()
        pair = {n: _start(n, ctx, min(MAX_S[n], left)) for n in ("train128", "tests") if n in wanted}
        for n, (proc, limit) in pair.items():
            _wait(n, proc, limit, status, t)
    else:
        status["train128"] = status["tests"] = {"skipped": "out of time"}
    merged = {"status": status, "budget_s": ctx.budget_s, "dry_run": ctx.dry_run,
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    for name in SECTIONS:
        p = ctx.out / f"{name}.json"
        if p.is_file():
            merged[name] = json.loads(p.read_text())
            p.unlink()
    write_json(ctx.out / "gpu_check.json", merged)
    with tarfile.open(ctx.out / "logs.tar.gz", "w:gz") as tar:
        for p in sorted(ctx.work.glob("*.log")) + sorted(ctx.work.glob("*/stats.jsonl")):
            tar.add(p, arcname=str(p.relative_to(ctx.work)))
    print(json.dumps({n: merged.get(n, {}).get("ok", merged.get(n, {}).get("error")) for n in SECTIONS}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="where gpu_check.json, logs.tar.gz and the sample grid go")
    p.add_argument("--work", help="scratch directory (default /tmp/bigbigan-gpu-check)")
    p.add_argument("--budget-s", type=float, default=500, help="seconds for everything (default %(default)s)")
    p.add_argument("--train-batch", type=int, default=256, help="train128's batch (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on whatever device there is")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma list of sections (default: all)")
    p.add_argument("--tests", help="tests: pytest arguments (node ids) instead of the whole suite on 8 workers")
    p.add_argument("--batches", help="speed: imagenet128 batch sizes to try, largest first (default 512,256,128,64)")
    p.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    ctx = p.parse_args(argv)
    ctx.out = Path(ctx.out)
    ctx.work = Path(ctx.work or "/tmp/bigbigan-gpu-check")
    ctx.out.mkdir(parents=True, exist_ok=True)
    ctx.work.mkdir(parents=True, exist_ok=True)
    ctx.device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if ctx.section:
        return run_section(ctx)
    return orchestrate(ctx)


if __name__ == "__main__":
    sys.exit(main())
