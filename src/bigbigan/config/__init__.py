"""The typed configuration of a BigBiGAN run: one dataclass tree, validated, saved to and loaded from YAML.

Every field has a default and a comment; ``apply_overrides(cfg, ["optim.lr_g=2e-4"])`` sets any field by its
dotted path with the field's own type, and unknown fields or bad values raise ``ConfigError`` (one line).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..nets.generator import G_ARCH
from ..objective import D_LOSS_MODES
from .errors import ConfigError
from .ranges import INF, RANGES, STRICTLY_POSITIVE, check_ranges, numeric_fields  # noqa: F401 (re-exported)

G_RESOLUTIONS = (8, 16, 32, 64, 128, 256)
E_ARCHS = ("resnet", "revnet", "none")
PRIORS = ("gaussian", "uniform")
TERMS = ("x", "z", "xz")
D_LOSSES = D_LOSS_MODES  # one list: the objective defines its modes
AUGMENTS = ("resnet", "distorted", "flip", "none")
PRECISIONS = ("fp32", "bf16")


@dataclass
class GeneratorConfig:
    ch: int = 96                       # channel multiplier (BigGAN 128x128: 96; "Small G" rows: 32/96, 64/96 of it)
    shared_dim: int = 128              # shared embedding; with one label it is a learned bias (SL setup)
    attention: int = 64                # resolution of the self-attention block; 0 disables it


@dataclass
class DiscriminatorConfig:
    ch: int = 96                       # channel multiplier of F, the BigGAN discriminator ConvNet
    attention: int = 64                # resolution of F's self-attention block; 0 disables it
    mlp_width: int = 2048              # width of H and J
    mlp_blocks: int = 4                # residual blocks of two layers each in H and J (8 layers)


@dataclass
class EncoderConfig:
    arch: str = "resnet"               # resnet (ResNet-v2) | revnet | none (the "No E (GAN)" row)
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # blocks per stage: (3,4,6,3) = 50 layers, (3,4,23,3) = 101
    width: int = 1                     # width multiplier (x1, x2, x4)
    base_width: int = 64               # bottleneck width of the first stage (ResNet-50: 64)
    stem: str = "imagenet"             # imagenet: 7x7/2 conv + max-pool; cifar: 3x3/1 conv (small images)
    mlp_width: int = 4096              # width of the MLP head after the average pool
    mlp_blocks: int = 2                # residual blocks of two layers in the head (4 layers)
    stochastic: bool = True            # z = mu + eps * softplus(sigma_hat); False: z = linear output


@dataclass
class ModelConfig:
    z_dim: int = 120                   # latent size; split into one chunk per G block plus one for the input
    prior: str = "gaussian"            # P_z: gaussian N(0, I) | uniform U(-1, 1) (E then deterministic: tanh(z_hat))
    channels: int = 3                  # image channels seen by G, D and E (1 for grayscale data)
    resolution: int = 128              # G output and D input resolution (px)
    e_resolution: int = 128            # E input resolution (px); 256 for the "High Res E" rows
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)


@dataclass
class ObjectiveConfig:
    terms: tuple[str, ...] = ("x", "z", "xz")  # score terms used: s_x, s_z, s_xz (Sec. 2)
    d_loss: str = "hinge_per_term"     # hinge_per_term (Sec. 2) | hinge_sum (footnote 1) | bigan_log


@dataclass
class OptimConfig:
    batch_size: int = 2048             # global batch (all ranks together)
    lr_g: float = 1e-4                 # G learning rate
    lr_d: float = 4e-4                 # D learning rate
    e_lr_mult: float = 1.0             # E learning rate = lr_g * e_lr_mult (10 for the "up E LR" rows)
    beta1: float = 0.0
    beta2: float = 0.999
    adam_eps: float = 1e-8
    fused_adam: bool = False           # CPU: one fused Adam kernel (fewer passes; rounding differs from foreach)
    d_steps: int = 2                   # D updates per joint E+G update
    ema_decay: float = 0.9999          # EMA of G and E weights, used for every evaluation (App. A)
    ema_start: int = 20000             # EMA = plain copy of the live weights up to this iteration, then the
                                       # fixed decay (BigGAN's scheme; BigGAN's ImageNet 128 launch: 20000)


@dataclass
class DataConfig:
    source: str = "fashion-mnist"      # fashion-mnist | mnist | digits | folder | cifar10 | shards
    data_dir: str | None = None        # where the data lives (default: the source's own location)
    augment: str = "resnet"            # resnet | distorted (Table 3's light augmentation) | flip | none
    train_val_size: int = 10000        # images held out of the training split for probe selection
    num_workers: int = 0               # loader processes for streaming sources (in-memory sources need none)


@dataclass
class TrainConfig:
    steps: int = 500_000               # total iterations (each: d_steps D updates + one E+G update)
    minutes: float | None = None       # stop after this many wall-clock minutes (whichever comes first)
    seed: int = 0
    precision: str = "fp32"            # fp32 | bf16 (autocast; losses, BN statistics, SN and EMA stay fp32)
    channels_last: bool = False        # NHWC memory format for convolutions
    compile: bool = False              # torch.compile the networks
    log_every: int = 50                # steps between scalar logs
    image_every: int = 1000            # steps between sample / reconstruction grids
    ckpt_every: int = 1000             # steps between checkpoints
    keep_ckpts: int = 3                # checkpoints kept (plus the best one)
    eval_every: int = 0                # steps between periodic evaluations (fast probe, quick FID); 0: off
    eval_fid_samples: int = 0          # images per side for the periodic FID; 0: no periodic FID


@dataclass
class EvalConfig:
    standing_stats_batches: int = 16   # BN statistics of EMA G and E re-estimated ("standing statistics", as
                                       # BigGAN) over this many seeded batches at evaluation and export; 0: off
    standing_stats_batch_size: int = 256  # global images (z) per standing-statistics batch, at most
                                       # optim.batch_size (BigGAN accumulates over its per-forward batch)
    standing_stats_seed: int = 0       # seed of the standing-statistics batches (z draws and image order)


@dataclass
class Config:
    scale: str = "imagenet128"
    variant: str = "base"
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# Fields of earlier versions that no longer exist, with why; from_dict(..., drop_legacy=True) accepts them.
LEGACY_FIELDS: dict[str, str] = {
    "optim.ema_warmup": "the EMA warm-up that preceded BigGAN's EMA scheme (optim.ema_start)",
}


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def validate(cfg: Config) -> Config:
    """Check values and combinations; raise ConfigError naming the first problem."""
    m, e = cfg.model, cfg.model.encoder
    _choice("model.resolution", m.resolution, G_RESOLUTIONS)
    _choice("model.prior", m.prior, PRIORS)
    _choice("model.encoder.arch", e.arch, E_ARCHS)
    _choice("model.encoder.stem", e.stem, ("imagenet", "cifar"))
    _choice("objective.d_loss", cfg.objective.d_loss, D_LOSSES)
    _choice("data.augment", cfg.data.augment, AUGMENTS)
    _choice("train.precision", cfg.train.precision, PRECISIONS)
    if m.channels not in (1, 3):
        raise ConfigError(f"model.channels={m.channels} is not valid; choose 1 (grayscale) or 3 (RGB)")
    terms = cfg.objective.terms
    if not terms or any(t not in TERMS for t in terms) or len(set(terms)) != len(terms):
        raise ConfigError(f"objective.terms={terms!r} is not valid; use a non-empty subset of {TERMS}")
    if e.arch == "none" and set(terms) != {"x"}:
        raise ConfigError(
            f"objective.terms={terms!r} needs an encoder but model.encoder.arch='none'; "
            "without E only the x term exists (use the no-e-gan variant, or set objective.terms=x)"
        )
    if e.arch != "none" and m.prior == "uniform" and e.stochastic:
        # E cannot sample N(mu, sigma) and land in U(-1, 1)'s support: with a uniform P_z it predicts
        # z = tanh(z_hat) (Table 1's Uniform P_z row, no "Var." tick). Refused rather than silently rewritten,
        # so that the saved configuration states what ran.
        raise ConfigError(
            "model.encoder.stochastic=True contradicts model.prior='uniform': with a uniform P_z, E predicts "
            "z = tanh(z_hat) deterministically; set model.encoder.stochastic=false (or use the uniform-pz variant)"
        )
    if e.arch != "none":
        if m.e_resolution < 16 or m.e_resolution % 8:
            raise ConfigError(f"model.e_resolution={m.e_resolution} is not valid; use a multiple of 8, >= 16")
        if not e.blocks or any(b < 1 for b in e.blocks):
            raise ConfigError(f"model.encoder.blocks={e.blocks!r} is not valid; use positive block counts")
        if e.width < 1 or e.base_width < 4:
            raise ConfigError("model.encoder.width must be >= 1 and model.encoder.base_width >= 4")
    n_chunks = _g_blocks(m.resolution) + 1
    if m.z_dim < n_chunks:
        raise ConfigError(f"model.z_dim={m.z_dim} is too small: G at {m.resolution}px needs >= {n_chunks}")
    for name, att in (("generator", m.generator.attention), ("discriminator", m.discriminator.attention)):
        if att and (att > m.resolution or att & (att - 1)):
            raise ConfigError(
                f"model.{name}.attention={att} is not valid at resolution {m.resolution}; use 0 or a power "
                f"of two <= {m.resolution}"
            )
    o, t = cfg.optim, cfg.train
    if o.batch_size < 1 or o.d_steps < 1:
        raise ConfigError("optim.batch_size and optim.d_steps must be >= 1")
    if not 0.0 <= o.ema_decay < 1.0:
        raise ConfigError(f"optim.ema_decay={o.ema_decay} is not valid; use 0 <= decay < 1")
    if o.ema_start < 0:
        raise ConfigError(f"optim.ema_start={o.ema_start} is not valid; use an iteration >= 0")
    ev = cfg.eval
    if ev.standing_stats_batches < 0 or ev.standing_stats_batch_size < 1:
        raise ConfigError("eval.standing_stats_batches must be >= 0 (0: off) and eval.standing_stats_batch_size >= 1")
    if t.steps < 0 or (t.minutes is not None and t.minutes <= 0):
        raise ConfigError("train.steps must be >= 0 and train.minutes > 0 when given")
    for k in ("log_every", "image_every", "ckpt_every", "keep_ckpts"):
        if getattr(t, k) < 1:
            raise ConfigError(f"train.{k} must be >= 1")
    check_ranges(cfg)
    return cfg


def _g_blocks(resolution: int) -> int:
    return len(G_ARCH[resolution]) - 1


# ---- dotted-path access -------------------------------------------------------------------------------------


def _field_type(obj: Any, name: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    return hints[name]


def _resolve(cfg: Config, path: str) -> tuple[Any, str]:
    parts = path.split(".")
    obj: Any = cfg
    for i, p in enumerate(parts):
        names = [f.name for f in dataclasses.fields(obj)]
        if p not in names:
            where = ".".join(parts[:i]) or "the configuration"
            raise ConfigError(f"unknown field {path!r}: {where} has {', '.join(names)}")
        if i == len(parts) - 1:
            return obj, p
        obj = getattr(obj, p)
        if not dataclasses.is_dataclass(obj):
            raise ConfigError(f"unknown field {path!r}: {'.'.join(parts[: i + 1])} is not a section")
    raise AssertionError("unreachable")


def get_field(cfg: Config, path: str) -> Any:
    obj, name = _resolve(cfg, path)
    return getattr(obj, name)


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Turn ``value`` (a YAML scalar/list or a command-line string) into type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, args[0], path) for v in value)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}={value!r} is not a valid {tp.__name__}") from None
    raise ConfigError(f"{path}: cannot set a value of type {tp}")


def set_field(cfg: Config, path: str, value: Any) -> None:
    obj, name = _resolve(cfg, path)
    if dataclasses.is_dataclass(getattr(obj, name)):
        raise ConfigError(f"{path!r} is a section; set one of its fields, e.g. {path}.<field>=...")
    setattr(obj, name, _coerce(value, _field_type(obj, name), path))


def option_overrides(sets: list[str], *, data: str | None = None, data_dir: str | None = None,
                     steps: int | None = None, minutes: float | None = None, precision: str | None = None,
                     seed: int | None = None) -> list[str]:
    """The ``key=value`` overrides of the commands' shorthand options (``--data``, ``--steps``, ...) after the
    ``--set`` list ``sets``: a later override wins, so an option beats a ``--set`` of the same field."""
    out = list(sets)
    for key, value in (("data.source", data), ("data.data_dir", data_dir), ("train.steps", steps),
                       ("train.minutes", minutes), ("train.precision", precision), ("train.seed", seed)):
        if value is not None and value != "":
            out.append(f"{key}={value}")
    return out


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key=value`` strings (the CLI's ``--set``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not of the form key=value (e.g. optim.lr_g=2e-4)")
        key, value = item.split("=", 1)
        set_field(cfg, key.strip(), yaml.safe_load(value) if value.strip() else value)
    return cfg


# ---- YAML ---------------------------------------------------------------------------------------------------


def to_dict(cfg: Config) -> dict:
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return list(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dataclasses.asdict(cfg))


def from_dict(data: dict, *, drop_legacy: bool = False) -> Config:
    """A validated Config from a (YAML) mapping. Fields of earlier versions (``LEGACY_FIELDS``) are refused with
    one line saying what they were (a run cannot be resumed under changed semantics), or dropped with
    ``drop_legacy`` (evaluation, which only reads the saved weights)."""
    cfg = Config()
    for path, what in LEGACY_FIELDS.items():
        section, name = path.split(".")
        if isinstance(data, dict) and isinstance(data.get(section), dict) and name in data[section]:
            if not drop_legacy:
                raise ConfigError(
                    f"this run's configuration has {path}, {what}: its checkpoints can be evaluated "
                    "(bigbigan eval) but not resumed; start a new run directory"
                )
            data = {**data, section: {k: v for k, v in data[section].items() if k != name}}

    def walk(prefix: str, d: dict) -> None:
        if not isinstance(d, dict):
            raise ConfigError(f"{prefix or 'configuration'} must be a mapping")
        for k, v in d.items():
            path = f"{prefix}.{k}" if prefix else k
            obj, name = _resolve(cfg, path)
            if dataclasses.is_dataclass(getattr(obj, name)):
                walk(path, v)
            else:
                set_field(cfg, path, v)

    walk("", data)
    m = cfg.model
    if m.prior == "uniform" and m.encoder.stochastic:
        # Saved before the uniform-pz variant named stochastic=False: that E ran deterministic (tanh), so load
        # the configuration as what ran (the weights have the deterministic head's shape).
        m.encoder.stochastic = False
    return validate(cfg)


def save_yaml(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_yaml(path: str | Path, *, drop_legacy: bool = False) -> Config:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from None
    if not isinstance(data, dict) or not data:  # an empty file must not become the imagenet128 defaults
        raise ConfigError(f"configuration {path} is empty or not a mapping")
    return from_dict(data, drop_legacy=drop_legacy)
