"""Linear classification on frozen encoder features (paper Sec. 3.2 and App. A).

Protocol (App. A): a linear softmax classifier initialised to zero, trained with Adam (5K steps at lr 0.01
for the Table 1 ablations; 100K steps with a lr sweep {1e-4, 3e-4, 1e-3, 3e-3, 1e-2} for Table 2), an EMA
(decay 0.9999) of the classifier weights used for every evaluation, and learning-rate selection plus early
stopping on "train_val", 10K images held out from the training set.

Features are used raw (the AvePool feature, as in the paper) or after ``bn_crelu`` (the "BN+CReLU" feature
of Table 2); Adam makes the training insensitive to their scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

_BN_EPS = 1e-5


@dataclass
class ProbeResult:
    """Outcome of one linear probe; accuracies are fractions in [0, 1] on the evaluation (test) set."""

    top1: float
    top5: float
    val_top1: float | None  # train_val accuracy at the selected step (None without a validation set)
    lr: float
    steps: int  # the selected step (the best train_val step, or the last step without a validation set)
    curve: list[dict] = field(default_factory=list)  # {"step", "loss", "val_top1" | "top1", "lr"} records


def bn_crelu(features: Tensor, mean: Tensor | None = None, std: Tensor | None = None) -> Tensor:
    """Parameter-free BatchNorm then CReLU, [N, D] -> [N, 2D] (Table 2 "BN+CReLU").

    h = (a - mean) / sqrt(std^2 + eps); the result is [ReLU(h), ReLU(-h)]. ``mean``/``std`` default to the
    per-dimension moments of ``features`` (``features.mean(0)``, ``features.std(0, unbiased=False)``); pass
    the training set's to transform validation or test features with the training statistics.
    """
    a = features.float()
    if mean is None:
        mean = a.mean(0)
    if std is None:
        std = a.std(0, unbiased=False)
    h = (a - mean) / torch.sqrt(std.float() ** 2 + _BN_EPS)
    return torch.cat([h.clamp_min(0), (-h).clamp_min(0)], dim=1)


def classifier_ema_decay(step: int, ema_decay: float) -> float:
    """Decay of the probe classifier's EMA after optimiser step ``step`` (0-based): min(ema_decay,
    (1 + t) / (10 + t)).

    The probe's own schedule, deliberately separate from the EMA of G and E (``train/ema.py``): this warm start
    keeps short probes from being dominated by the zero initialisation: with a constant 0.9999 a 5K-step
    average would still weigh the zero classifier by 0.9999^5000 = 61%.
    """
    return min(ema_decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def _accuracy(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor, chunk: int = 8192) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of the linear classifier (weight [D, C], bias [C]) on x [N, D]."""
    k = min(5, weight.shape[1])
    hit1 = hit5 = 0
    for x_c, y_c in zip(x.split(chunk), y.split(chunk), strict=True):
        logits = x_c.to(weight.device, torch.float32) @ weight + bias
        top = logits.topk(k, dim=1).indices
        y_c = y_c.to(top.device)[:, None]
        hit1 += int((top[:, :1] == y_c).sum())
        hit5 += int((top == y_c).any(dim=1).sum())
    n = max(x.shape[0], 1)
    return hit1 / n, hit5 / n


def _minibatches(n: int, batch_size: int, steps: int, seed: int, device: torch.device) -> Iterator[Tensor]:
    """``steps`` index batches [batch_size]: seeded shuffles of 0..n-1, epoch after epoch."""
    gen = torch.Generator().manual_seed(seed)
    buf = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while buf.numel() < batch_size:
            buf = torch.cat([buf, torch.randperm(n, generator=gen)])
        idx, buf = buf[:batch_size], buf[batch_size:]
        yield idx.to(device)


