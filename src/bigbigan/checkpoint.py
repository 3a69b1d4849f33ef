"""Checkpoints: plain state dicts + config + step + RNG states, written atomically, loaded without unpickling code.

Below both training (which writes them) and evaluation (which reads them and marks the best one).

Files are ``RUN_DIR/checkpoints/ckpt-{step:08d}.pt``. A write goes to a temporary file in the same directory,
is fsync'ed and then renamed over the final name, so a kill at any moment leaves every existing checkpoint
intact. Loading uses ``torch.load(..., weights_only=True)``: a file that needs arbitrary code to unpickle is
refused.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

from .files import atomic_save, atomic_write_text, replacing

CKPT_RE = re.compile(r"^ckpt-(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message is one line naming the file and the reason."""


def ckpt_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in ``run_dir``, oldest first."""
    d = ckpt_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := CKPT_RE.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir: str | Path, step: int, state: dict, keep: int) -> Path:
    """Write the checkpoint of ``step`` and delete all but the newest ``keep`` (the best one is never deleted)."""
    path = ckpt_dir(run_dir) / f"ckpt-{step:08d}.pt"
    try:
        atomic_save(state, path)
    except OSError as exc:  # a full disk, say: the temporary file is gone, every older checkpoint is intact
        older = [p.name for _, p in list_checkpoints(run_dir)]
        kept = f"the older checkpoints are intact ({', '.join(older)})" if older else "no older checkpoint exists"
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}; {kept}") from None
    best = best_checkpoint(run_dir)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        if best is None or old.name != best.get("checkpoint"):
            old.unlink(missing_ok=True)
    return path


def load_file(path: str | Path) -> dict:
    """Load one checkpoint file safely (tensors and plain containers only) onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot load checkpoint {path}: {first[:300]} (only weights_only files written by bigbigan load)"
        ) from None
    if not isinstance(state, dict) or "config" not in state or "step" not in state:
        raise CheckpointError(f"{path} is not a bigbigan checkpoint (no config/step)")
    return state


# Fields that may change between a run's invocations: the budget and cadence (``train.*``), the loader count.
MUTABLE_FIELDS = ("train.", "data.num_workers", "eval.")  # eval.*: evaluation settings, not the model


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(a: dict, b: dict) -> str:
    """The fields (outside MUTABLE_FIELDS) where config dicts ``a`` and ``b`` differ, as ``key: a != b``."""
    fa, fb = _flatten(a), _flatten(b)
    keys = [k for k in sorted(set(fa) | set(fb)) if not k.startswith(MUTABLE_FIELDS) and fa.get(k) != fb.get(k)]
    return ", ".join(f"{k}: {fa.get(k)!r} != {fb.get(k)!r}" for k in keys)


def load_latest(run_dir: str | Path) -> dict | None:
    """The newest loadable checkpoint of ``run_dir`` (falling back to older ones with a warning), or None."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            return load_file(path)
        except CheckpointError as exc:
            warnings.warn(f"skipping unreadable checkpoint: {exc}", stacklevel=2)
    return None


def resolve_checkpoint(run_or_ckpt: str | Path, which: str = "latest") -> Path:
    """A checkpoint path from a run directory (``latest`` or ``best``) or a checkpoint file."""
    p = Path(run_or_ckpt)
    if p.is_file():
        return p
    if not p.is_dir():
        raise CheckpointError(f"{p} is neither a run directory nor a checkpoint file")
    if which == "best" and (b := best_checkpoint(p)) is not None:
        path = ckpt_dir(p) / b["checkpoint"]
        if path.is_file():
            return path
    ckpts = list_checkpoints(p)
    if not ckpts:
        raise CheckpointError(f"no checkpoints in {ckpt_dir(p)}")
    return ckpts[-1][1]


def best_checkpoint(run_dir: str | Path) -> dict | None:
    p = ckpt_dir(run_dir) / "best.json"
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def mark_best(run_dir: str | Path, step: int, metric: str, value: float) -> None:
    record = {"checkpoint": f"ckpt-{step:08d}.pt", "step": step, "metric": metric, "value": value}
    atomic_write_text(ckpt_dir(run_dir) / "best.json", json.dumps(record))


def export_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> Path:
    """Write tensors (e.g. the EMA G and E) as safetensors with the run's config in the metadata."""
    path = Path(path)
    with replacing(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"config": json.dumps(config)})
    return path
