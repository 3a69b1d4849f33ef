"""L_D and L_EG against hand-computed values for every combination of terms and both hinge modes."""

import itertools

import pytest
import torch

from bigbigan.objective import (
    Scores,
    d_accuracy,
    discriminator_loss,
    discriminator_terms,
    encoder_generator_loss,
)

REAL = {"x": [0.5, 2.0], "z": [-1.0, 0.25], "xz": [1.5, -0.5]}
FAKE = {"x": [-2.0, 0.5], "z": [0.0, -0.5], "xz": [3.0, -1.5]}


def h(t):
    return max(0.0, 1.0 - t)


def scores(values, terms, device="cpu"):
    return Scores(*(torch.tensor(values[n], device=device) if n in terms else None for n in ("x", "z", "xz")))


COMBOS = [c for r in (1, 2, 3) for c in itertools.combinations(("x", "z", "xz"), r)]


@pytest.mark.parametrize("terms", COMBOS)
def test_hinge_per_term_matches_hand_computation(terms, device):
    expected = 0.0
    for n in terms:
        expected += sum(h(v) for v in REAL[n]) / 2 + sum(h(-v) for v in FAKE[n]) / 2
    got = discriminator_loss(scores(REAL, terms, device), scores(FAKE, terms, device), "hinge_per_term")
    assert got.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("terms", COMBOS)
def test_hinge_sum_matches_hand_computation(terms, device):
    real_sum = [sum(REAL[n][i] for n in terms) for i in range(2)]
    fake_sum = [sum(FAKE[n][i] for n in terms) for i in range(2)]
    expected = sum(h(v) for v in real_sum) / 2 + sum(h(-v) for v in fake_sum) / 2
    got = discriminator_loss(scores(REAL, terms, device), scores(FAKE, terms, device), "hinge_sum")
    assert got.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("terms", COMBOS)
def test_encoder_generator_loss_matches_hand_computation(terms, device):
    expected = sum(sum(REAL[n]) / 2 for n in terms) - sum(sum(FAKE[n]) / 2 for n in terms)
    got = encoder_generator_loss(scores(REAL, terms, device), scores(FAKE, terms, device))
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_modes_differ_where_hinges_clip_differently(device):
    # With all terms, clamping each term separately differs from clamping the sum (footnote 1).
    real, fake = scores(REAL, ("x", "z", "xz"), device), scores(FAKE, ("x", "z", "xz"), device)
    a = discriminator_loss(real, fake, "hinge_per_term").item()
    b = discriminator_loss(real, fake, "hinge_sum").item()
    # x: (0.5 + 0)/2 + (0 + 1.5)/2 = 1.0; z: (2 + 0.75)/2 + (1 + 0.5)/2 = 2.125; xz: (0 + 1.5)/2 + (4 + 0)/2 = 2.75
    assert a == pytest.approx(1.0 + 2.125 + 2.75)
    assert b != pytest.approx(a)


def test_bigan_log_loss(device):
    real, fake = scores(REAL, ("xz",), device), scores(FAKE, ("xz",), device)
    sp = torch.nn.functional.softplus
    expected = sp(-torch.tensor(REAL["xz"])).mean() + sp(torch.tensor(FAKE["xz"])).mean()
    assert discriminator_loss(real, fake, "bigan_log").item() == pytest.approx(expected.item())


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="hinge_per_term"):
        discriminator_loss(scores(REAL, ("x",)), scores(FAKE, ("x",)), "wgan")


def test_d_accuracy_per_term(device):
    acc = d_accuracy(scores(REAL, ("x", "z"), device), scores(FAKE, ("x", "z"), device))
    assert acc["x"].item() == pytest.approx(0.5 * (1.0 + 0.5))
    assert acc["z"].item() == pytest.approx(0.5 * (0.5 + 0.5))
    assert "xz" not in acc


