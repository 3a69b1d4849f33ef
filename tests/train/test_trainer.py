"""The trainer under test through its own code (Sec. 2, App. A): which pairs enter the losses as real and fake,
how many optimiser steps each phase takes, the EMA it keeps, and E's reparameterised sample."""

import pytest
import torch
import torch.nn.functional as F

from bigbigan.data import build_stream
from bigbigan.nets import build_encoder
from bigbigan.presets import resolve
from bigbigan.train import loop
from bigbigan.train.loop import Trainer


def _trainer(tmp_path, device, *extra):
    cfg = resolve("tiny", "base", ["train.image_every=1000", "data.train_val_size=100", *extra])
    return Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)


def test_real_pairs_enter_both_losses_as_real_and_generated_pairs_as_fake(tmp_path, monkeypatch, device):
    """Record what G, E and D see and what reaches the loss functions: real = (x, E(x)), fake = (G(z), z), in
    the D phases and in the E+G phase."""
    tr = _trainer(tmp_path, device)
    events = []
    tr.G.register_forward_hook(lambda m, a, out: events.append(("G", a[0].detach(), out.detach())))
    tr.E.register_forward_hook(lambda m, a, out: events.append(("E", a[0].detach(), out.z.detach())))
    tr.D.register_forward_hook(lambda m, a, out: events.append(("D", (a[0].detach(), a[1].detach()), out)))
    next_batch = tr.next_batch

    def recorded_batch():
        b = next_batch()
        events.append(("batch", b.x.detach(), None))
        return b

    monkeypatch.setattr(tr, "next_batch", recorded_batch)

    def recording(name, fn):
        def loss(real, fake, mode, *rest):  # rest: the D loss's already computed terms
            events.append((name, real, fake))
            return fn(real, fake, mode, *rest)
        return loss

    monkeypatch.setattr(loop, "discriminator_loss", recording("loss_D", loop.discriminator_loss))
    monkeypatch.setattr(loop, "encoder_generator_loss", recording("loss_EG", loop.encoder_generator_loss))
    tr.train_iteration()

    losses = [i for i, e in enumerate(events) if e[0].startswith("loss")]
    assert [events[i][0] for i in losses] == ["loss_D", "loss_D", "loss_EG"]  # d_steps = 2, then E+G
    start = 0
    for i in losses:
        phase = {e[0]: e for e in events[start:i]}  # the batch, G, E and D calls of this phase
        start = i + 1
        _, x, _ = phase["batch"]
        _, z_fake, x_fake = phase["G"]
        _, x_e, z_real = phase["E"]
        _, (d_x, d_z), scores = phase["D"]
        n = x.shape[0]
        assert torch.equal(x_e, x)  # E encodes the same real images D sees (tiny: same resolution)
        assert torch.equal(d_x[:n], x) and torch.equal(d_z[:n], z_real)  # the real pairs (x, E(x))
        assert torch.equal(d_x[n:], x_fake) and torch.equal(d_z[n:], z_fake)  # the fake pairs (G(z), z)
        _, real, fake = events[i]
        for name in ("x", "z", "xz"):  # s_x, s_z, s_xz
            s = getattr(scores, name).detach()
            assert torch.equal(getattr(real, name).detach(), s[:n]), name  # real pairs' scores, labelled real
            assert torch.equal(getattr(fake, name).detach(), s[n:]), name


def test_d_takes_two_optimiser_steps_per_iteration_and_e_g_one(tmp_path, device):
    tr = _trainer(tmp_path, device)
    assert tr.G.linear.weight.device == device
    n = 3
    for _ in range(n):
        tr.train_iteration()
    d_steps = {int(s["step"]) for s in tr.opt_d.state.values()}
    ge_steps = {int(s["step"]) for s in tr.opt_ge.state.values()}
    assert d_steps == {2 * n} and ge_steps == {n}
    assert len(tr.opt_d.state) == len(list(tr.D.parameters()))  # every D parameter was stepped
    assert len(tr.opt_ge.state) == len(list(tr.G.parameters())) + len(list(tr.E.parameters()))
    assert tr.step == n


