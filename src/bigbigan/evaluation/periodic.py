"""Evaluation during training (App. D learning curves): a fast linear probe on train_val and a quick FID.

Every ``train.eval_every`` steps the trainer calls ``PeriodicEval``: it trains the fast probe from scratch on
freshly extracted features of the EMA encoder (a seeded, class-stratified sample of train_sub, for speed: never
its first N images, which in class-sorted folder data cover a few classes), scores train_val, optionally
computes FID with ``train.eval_fid_samples`` images, appends a record to ``RUN_DIR/metrics.jsonl`` and marks
the checkpoint with the best train_val accuracy as best (never deleted by checkpoint rotation).
"""

from __future__ import annotations

import time

import torch

from .. import dist as bdist
from ..checkpoint import best_checkpoint, mark_best
from ..config import Config
from ..data import open_split
from ..data.subset import SUBSET_SEED, subset_source
from ..files import append_jsonl
from .features import extract_features
from .generative import generation_metrics
from .linear_probe import train_linear_probe


class PeriodicEval:
    """The trainer's evaluation hook: ``PeriodicEval(cfg)(trainer)`` on every rank returns the record."""

    def __init__(self, cfg: Config, *, train_images: int = 10000, probe_steps: int = 1000) -> None:
        self.cfg = cfg
        self.subset_seed = SUBSET_SEED
        self.train_src = subset_source(open_split(cfg, "train_sub"), train_images, seed=self.subset_seed)
        self.val_src = open_split(cfg, "train_val")
        self.train_images = train_images
        self.probe_steps = probe_steps

    @torch.no_grad()
    def probe(self, E, device: torch.device | str = "cpu") -> float:
        """train_val top-1 of the fast probe trained from scratch on encoder ``E``'s features."""
        kw = {"resolution": self.cfg.model.e_resolution, "channels": self.cfg.model.channels, "device": device,
              "progress": False}
        tr_f, tr_y = extract_features(E, self.train_src, **kw)
        va_f, va_y = extract_features(E, self.val_src, **kw)
        r = train_linear_probe(tr_f, tr_y, va_f, va_y, num_classes=self.train_src.num_classes,
                               steps=self.probe_steps)
        return r.top1

    @torch.no_grad()
    def __call__(self, trainer) -> dict:
        cfg, t0 = self.cfg, time.monotonic()
        # minutes: wall clock of this training session up to this evaluation (time to accuracy, App. D curves)
        rec: dict = {"step": trainer.step, "minutes": trainer.minutes, "subset_seed": self.subset_seed}
        G, E = trainer.eval_models()  # EMA models with standing statistics when configured (every rank)
        if E is not None and self.train_src.num_classes:
            rec["train_val_top1"] = self.probe(E, trainer.device)
        if cfg.train.eval_fid_samples:
            rec.update(generation_metrics(cfg, G, n=cfg.train.eval_fid_samples,
                                          metrics={"fid"}, inception_weights=None, device=trainer.device,
                                          progress=False, subset_seed=self.subset_seed))
        rec["eval_seconds"] = time.monotonic() - t0
        if bdist.info().is_main:
            append_jsonl(trainer.run_dir / "metrics.jsonl", rec)
            if "train_val_top1" in rec:
                best = best_checkpoint(trainer.run_dir)
                if best is None or rec["train_val_top1"] > best["value"]:
                    mark_best(trainer.run_dir, trainer.step, "train_val_top1", rec["train_val_top1"])
            trainer.log(f"step {trainer.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in rec.items()
                                                             if isinstance(v, float)))
        return rec
