"""Start or resume a training run in a run directory: configuration checks, data stream and ``Trainer``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from .. import dist as bdist
from .. import rundir
from ..checkpoint import config_differences, load_latest
from ..config import Config, ConfigError, from_dict, load_yaml, to_dict
from ..data import build_stream
from .loop import Hook, Trainer


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_resumable(saved: Config, given: Config) -> None:
    """A run may only be resumed with the same settings, except the ``train.*`` budget and cadence fields and the
    ``eval.*`` fields (they do not change training)."""
    a, b = _flatten(to_dict(saved)), _flatten(to_dict(given))
    for key in a:
        if key.startswith(("train.", "eval.")) or key == "data.num_workers":
            continue
        if a[key] != b.get(key):
            raise ConfigError(
                f"the run was trained with {key}={a[key]!r} but this command asks for {b.get(key)!r}; "
                "resume with the run's own settings (omit --scale/--variant/--set) or use a new --out"
            )


def saved_config(run_dir: str | Path) -> Config | None:
    """The run's own configuration: its latest checkpoint's (the truth), else ``config.yaml``, else None.

    A ``config.yaml`` that disagrees with the checkpoint (edited by hand, say) is an error naming the fields,
    never silently preferred: the weights were trained with the checkpoint's settings.
    """
    p = Path(run_dir) / "config.yaml"
    state = load_latest(run_dir)
    if state is None:
        return load_yaml(p) if p.is_file() else None
    cfg = from_dict(state["config"])
    if p.is_file():
        differ = config_differences(to_dict(load_yaml(p)), to_dict(cfg))
        if differ:
            raise ConfigError(
                f"{p} disagrees with checkpoint step {state['step']} ({differ}); the checkpoint's settings are "
                "the run's: restore config.yaml or use a new --out"
            )
    return cfg


def run_training(cfg: Config, run_dir: str | Path, *, device: str | None = None, progress: bool = True,
                 log=print, pictures: Hook | None = None, evaluate: Hook | None = None) -> dict:
    """Train ``cfg`` in ``run_dir``, resuming from its latest checkpoint when there is one.

    ``pictures`` and ``evaluate`` are the trainer's maintenance hooks (see ``Trainer``); ``bigbigan.workflows``
    passes the standard ones (training grids, periodic evaluation).
    """
    info = bdist.init(device)
    # One writer per run directory: rank 0 holds the lock for the whole run (the OS drops it if we die).
    holding = contextlib.nullcontext()
    if info.is_main:
        holding = rundir.lock(rundir.prepare(run_dir, cfg.data.data_dir))
    with holding:
        torch.manual_seed(cfg.train.seed)
        stream = build_stream(cfg, rank=info.rank, world=info.world)
        trainer = Trainer(cfg, run_dir, stream=stream, device=info.device, progress=progress, log=log,
                          pictures=pictures, evaluate=evaluate)
        if trainer.resume():
            trainer.log(f"resumed {run_dir} at step {trainer.step}")
        return trainer.fit()