def test_ema_of_g_and_e_matches_hand_computed_values(tmp_path, device):
    """tiny: decay 0.9, start 2. After iteration t: t <= 2: ema = live; t > 2: ema = 0.9 ema + 0.1 live; buffers
    (BN statistics, SN vectors) are the live ones."""
    tr = _trainer(tmp_path, device)
    assert (tr.cfg.optim.ema_decay, tr.cfg.optim.ema_start) == (0.9, 2)
    expected = {}
    for t in range(1, 5):
        tr.train_iteration()
        for tag, live in (("G", tr.G), ("E", tr.E)):
            for k, p in live.named_parameters():
                w = p.detach().clone()
                expected[tag, k] = w if t <= 2 else 0.9 * expected[tag, k] + 0.1 * w
    for tag, live, ema in (("G", tr.G, tr.ema_G.model), ("E", tr.E, tr.ema_E.model)):
        for k, p in ema.named_parameters():
            torch.testing.assert_close(p, expected[tag, k], rtol=0, atol=1e-6, msg=f"{tag}.{k}")
        live_buffers = dict(live.named_buffers())
        for k, b in ema.named_buffers():
            assert torch.equal(b, live_buffers[k]), f"{tag}.{k}"
    # the average lags: some G weight differs from the live one after two averaged iterations
    assert any(not torch.equal(p, tr.G.get_parameter(k)) for k, p in tr.ema_G.model.named_parameters())


def test_encoder_sample_is_mu_plus_sigma_times_eps_with_softplus_sigma(device):
    cfg = resolve("tiny")
    torch.manual_seed(0)
    E = build_encoder(cfg.model).to(device)
    x = torch.randn(5, cfg.model.channels, cfg.model.e_resolution, cfg.model.e_resolution).to(device)
    eps = torch.randn(5, cfg.model.z_dim, generator=torch.Generator().manual_seed(3)).to(device)
    E.eval()
    out = E(x, eps)
    with torch.no_grad():
        head = E.out(E.head(E.features(x)))  # [5, 2 z_dim]: mu, then sigma_hat
    mu, sigma_hat = head[:, : cfg.model.z_dim], head[:, cfg.model.z_dim :]
    torch.testing.assert_close(out.mu, mu)
    torch.testing.assert_close(out.sigma, F.softplus(sigma_hat))
    torch.testing.assert_close(out.z, mu + F.softplus(sigma_hat) * eps)
    assert not torch.allclose(out.z, out.mu)  # the noise is used
    # without eps, E draws it from the global generator: seeded, reproducible
    torch.manual_seed(7)
    a = E(x).z
    torch.manual_seed(7)
    torch.testing.assert_close(E(x).z, a)


def test_trainer_feeds_d_the_encoder_sample_drawn_with_its_own_noise(tmp_path, device):
    """In training, E gets eps from the trainer's checkpointed generator and D sees z = mu + sigma * eps."""
    tr = _trainer(tmp_path, device)
    seen = []
    tr.E.register_forward_hook(lambda m, a, out: seen.append((a[1], out)))
    tr.train_iteration()
    assert len(seen) == 3
    for eps, out in seen:
        assert eps is not None and eps.shape == out.mu.shape and eps.device == device
        torch.testing.assert_close(out.z, out.mu + out.sigma * eps)
    assert not torch.equal(seen[0][0], seen[1][0])  # fresh noise per phase
    assert abs(float(torch.cat([e for e, _ in seen]).std()) - 1.0) < 0.3  # N(0, I) noise, not a constant


@pytest.mark.parametrize("variant", ["deterministic-e"])
def test_deterministic_encoder_gets_no_noise(tmp_path, variant, device):
    cfg = resolve("tiny", variant, ["train.image_every=1000", "data.train_val_size=100"])
    tr = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    seen = []
    tr.E.register_forward_hook(lambda m, a, out: seen.append((a[1], out)))
    tr.train_iteration()
    assert all(eps is None and out.sigma is None and torch.equal(out.z, out.mu) for eps, out in seen)
