"""Linear probe (App. A): BN+CReLU feature, EMA warm start, accuracy, early stopping and the lr sweep."""

import pytest
import torch

from bigbigan.evaluation.linear_probe import (
    ProbeResult,
    bn_crelu,
    classifier_ema_decay,
    sweep_linear_probe,
    train_linear_probe,
)


def test_bn_crelu_hand_values():
    f = torch.tensor([[1.0, 2.0], [3.0, 2.0]])  # mean [2, 2], std [1, 0]
    out = bn_crelu(f)
    s = 1 / (1 + 1e-5) ** 0.5
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, s, 0.0], [s, 0.0, 0.0, 0.0]]))
    # Training statistics passed in: h = (a - mean) / sqrt(std^2 + eps)
    out = bn_crelu(torch.tensor([[4.0, -1.0]]), mean=torch.tensor([2.0, 0.0]), std=torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, 0.0, 1.0]]), rtol=1e-4, atol=1e-5)
    assert bn_crelu(torch.randn(7, 5)).shape == (7, 10)


def test_ema_decay_warm_start():
    assert classifier_ema_decay(0, 0.9999) == pytest.approx(0.1)
    assert classifier_ema_decay(90, 0.9999) == pytest.approx(0.91)
    assert classifier_ema_decay(10**7, 0.9999) == 0.9999


def _blobs(n, dim, classes, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(100)) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + spread * torch.randn(n, dim, generator=g), y


def test_separable_set_is_learned():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 4, generator=g)
    x = torch.randn(3000, 10, generator=g) * 5 + 3  # raw, uncentred features as AvePool gives
    y = (x @ w).argmax(1)
    r = train_linear_probe(x[:2000], y[:2000], x[2000:], y[2000:], num_classes=4, steps=1500, eval_every=500)
    assert isinstance(r, ProbeResult)
    assert r.top1 > 0.95 and r.top5 == 1.0 and r.val_top1 is None and r.steps == 1500
    assert [c["step"] for c in r.curve] == [500, 1000, 1500]


def test_matches_sklearn_logistic_regression_on_overlapping_blobs():
    sklearn = pytest.importorskip("sklearn.linear_model")
    x, y = _blobs(2000, 8, 5, spread=1.8, seed=1)
    xt, yt = _blobs(6000, 8, 5, spread=1.8, seed=2)
    ref = sklearn.LogisticRegression(max_iter=2000).fit(x.numpy(), y.numpy()).score(xt.numpy(), yt.numpy())
    r = train_linear_probe(x, y, xt, yt, num_classes=5, steps=2000, lr=0.01, eval_every=1000)
    assert 0.5 < ref < 0.97  # overlapping classes: the comparison is not trivial
    assert abs(r.top1 - ref) < 0.01


def test_early_stopping_on_val_and_determinism():
    x, y = _blobs(1200, 6, 3, spread=1.5, seed=3)
    kw = {"num_classes": 3, "steps": 600, "eval_every": 100, "val_x": x[1000:], "val_y": y[1000:]}
    r = train_linear_probe(x[:1000], y[:1000], x[:200], y[:200], **kw)
    vals = [c["val_top1"] for c in r.curve]
    assert r.val_top1 == max(vals) and r.steps == 100 * (vals.index(max(vals)) + 1)
    assert all("top1" not in c for c in r.curve)  # the eval set is scored only at the selected step
    assert train_linear_probe(x[:1000], y[:1000], x[:200], y[:200], **kw) == r


def test_augment_fn_hook_receives_minibatch_indices():
    x, y = _blobs(500, 4, 2, spread=1.0, seed=4)
    seen = []

    def augment(idx):
        seen.append(idx.clone())
        return x[idx]

    a = train_linear_probe(
        x, y, x, y, num_classes=2, steps=50, batch_size=32, eval_every=50, augment_fn=augment
    )
    b = train_linear_probe(x, y, x, y, num_classes=2, steps=50, batch_size=32, eval_every=50)
    assert len(seen) == 50 and seen[0].shape == (32,)
    assert a.top1 == b.top1  # same seeded minibatches as the cached-feature mode


