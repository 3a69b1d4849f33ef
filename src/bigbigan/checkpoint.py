"""Checkpoints: plain state dicts + config + step + RNG states, written atomically, loaded without unpickling code.

Below both training (which writes them) and evaluation (which reads them and marks the best one).

Files are ``RUN_DIR/checkpoints/ckpt-{step:08d}.pt``. A write goes to a temporary file in the same directory,
is fsync'ed and then renamed over the final name, so a kill at any moment leaves every existing checkpoint
intact. Loading uses ``torch.load(..., weights_only=True)``: a file that needs arbitrary code to unpickle is
refused.

Exported models (``config.json`` + ``model.safetensors``, written by ``export.py``) are read here too, so that
evaluation and ``bigbigan.load`` accept them alike.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file
from torch import Tensor, nn

from .config import Config, from_dict
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


def export_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], config: dict,
                       step: int | None = None) -> Path:
    """Write tensors (e.g. the EMA G and E) as safetensors with the run's config (and the training step, when
    given) in the metadata."""
    path = Path(path)
    metadata = {"config": json.dumps(config)}
    if step is not None:
        metadata["step"] = str(int(step))
    with replacing(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return path


# ---- exported models (written by ``bigbigan export``; read here, below both evaluation and ``bigbigan.load``) ----

FORMAT = "bigbigan-export"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PRETRAINED_ROOT = Path(__file__).resolve().parent / "pretrained"  # shipped exports: PRETRAINED_ROOT/<name>/


def is_export(path: str | Path) -> bool:
    p = Path(path)
    return (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


def read_export(path: str | Path) -> tuple[Config, dict[str, Tensor], dict]:
    """(configuration, float32 tensors, config.json contents) of an exported directory or a ``.safetensors``
    file with the configuration in its metadata (``ema.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        meta_path, weights = p / CONFIG_NAME, p / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(f"{p} has no {WEIGHTS_NAME}: not an exported bigbigan model")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {meta_path}: {exc}") from None
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{meta_path} is not a bigbigan export (format {meta.get('format')!r})")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(f"{meta_path} has format version {meta['format_version']}; this bigbigan "
                                  f"reads up to {FORMAT_VERSION} (upgrade bigbigan)")
        config = meta["config"]
    else:
        weights = p
        try:
            with safe_open(str(p), framework="pt") as f:
                file_meta = f.metadata() or {}
            raw = file_meta.get("config")
        except Exception as exc:  # noqa: BLE001 - any failure to read is reported in one line
            raise CheckpointError(f"cannot read {p} as safetensors: {str(exc).splitlines()[0][:200]}") from None
        if raw is None:
            raise CheckpointError(f"{p} carries no bigbigan configuration in its metadata")
        config = json.loads(raw)
        meta = {"step": int(file_meta["step"])} if file_meta.get("step", "").isdigit() else {}
    tensors = load_safetensors(str(weights))
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return from_dict(config), tensors, meta


def shipped_names() -> list[str]:
    """Names of the exported models shipped in the package (``bigbigan.load(name)``)."""
    root = PRETRAINED_ROOT
    return sorted(p.name for p in root.iterdir() if is_export(p)) if root.is_dir() else []


def find_export(target: str | Path) -> tuple[Path, bool] | None:
    """(path, shipped) when ``target`` names an exported model: an exported directory, a ``.safetensors`` file
    (``ema.safetensors``) or, where no such local path exists, the name of a shipped model; else None.
    A local path wins over a shipped name."""
    p = Path(target)
    if p.exists():
        if (p.is_dir() and is_export(p)) or (p.is_file() and p.suffix == ".safetensors"):
            return p, False
        return None
    shipped = PRETRAINED_ROOT / str(target)
    if isinstance(target, str) and "/" not in target and is_export(shipped):
        return shipped, True
    return None


def load_export_weights(path: str | Path, tensors: dict[str, Tensor], G: nn.Module, E: nn.Module | None) -> None:
    """Load an export's ``G.`` and ``E.`` tensors into freshly built G and E (a mismatch names the file)."""

    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        G.load_state_dict(part("G."))
        if E is not None:
            E.load_state_dict(part("E."))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match its configuration: "
                              f"{str(exc).splitlines()[0][:200]}") from None