@pytest.mark.parametrize("variant, mode", [("hinge-sum", "hinge_sum"), ("base", "hinge_per_term")])
def test_trainer_d_loss_follows_the_variant(tmp_path, variant, mode, device):
    # The hinge-sum variant (footnote 1) reaches the trainer's D phase: with D's scores fixed, the D loss is the
    # hand-computed single hinge on the summed score, which differs from the per-term hinges of Sec. 2.
    from torch import nn

    from bigbigan.data import build_stream
    from bigbigan.presets import resolve
    from bigbigan.train.loop import Trainer

    cfg = resolve("tiny", variant)
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    n = cfg.optim.batch_size  # 8 real pairs then 8 fake pairs, each of the two score rows repeated 4 times
    fixed = Scores(*(torch.tensor(REAL[t] * (n // 2) + FAKE[t] * (n // 2), device=device) for t in ("x", "z", "xz")))

    class FixedD(nn.Module):
        def forward(self, x, z):
            assert x.shape[0] == z.shape[0] == 2 * n and x.device == z.device == device
            return fixed

    trainer.d_fwd = FixedD()
    loss = trainer.phase_loss("D", trainer.next_batch()).item()
    real_sum = [sum(REAL[t][i] for t in REAL) for i in range(2)]  # [1.0, 1.75]
    fake_sum = [sum(FAKE[t][i] for t in FAKE) for i in range(2)]  # [1.0, -1.5]
    single = sum(h(v) for v in real_sum) / 2 + sum(h(-v) for v in fake_sum) / 2  # (0 + 0)/2 + (2 + 0)/2 = 1.0
    assert single == pytest.approx(1.0)
    per_term = 1.0 + 2.125 + 2.75  # test_modes_differ_where_hinges_clip_differently
    assert loss == pytest.approx(single if mode == "hinge_sum" else per_term)


def test_discriminator_terms_are_the_loss_per_term_in_every_mode(device):
    real, fake = scores(REAL, ("x", "z", "xz"), device), scores(FAKE, ("x", "z", "xz"), device)
    per_term = discriminator_terms(real, fake, "hinge_per_term")
    # x real: (h(0.5) + h(2)) / 2 = 0.25; z fake: (h(-0) + h(0.5)) / 2 = 0.75; xz fake: (h(-3) + h(1.5)) / 2 = 2
    assert list(per_term) == ["x/real", "z/real", "xz/real", "x/fake", "z/fake", "xz/fake"]
    assert per_term["x/real"].item() == pytest.approx(0.25)
    assert per_term["z/fake"].item() == pytest.approx(0.75)
    assert per_term["xz/fake"].item() == pytest.approx(2.0)
    log = discriminator_terms(real, fake, "bigan_log")
    # summed scores: real [1.0, 1.75], fake [1.0, -1.5]; softplus(-s) on real, softplus(s) on fake
    sp = torch.nn.functional.softplus
    assert set(log) == {"sum/real", "sum/fake"}
    assert log["sum/real"].item() == pytest.approx(sp(torch.tensor([-1.0, -1.75])).mean().item())
    assert log["sum/fake"].item() == pytest.approx(sp(torch.tensor([1.0, -1.5])).mean().item())
    for mode in ("hinge_per_term", "hinge_sum", "bigan_log"):
        terms = discriminator_terms(real, fake, mode)
        assert discriminator_loss(real, fake, mode).item() == pytest.approx(sum(t.item() for t in terms.values()))


def test_trainer_logs_the_terms_its_objective_computes(tmp_path, device):
    # Under bigan_log the D statistics are the log-loss terms of the summed score, not hinges per term.
    from torch import nn

    from bigbigan.data import build_stream
    from bigbigan.presets import resolve
    from bigbigan.train.loop import Trainer

    cfg = resolve("tiny", "base", ["objective.d_loss=bigan_log"])
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    n = cfg.optim.batch_size
    fixed = Scores(*(torch.tensor(REAL[t] * (n // 2) + FAKE[t] * (n // 2), device=device) for t in ("x", "z", "xz")))

    class FixedD(nn.Module):
        def forward(self, x, z):
            return fixed

    trainer.d_fwd = FixedD()
    trainer.phase_loss("D", trainer.next_batch())
    logged = {k: v.item() for k, v in trainer.stats.sums.items() if k.startswith("loss/D/")}
    sp = torch.nn.functional.softplus
    assert set(logged) == {"loss/D/sum/real", "loss/D/sum/fake"}
    assert logged["loss/D/sum/real"] == pytest.approx(sp(torch.tensor([-1.0, -1.75])).mean().item())
