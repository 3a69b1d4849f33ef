"""The allowed range of every numeric configuration field, checked by ``validate``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .errors import ConfigError

# Range of every numeric field not checked by a choice list above: (low, high, whether high itself is allowed);
# low is allowed except for the fields in STRICTLY_POSITIVE. Sizes are bounded too, so an impossible model is refused before it is built (an
# e_resolution of 100000 would ask for terabytes). A field missing here is caught by the test that walks
# every numeric field of Config.
INF = float("inf")
RANGES: dict[str, tuple[float, float, bool]] = {
    "model.z_dim": (1, 4096, True),
    "model.e_resolution": (16, 1024, True),
    "model.generator.ch": (1, 1024, True),
    "model.generator.shared_dim": (1, 4096, True),
    "model.generator.attention": (0, 256, True),
    "model.discriminator.ch": (1, 1024, True),
    "model.discriminator.attention": (0, 256, True),
    "model.discriminator.mlp_width": (1, 65536, True),
    "model.discriminator.mlp_blocks": (0, 64, True),
    "model.encoder.width": (1, 64, True),
    "model.encoder.base_width": (4, 4096, True),
    "model.encoder.mlp_width": (1, 65536, True),
    "model.encoder.mlp_blocks": (0, 64, True),
    "optim.batch_size": (1, 1 << 20, True),
    "optim.lr_g": (0.0, 1.0, True),
    "optim.lr_d": (0.0, 1.0, True),
    "optim.e_lr_mult": (0.0, 1000.0, True),
    "optim.beta1": (0.0, 1.0, False),
    "optim.beta2": (0.0, 1.0, False),
    "optim.adam_eps": (0.0, 1.0, True),
    "optim.d_steps": (1, 100, True),
    "optim.ema_decay": (0.0, 1.0, False),
    "optim.ema_start": (0, INF, False),
    "eval.standing_stats_batches": (0, 1 << 20, False),
    "eval.standing_stats_batch_size": (1, 1 << 20, True),
    "eval.standing_stats_seed": (0, 2**63 - 2, True),
    "data.train_val_size": (0, INF, False),
    "data.num_workers": (0, 1024, True),
    "train.steps": (0, INF, False),
    "train.minutes": (0.0, INF, False),
    "train.seed": (0, 2**63 - 2, True),
    "train.log_every": (1, INF, False),
    "train.image_every": (1, INF, False),
    "train.ckpt_every": (1, INF, False),
    "train.keep_ckpts": (1, INF, False),
    "train.eval_every": (0, INF, False),
    "train.eval_fid_samples": (0, INF, False),
}
STRICTLY_POSITIVE = {"optim.lr_g", "optim.lr_d", "optim.adam_eps", "train.minutes"}


def numeric_fields(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every int / float field (and tuple of ints) of a config tree by dotted path; bools excluded."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v, path = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v):
            out.update(numeric_fields(v, path + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[path] = v
    return out


def check_ranges(cfg: Any) -> None:
    """Refuse NaN / inf anywhere in ``cfg`` (a ``Config``) and any numeric field outside RANGES, naming the field
    and its range."""
    for path, v in numeric_fields(cfg).items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{path}={v} is not a finite number")
        if path not in RANGES:
            continue
        lo, hi, hi_in = RANGES[path]
        low_ok = v > lo if path in STRICTLY_POSITIVE else v >= lo
        if not low_ok or v > hi or (v == hi and not hi_in):
            low = f"> {lo:g}" if path in STRICTLY_POSITIVE else f">= {lo:g}"
            upper = "" if hi == INF else (f" and <= {hi:g}" if hi_in else f" and < {hi:g}")
            raise ConfigError(f"{path}={v!r} is out of range; use a value {low}{upper}")
