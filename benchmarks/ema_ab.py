"""EMA scheme and standing statistics A/B on one training trajectory (paired: the same live weights).

    python benchmarks/ema_ab.py --steps 3000 [--seed 0] [--fid-samples 2000] [--set ...]

Trains ``small32`` base on Fashion-MNIST with the benchmark's configuration (``fashion_mnist.DEFAULT_SETS``:
bf16, x2-wide encoder) for ``--steps`` iterations. Beside the trainer's own EMA (BigGAN's scheme: a copy up to
``optim.ema_start``, then the fixed decay) it keeps a shadow EMA with the formula used before that change,
``decay_t = min(decay, (1 + t) / (warmup + t))`` with the earlier small32 values (decay 0.999, warm-up 100),
updated after every iteration from the same live G and E. At the end the shadow is written as a sibling run
(``OUT-old-ema``: the final checkpoint with its EMA weights replaced), and both are evaluated with and without
standing statistics by ``bigbigan eval``'s own code: linear probe (test split) and FID/KID against the
training split. Since the live trajectory is shared, the differences are due to the averaging alone.

Writes ``benchmarks/results/ema_ab.json`` and prints a Markdown table. The shadow EMA is not checkpointed:
an interrupted run restarts its training from scratch (delete OUT first).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import shutil
import sys
from pathlib import Path

import torch

from bigbigan.checkpoint import load_file, resolve_checkpoint
from bigbigan.evaluation.run import evaluate
from bigbigan.files import atomic_save, atomic_write_text
from bigbigan.presets import resolve
from bigbigan.runtime import tune_allocator
from bigbigan.train import loop
from bigbigan.workflows import train as run_training

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from fashion_mnist import DEFAULT_SETS  # the benchmark's configuration, one definition

OLD_DECAY, OLD_WARMUP = 0.999, 100  # small32's values before the change (presets.py at commit 0e505f1)


class WarmupEMA:
    """The earlier scheme, kept here only as the comparison arm: decay_t = min(decay, (1 + t) / (warmup + t))."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup: int) -> None:
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.decay, self.warmup, self.t = decay, warmup, 0

    @torch.no_grad()
    def update(self, live: torch.nn.Module) -> None:
        d = min(self.decay, (1.0 + self.t) / (self.warmup + self.t))
        torch._foreach_lerp_(list(self.model.parameters()), [p.detach().float() for p in live.parameters()], 1 - d)
        for b_ema, b in zip(self.model.buffers(), live.buffers()):
            b_ema.copy_(b)
        self.t += 1


def shadow_trainer(shadows: dict) -> None:
    """Patch the trainer so every iteration also updates a WarmupEMA of G and E (same live weights)."""
    init, iteration = loop.Trainer.__init__, loop.Trainer.train_iteration

    def patched_init(self, *a, **k):
        init(self, *a, **k)
        shadows["G"] = WarmupEMA(self.ema_G.model, OLD_DECAY, OLD_WARMUP)  # the EMA's copy of the initial G
        shadows["E"] = WarmupEMA(self.ema_E.model, OLD_DECAY, OLD_WARMUP)

    def patched_iteration(self):
        iteration(self)
        shadows["G"].update(self.G)
        shadows["E"].update(self.E)

    loop.Trainer.__init__, loop.Trainer.train_iteration = patched_init, patched_iteration


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fid-samples", type=int, default=2000, help="images per side for FID/KID (default 2000)")
    p.add_argument("--probe-steps", type=int, default=5000)
    p.add_argument("--train-limit", type=int, help="probe on a seeded sample of this many training images")
    p.add_argument("--standing-batches", type=int, default=16)
    p.add_argument("--out", default=str(ROOT / "runs" / "ema_ab"))
    p.add_argument("--json", default=str(ROOT / "results" / "ema_ab.json"))
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)
    tune_allocator()
    out = Path(args.out)
    new_run, old_run = out / f"seed{args.seed}", out / f"seed{args.seed}-old-ema"
    cfg = resolve("small32", "base", ["data.source=fashion-mnist", f"train.steps={args.steps}",
                                      f"train.seed={args.seed}", "train.eval_every=0", *DEFAULT_SETS, *args.set])
    if (new_run / "checkpoints").is_dir():
        sys.exit(f"{new_run} exists: the shadow EMA is not checkpointed, delete it to rerun")
    shadows: dict = {}
    shadow_trainer(shadows)
    summary = run_training(cfg, new_run, periodic_eval=False)
    # The sibling run: the same final checkpoint, its EMA weights replaced by the shadow's.
    ckpt = resolve_checkpoint(new_run)
    state = load_file(ckpt)
    for name in ("G", "E"):
        state[f"{name}_ema"]["model"] = shadows[name].model.state_dict()
    (old_run / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_save(state, old_run / "checkpoints" / ckpt.name)
    shutil.copy(new_run / "config.yaml", old_run / "config.yaml")

    arms = {}
    for ema, run in (("biggan", new_run), ("warmup", old_run)):
        for standing in (args.standing_batches, 0):
            name = f"{ema}-ema/standing-{standing}"
            print(f"== {name}")
            arms[name] = evaluate(run, ["linear", "fid", "kid", "recon"], fid_samples=args.fid_samples,
                                  probe_steps=args.probe_steps, features=("avepool", "bn-crelu"),
                                  train_limit=args.train_limit, standing_stats_batches=standing,
                                  pictures=False)
    keys = ("linear_avepool_top1", "linear_bn_crelu_top1", "fid", "kid", "rel_l1")
    res = {"command": "python benchmarks/ema_ab.py " + " ".join(argv or sys.argv[1:]),
           "date": datetime.date.today().isoformat(), "steps": summary["step"],
           "train_minutes": summary["seconds"] / 60, "fid_samples": args.fid_samples,
           "old_scheme": {"decay": OLD_DECAY, "warmup": OLD_WARMUP,
                          "decay_at_end": min(OLD_DECAY, (1 + summary["step"]) / (OLD_WARMUP + summary["step"]))},
           "new_scheme": {"decay": cfg.optim.ema_decay, "start": cfg.optim.ema_start},
           "arms": {k: {m: v.get(m) for m in keys} for k, v in arms.items()}, "full": arms}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.json), json.dumps(res, indent=2))
    print("| EMA | BN statistics | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for k, v in res["arms"].items():
        ema, standing = k.split("/")
        cells = ["n/a" if v[m] is None else f"{v[m]:.4f}" for m in keys]
        print(f"| {ema} | {standing} | " + " | ".join(cells) + " |")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
