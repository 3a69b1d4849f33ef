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