def train_linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    eval_x: Tensor,
    eval_y: Tensor,
    *,
    num_classes: int,
    steps: int = 5000,
    lr: float = 0.01,
    batch_size: int = 256,
    ema_decay: float = 0.9999,
    val_x: Tensor | None = None,
    val_y: Tensor | None = None,
    eval_every: int = 500,
    seed: int = 0,
    augment_fn: Callable[[Tensor], Tensor] | None = None,
) -> ProbeResult:
    """Train one zero-initialised linear classifier with Adam and an EMA of its weights (App. A).

    Every ``eval_every`` steps and at the end the EMA classifier is evaluated: on ``val_x`` when given
    (early stopping: the best train_val step is selected and only that EMA snapshot is scored on the eval
    set), otherwise directly on ``eval_x`` (the last step is reported). ``augment_fn(idx)`` may return
    freshly augmented features [B, D] for the minibatch indices ``idx`` (the paper's augmented mode);
    by default the cached ``train_x`` rows are used.
    """
    device = train_x.device
    dim = train_x.shape[1]
    weight = torch.zeros(dim, num_classes, device=device, requires_grad=True)
    bias = torch.zeros(num_classes, device=device, requires_grad=True)
    ema_w = weight.detach().clone()
    ema_b = bias.detach().clone()
    opt = torch.optim.Adam([weight, bias], lr=lr)
    batches = _minibatches(train_x.shape[0], batch_size, steps, seed, device)
    train_y = train_y.to(device).long()

    curve: list[dict] = []
    best: tuple[float, int, Tensor, Tensor] | None = None  # (val_top1, step, ema_w, ema_b)
    loss_sum, loss_n = torch.zeros((), device=device), 0
    for t, idx in enumerate(batches):
        xb = augment_fn(idx) if augment_fn is not None else train_x[idx]
        loss = F.cross_entropy(xb.float() @ weight + bias, train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = classifier_ema_decay(t, ema_decay)
            ema_w.lerp_(weight, 1.0 - decay)
            ema_b.lerp_(bias, 1.0 - decay)
            loss_sum += loss.detach()  # no host sync per step
        loss_n += 1
        if (t + 1) % eval_every == 0 or t + 1 == steps:
            # "loss": mean training loss since the previous record
            record: dict = {"step": t + 1, "loss": float(loss_sum) / loss_n, "lr": lr}
            loss_sum, loss_n = torch.zeros((), device=device), 0
            if val_x is not None and val_y is not None:
                val_top1, _ = _accuracy(val_x, val_y, ema_w, ema_b)
                record["val_top1"] = val_top1
                if best is None or val_top1 > best[0]:
                    best = (val_top1, t + 1, ema_w.clone(), ema_b.clone())
            else:
                record["top1"], record["top5"] = _accuracy(eval_x, eval_y, ema_w, ema_b)
            curve.append(record)

    if best is not None:
        val_top1, step, w, b = best
        top1, top5 = _accuracy(eval_x, eval_y, w, b)
        return ProbeResult(top1, top5, val_top1, lr, step, curve)
    top1, top5 = (curve[-1]["top1"], curve[-1]["top5"]) if curve else _accuracy(eval_x, eval_y, ema_w, ema_b)
    return ProbeResult(top1, top5, None, lr, steps, curve)


def sweep_linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    eval_x: Tensor,
    eval_y: Tensor,
    *,
    num_classes: int,
    val_x: Tensor,
    val_y: Tensor,
    lrs: Sequence[float] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
    **kwargs,
) -> ProbeResult:
    """Table 2 protocol (App. A): one probe per learning rate, each early-stopped on train_val; returns the
    run with the best train_val accuracy (its eval-set score at the selected step), with every run's
    curve concatenated (records carry their "lr")."""
    runs = [
        train_linear_probe(
            train_x,
            train_y,
            eval_x,
            eval_y,
            num_classes=num_classes,
            lr=lr,
            val_x=val_x,
            val_y=val_y,
            **kwargs,
        )
        for lr in lrs
    ]
    best = max(runs, key=lambda r: r.val_top1 if r.val_top1 is not None else -1.0)
    return ProbeResult(
        best.top1, best.top5, best.val_top1, best.lr, best.steps, [rec for r in runs for rec in r.curve]
    )