def test_sweep_selects_lr_on_val():
    x, y = _blobs(900, 6, 3, spread=1.5, seed=5)
    r = sweep_linear_probe(
        x[:600],
        y[:600],
        x[600:750],
        y[600:750],
        num_classes=3,
        val_x=x[750:],
        val_y=y[750:],
        lrs=(1e-5, 1e-2),
        steps=300,
        eval_every=100,
    )
    assert r.lr == 1e-2  # 300 steps at 1e-5 barely move a zero-initialised classifier
    assert {c["lr"] for c in r.curve} == {1e-5, 1e-2}
    best = max(c["val_top1"] for c in r.curve if c["lr"] == 1e-2)
    assert r.val_top1 == best


def _reference_probe(x, y, *, num_classes, steps, lr, batch_size, eval_every, seed=0, ema_decay=0.9999):
    """The probe written the plain way: nn.Linear, autograd cross-entropy, torch.optim.Adam, an EMA copy.
    Returns the mean training loss per record and the final EMA classifier."""
    from bigbigan.evaluation.linear_probe import _minibatches

    lin = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.Adam(lin.parameters(), lr=lr)
    ema = [p.detach().clone() for p in lin.parameters()]
    losses, acc = [], []
    for t, idx in enumerate(_minibatches(x.shape[0], batch_size, steps, seed, x.device)):
        loss = torch.nn.functional.cross_entropy(lin(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            d = classifier_ema_decay(t, ema_decay)
            for e, p in zip(ema, lin.parameters(), strict=True):
                e.lerp_(p, 1 - d)
        acc.append(loss.item())
        if (t + 1) % eval_every == 0:
            losses.append(sum(acc) / len(acc))
            acc = []
    return losses, ema


def test_matches_autograd_and_torch_adam_reference():
    """The closed-form gradient and the hand-written Adam follow autograd + torch.optim.Adam step for step."""
    x, y = _blobs(1500, 12, 6, spread=2.0, seed=6)
    x = x * 3 + 1  # uncentred, as raw features are
    kw = {"num_classes": 6, "steps": 400, "batch_size": 64, "eval_every": 100}
    ref_losses, (w, b) = _reference_probe(x[:1000], y[:1000], lr=3e-3, **kw)
    r = train_linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], lr=3e-3, **kw)
    got = [c["loss"] for c in r.curve]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(ref_losses), rtol=1e-4, atol=1e-5)
    ref_top1 = ((x[1000:] @ w.t() + b).argmax(1) == y[1000:]).float().mean().item()
    assert abs(r.top1 - ref_top1) <= 2 / 500  # at most a couple of near-tied test points differ
    assert ref_losses[-1] < 0.8 * ref_losses[0]  # the reference itself learned: the comparison is not trivial


def test_sweep_lanes_equal_single_runs():
    """A sweep trains every lr side by side; each lane must end where that lr alone ends."""
    x, y = _blobs(1400, 8, 4, spread=1.6, seed=7)
    lrs = (1e-3, 3e-3, 1e-2)
    kw = {"num_classes": 4, "steps": 300, "eval_every": 100, "batch_size": 128, "val_x": x[1000:1200],
          "val_y": y[1000:1200]}
    swept = sweep_linear_probe(x[:1000], y[:1000], x[1200:], y[1200:], lrs=lrs, **kw)
    singles = [train_linear_probe(x[:1000], y[:1000], x[1200:], y[1200:], lr=lr, **kw) for lr in lrs]
    for lr, single in zip(lrs, singles, strict=True):
        lane = [c for c in swept.curve if c["lr"] == lr]
        assert [c["step"] for c in lane] == [c["step"] for c in single.curve]
        torch.testing.assert_close(torch.tensor([c["loss"] for c in lane]),
                                   torch.tensor([c["loss"] for c in single.curve]), rtol=1e-5, atol=1e-6)
        assert [c["val_top1"] for c in lane] == pytest.approx([c["val_top1"] for c in single.curve], abs=0.011)
    best = max(singles, key=lambda r: r.val_top1)
    assert swept.lr == best.lr and abs(swept.top1 - best.top1) <= 0.011
