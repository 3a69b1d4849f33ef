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
def _accuracy(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor, lanes: int = 1,
              chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Top-1 and top-5 accuracy on x [N, D] of each of ``lanes`` linear classifiers stacked row-wise
    (weight [lanes * C, D], bias [lanes * C]); one pair of lists, one entry per classifier."""
    k = min(5, weight.shape[0] // lanes)
    hit1 = torch.zeros(lanes, dtype=torch.long, device=weight.device)
    hit5 = torch.zeros_like(hit1)
    for x_c, y_c in zip(x.split(chunk), y.split(chunk), strict=True):
        logits = torch.addmm(bias, x_c.to(weight.device, torch.float32), weight.t()).view(x_c.shape[0], lanes, -1)
        top = logits.topk(k, dim=2).indices  # [n, lanes, k]
        y_c = y_c.to(top.device)[:, None, None]
        hit1 += (top[:, :, :1] == y_c).sum((0, 2))
        hit5 += (top == y_c).any(dim=2).sum(0)
    n = max(x.shape[0], 1)
    return [h / n for h in hit1.tolist()], [h / n for h in hit5.tolist()]


def _minibatches(n: int, batch_size: int, steps: int, seed: int, device: torch.device) -> Iterator[Tensor]:
    """``steps`` index batches [batch_size]: seeded shuffles of 0..n-1, epoch after epoch."""
    gen = torch.Generator().manual_seed(seed)
    buf = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while buf.numel() < batch_size:
            buf = torch.cat([buf, torch.randperm(n, generator=gen)])
        idx, buf = buf[:batch_size], buf[batch_size:]
        yield idx.to(device)


class _Adam:
    """Adam (Kingma & Ba; the update of ``torch.optim.Adam`` with its defaults) on tensors whose rows carry
    their own learning rate (``lr_rows`` [rows]): one pass over every classifier of a sweep."""

    def __init__(self, params: Sequence[Tensor], lr_rows: Tensor, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.betas, self.eps, self.t = params, betas, eps, 0
        self.lrs = [lr_rows.view(-1, *([1] * (p.dim() - 1))) for p in params]
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def step(self, grads: Sequence[Tensor]) -> None:
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2_sqrt = 1 - b1**self.t, (1 - b2**self.t) ** 0.5
        for p, m, v, g, lr in zip(self.params, self.m, self.v, grads, self.lrs, strict=True):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = v.sqrt().div_(bc2_sqrt).add_(self.eps)
            p.sub_(m.div(denom).mul_(lr / bc1))


@torch.no_grad()
def _train_probes(train_x: Tensor, train_y: Tensor, eval_x: Tensor, eval_y: Tensor, *, num_classes: int,
                  lrs: Sequence[float], steps: int = 5000, batch_size: int = 256, ema_decay: float = 0.9999,
                  val_x: Tensor | None = None, val_y: Tensor | None = None, eval_every: int = 500, seed: int = 0,
                  augment_fn: Callable[[Tensor], Tensor] | None = None) -> list[ProbeResult]:
    """One classifier per learning rate in ``lrs``, trained side by side on the same minibatches.

    The L classifiers are one [L * C, D] matrix: each step gathers the minibatch once, computes all logits with
    one matrix product and every classifier's softmax cross-entropy gradient in closed form ((softmax - onehot)
    / B, no autograd graph), and one Adam pass updates every classifier at its own learning rate. Each
    classifier's rows see only its own loss, so the result is the one it would reach alone (up to float
    rounding of the wider products); a sweep costs about one probe.
    """
    device = train_x.device
    dim, lanes, c = train_x.shape[1], len(lrs), num_classes
    weight = torch.zeros(lanes * c, dim, device=device)  # nn.Linear's layout: the fast one for both products
    bias = torch.zeros(lanes * c, device=device)
    ema_w, ema_b = weight.clone(), bias.clone()
    opt = _Adam([weight, bias], torch.tensor(lrs, dtype=torch.float32, device=device).repeat_interleave(c))
    train_y = train_y.to(device).long()

    has_val = val_x is not None and val_y is not None
    rows = [slice(i * c, (i + 1) * c) for i in range(lanes)]  # each classifier's rows of weight and bias
    curves: list[list[dict]] = [[] for _ in lrs]
    best: list[tuple[float, int, Tensor, Tensor] | None] = [None] * lanes  # (val_top1, step, ema_w, ema_b)
    loss_sum, loss_n = torch.zeros(lanes, device=device), 0
    for t, idx in enumerate(_minibatches(train_x.shape[0], batch_size, steps, seed, device)):
        xb = (augment_fn(idx) if augment_fn is not None else train_x.index_select(0, idx)).to(device, torch.float32)
        yb = train_y.index_select(0, idx)
        b = xb.shape[0]
        logits = torch.mm(xb, weight.t()).add_(bias).view(b, lanes, c)
        lse = logits.logsumexp(2, keepdim=True)
        loss_sum += (lse - logits.gather(2, yb.view(b, 1, 1).expand(b, lanes, 1))).mean(0).view(lanes)
        grad = (logits - lse).exp_().sub_(F.one_hot(yb, c).to(logits.dtype).unsqueeze(1))  # softmax - onehot
        grad = grad.view(b, lanes * c).div_(b)
        opt.step((grad.t() @ xb, grad.sum(0)))
        decay = classifier_ema_decay(t, ema_decay)
        ema_w.lerp_(weight, 1.0 - decay)
        ema_b.lerp_(bias, 1.0 - decay)
        loss_n += 1  # the summed loss stays on the device: no host sync per step
        if (t + 1) % eval_every == 0 or t + 1 == steps:
            # "loss": mean training loss since the previous record
            losses = (loss_sum / loss_n).tolist()
            loss_sum, loss_n = torch.zeros(lanes, device=device), 0
            if has_val:
                scored = _accuracy(val_x, val_y, ema_w, ema_b, lanes)[0]
            else:
                scored, scored5 = _accuracy(eval_x, eval_y, ema_w, ema_b, lanes)
            for i, lr in enumerate(lrs):
                record: dict = {"step": t + 1, "loss": losses[i], "lr": lr}
                if has_val:
                    record["val_top1"] = scored[i]
                    if best[i] is None or scored[i] > best[i][0]:
                        best[i] = (scored[i], t + 1, ema_w[rows[i]].clone(), ema_b[rows[i]].clone())
                else:
                    record["top1"], record["top5"] = scored[i], scored5[i]
                curves[i].append(record)

    results = []
    for i, lr in enumerate(lrs):
        if best[i] is not None:
            val_top1, step, w, b_ = best[i]
            (top1,), (top5,) = _accuracy(eval_x, eval_y, w, b_)
            results.append(ProbeResult(top1, top5, val_top1, lr, step, curves[i]))
        elif curves[i]:
            results.append(ProbeResult(curves[i][-1]["top1"], curves[i][-1]["top5"], None, lr, steps, curves[i]))
        else:  # no steps
            (top1,), (top5,) = _accuracy(eval_x, eval_y, ema_w[rows[i]], ema_b[rows[i]])
            results.append(ProbeResult(top1, top5, None, lr, steps, curves[i]))
    return results


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
    return _train_probes(train_x, train_y, eval_x, eval_y, num_classes=num_classes, lrs=[lr], steps=steps,
                         batch_size=batch_size, ema_decay=ema_decay, val_x=val_x, val_y=val_y,
                         eval_every=eval_every, seed=seed, augment_fn=augment_fn)[0]


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
    """Table 2 protocol (App. A): one probe per learning rate, each early-stopped on train_val (all trained
    side by side in one pass); returns the run with the best train_val accuracy (its eval-set score at the
    selected step), with every run's curve concatenated (records carry their "lr")."""
    runs = _train_probes(train_x, train_y, eval_x, eval_y, num_classes=num_classes, lrs=list(lrs), val_x=val_x,
                         val_y=val_y, **kwargs)
    best = max(runs, key=lambda r: r.val_top1 if r.val_top1 is not None else -1.0)
    return ProbeResult(
        best.top1, best.top5, best.val_top1, best.lr, best.steps, [rec for r in runs for rec in r.curve]
    )
