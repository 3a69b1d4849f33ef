"""The glue above training and evaluation: a training run with the standard maintenance hooks.

``train`` and ``evaluation`` never import each other; this module hands the trainer its picture hook (EMA
sample and reconstruction grids) and its periodic-evaluation hook (App. D learning curves, best checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from .config import Config
from .evaluation.periodic import PeriodicEval
from .evaluation.training_pictures import TrainingGrids
from .train.run import run_training


def train(cfg: Config, run_dir: str | Path, *, device: str | None = None, progress: bool = True,
          periodic_eval: bool = True, log=print) -> dict:
    """Train ``cfg`` in ``run_dir`` (resuming it) with training grids and, when ``periodic_eval`` and
    ``train.eval_every``, the periodic evaluation; returns the trainer's summary."""
    evaluate = PeriodicEval(cfg) if periodic_eval and cfg.train.eval_every else None
    return run_training(cfg, run_dir, device=device, progress=progress, log=log, pictures=TrainingGrids(),
                        evaluate=evaluate)
