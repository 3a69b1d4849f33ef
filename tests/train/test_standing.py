"""Standing statistics (BigGAN): BN running statistics re-estimated for the EMA weights over seeded batches."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from bigbigan.nets import build_encoder, build_generator
from bigbigan.nets.layers import CrossReplicaBatchNorm2d, SNConv2d
from bigbigan.presets import resolve
from bigbigan.standing import ema_standing_stats, standing_stats


def _batch_stats(h):
    """Per-channel mean and unbiased variance of [B, C, H, W] (what BN's running statistics accumulate)."""
    return h.mean((0, 2, 3)), h.transpose(0, 1).flatten(1).var(1, unbiased=True)


def test_standing_stats_are_the_average_of_the_batch_statistics_of_the_pre_bn_activations(device):
    torch.manual_seed(0)
    conv1, bn1, conv2, bn2 = nn.Conv2d(1, 3, 1), CrossReplicaBatchNorm2d(3), SNConv2d(3, 2, 1), CrossReplicaBatchNorm2d(2)
    model = nn.Sequential(conv1, bn1, nn.ReLU(), conv2, bn2).eval().to(device)
    for bn in (bn1, bn2):  # stale statistics, as copied from a live network
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(7.0)
    u0 = conv2.sn_u.clone()
    batches = [(torch.randn(4, 1, 3, 3) * (i + 1) + i).to(device) for i in range(3)]

    assert standing_stats(model, batches) == 3

    with torch.no_grad():  # by hand: bn1 normalises with its batch statistics during the pass
        m1, v1, m2, v2 = [], [], [], []
        for x in batches:
            h = conv1(x)
            mean, var = _batch_stats(h)
            m1.append(mean)
            v1.append(var)
            hb = (h - mean[None, :, None, None]) / torch.sqrt(h.var((0, 2, 3), unbiased=False) + bn1.eps)[None, :, None, None]
            g = conv2(F.relu(hb))  # eval mode: the SN power iteration does not run
            mean, var = _batch_stats(g)
            m2.append(mean)
            v2.append(var)
    torch.testing.assert_close(bn1.running_mean, torch.stack(m1).mean(0))
    torch.testing.assert_close(bn1.running_var, torch.stack(v1).mean(0))
    torch.testing.assert_close(bn2.running_mean, torch.stack(m2).mean(0))
    torch.testing.assert_close(bn2.running_var, torch.stack(v2).mean(0))
    assert bn1.momentum == bn2.momentum == 0.1 and int(bn1.num_batches_tracked) == 3
    assert not any(m.training for m in model.modules())
    assert torch.equal(conv2.sn_u, u0)


def _tiny_models(cfg, device="cpu"):
    torch.manual_seed(0)
    G, E = build_generator(cfg.model).eval().to(device), build_encoder(cfg.model).eval().to(device)
    return G, E


def _bn_buffers(*models):
    return [b.clone() for m in models for n, b in m.named_buffers() if "running" in n]


def test_ema_standing_stats_of_g_and_e_are_seeded_and_change_the_copied_statistics(device):
    cfg = resolve("tiny")
    runs = []
    for seed in (0, 0, 1):
        cfg.eval.standing_stats_seed = seed
        G, E = _tiny_models(cfg, device)
        before = _bn_buffers(G, E)
        assert ema_standing_stats(cfg, G, E, device=device, num_batches=3) == 3
        runs.append(_bn_buffers(G, E))
        assert all(not torch.equal(a, b) for a, b in zip(before, runs[-1]))  # every BN of G and E re-estimated
        assert not G.training and not E.training
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))
    G, E = _tiny_models(cfg, device)
    assert ema_standing_stats(cfg, G, E, device=device, num_batches=0) == 0
    assert all(torch.equal(a, b) for a, b in zip(_bn_buffers(G, E), _bn_buffers(*_tiny_models(cfg, device))))


def test_generator_standing_stats_follow_its_conditional_bn_inputs(device):
    """G's last BN holds the mean over the pass's batches of what entered it (z from the seeded prior)."""
    cfg = resolve("tiny")
    G, _ = _tiny_models(cfg, device)
    seen = []
    G.out_bn.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach().clone()))
    ema_standing_stats(cfg, G, None, device=device, num_batches=2)
    assert len(seen) == 2 and seen[0].shape[0] == min(cfg.eval.standing_stats_batch_size, cfg.optim.batch_size)
    torch.testing.assert_close(G.out_bn.running_mean, torch.stack([_batch_stats(h)[0] for h in seen]).mean(0))
    torch.testing.assert_close(G.out_bn.running_var, torch.stack([_batch_stats(h)[1] for h in seen]).mean(0))


@pytest.mark.parametrize("batches", [2, 0])
def test_export_and_evaluation_use_standing_statistics(tmp_path, batches, device):
    from bigbigan.data import build_stream
    from bigbigan.evaluation.features import load_models
    from bigbigan.train.loop import Trainer

    cfg = resolve("tiny", "base", ["train.steps=2", "train.image_every=1000", "data.train_val_size=100",
                                   f"eval.standing_stats_batches={batches}"])
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    trainer.fit()
    exported = load_file(tmp_path / "ema.safetensors")
    copied = trainer.ema_G.model.out_bn.running_mean.cpu()  # the live network's statistics, copied by the EMA
    assert torch.equal(exported["G.out_bn.running_mean"], copied) == (batches == 0)
    loaded = load_models(tmp_path, device=device)  # the standing pass on the trainer's device: the same bits
    assert loaded.standing_stats_batches == batches
    for k, v in loaded.G.state_dict().items():
        torch.testing.assert_close(v.cpu(), exported[f"G.{k}"], rtol=0, atol=0)
    for k, v in loaded.E.state_dict().items():
        torch.testing.assert_close(v.cpu(), exported[f"E.{k}"], rtol=0, atol=0)


def test_a_run_resumes_with_other_evaluation_settings_but_not_another_ema_start():
    from bigbigan.config import ConfigError
    from bigbigan.train.run import check_resumable

    saved = resolve("tiny")
    check_resumable(saved, resolve("tiny", "base", ["eval.standing_stats_batches=0"]))  # evaluation only
    with pytest.raises(ConfigError, match="optim.ema_start=2"):
        check_resumable(saved, resolve("tiny", "base", ["optim.ema_start=3"]))
