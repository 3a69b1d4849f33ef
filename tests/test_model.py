"""``bigbigan.load`` and the BigBiGAN API on a tiny trained run: inputs, preprocessing, batching, export."""

import numpy as np
import pytest
import torch
from PIL import Image

import bigbigan
from bigbigan.checkpoint import CheckpointError
from bigbigan.data import DataError, open_source
from bigbigan.evaluation.features import extract_features
from bigbigan.export import export_run

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model(tiny_run, device):
    """The tiny run's model on ``device`` (outputs come back on the CPU whatever the device)."""
    return bigbigan.load(tiny_run).to(device)


def _rgb(seed=0, h=23, w=31):
    return torch.randint(0, 256, (3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_load_gives_the_runs_ema_models(model, tiny_run, device):
    assert model.info["step"] == 2 and model.info["checkpoint"] == "ckpt-00000002.pt"
    assert (model.resolution, model.e_resolution, model.channels, model.z_dim) == (16, 16, 1, 16)
    assert not model.E.training and not model.G.training
    assert model.to(device) is model and model.device == device
    assert next(model.E.parameters()).device == device


def test_encode_shapes_for_every_kind_of_input(model):
    F, Z = model.feature_dim, model.z_dim
    u8 = torch.randint(0, 256, (5, 1, 20, 30), dtype=torch.uint8)
    assert model.encode(u8).shape == (5, F)
    assert model.encode(u8.float() / 127.5 - 1).shape == (5, F)
    assert model.encode(u8, "z").shape == (5, Z)
    assert model.encode(u8, "bn_crelu").shape == (5, 2 * F)
    assert model.encode(np.zeros((28, 28), np.uint8)).shape == (1, F)  # numpy grey [H, W]
    assert model.encode(np.zeros((7, 28, 28), np.uint8)).shape == (7, F)  # numpy grey batch [N, H, W]
    assert model.encode(np.zeros((2, 40, 30, 3), np.uint8)).shape == (2, F)  # numpy [N, H, W, C]
    assert model.encode(Image.new("RGB", (64, 48))).shape == (1, F)
    assert model.encode(Image.new("RGBA", (10, 12))).shape == (1, F)
    assert model.encode([Image.new("L", (9, 9)), _rgb(), u8]).shape == (7, F)  # a list mixes kinds and sizes


def test_encode_applies_the_evaluation_preprocessing(model):
    """Features of uint8 images of the run's data equal those the evaluation extracts from the same images."""
    source = open_source("digits", None, "test").subset(torch.arange(12))
    want, _ = extract_features(model.E, source, resolution=16, channels=1, device=model.device, progress=False)
    images, _ = source.as_tensors()  # uint8 [12, 1, 8, 8]
    assert torch.equal(model.encode(images), want)
    assert torch.equal(model.encode([im.numpy()[0] for im in images]), want)  # numpy [H, W], one at a time


def test_grey_and_rgb_inputs_meet_the_models_channels(model):
    rgb = _rgb(1)
    grey = (rgb.float() * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True) / 127.5 - 1
    assert torch.allclose(model.encode(rgb), model.encode(grey), atol=1e-5)  # RGB -> luminance (ITU-R 601)
    same = rgb[:1].expand(3, -1, -1)
    assert torch.allclose(model.encode(same), model.encode(rgb[:1]), atol=1e-5)
    rgba = torch.cat([rgb, torch.zeros_like(rgb[:1])])
    assert torch.equal(model.encode(rgba), model.encode(rgb))  # alpha is ignored
    with pytest.raises(DataError, match="5-channel"):
        model.encode(torch.zeros(1, 5, 8, 8))


def test_value_range_of_float_inputs(model):
    u8 = _rgb(2)
    assert torch.allclose(model.encode(u8.float() / 255, value_range=(0, 1)), model.encode(u8), atol=1e-5)
    assert not torch.allclose(model.encode(u8.float() / 255), model.encode(u8), atol=1e-3)


def test_a_batch_encodes_as_each_image_alone(model):
    x = torch.randint(0, 256, (7, 1, 21, 21), dtype=torch.uint8)
    whole = model.encode(x, batch_size=3)
    alone = torch.cat([model.encode(x[i]) for i in range(7)])
    assert torch.allclose(whole, alone, atol=1e-5)
    sizes = [_rgb(i, 10 + 3 * i, 40 - 2 * i) for i in range(5)]
    assert torch.allclose(model.encode(sizes, batch_size=2), torch.cat([model.encode(s) for s in sizes]), atol=1e-5)


def test_sample_is_determined_by_its_seed(model):
    a, b, c = model.sample(6, seed=1), model.sample(6, seed=1), model.sample(6, seed=2)
    assert a.shape == (6, 1, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.allclose(model.sample(6, seed=1, batch_size=4), a, atol=1e-5)  # latents do not depend on batching
    assert a.min() >= -1 and a.max() <= 1
    u8 = model.sample(6, seed=1, as_uint8=True)
    assert u8.dtype == torch.uint8 and torch.equal(u8, torch.round((a + 1) * 127.5).to(torch.uint8))


def test_reconstruct_is_g_of_e_mean(model):
    x = torch.randint(0, 256, (3, 1, 30, 30), dtype=torch.uint8)
    rec = model.reconstruct(x)
    assert rec.shape == (3, 1, 16, 16)
    assert torch.allclose(rec, model.G(model.E(model.preprocess(x).to(model.device)).mu).cpu(), atol=1e-6)


def test_export_round_trip_gives_identical_features(model, tiny_run, tmp_path, device):
    out = export_run(tiny_run, tmp_path / "exp", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    back = bigbigan.load(out, device=device)
    x = torch.randint(0, 256, (4, 1, 19, 19), dtype=torch.uint8)
    for feature in ("avepool", "z"):
        assert torch.equal(back.encode(x, feature), model.encode(x, feature)), feature
    bn_crelu = back.encode(x, "bn_crelu"), model.encode(x, "bn_crelu")
    if device.type == "cpu":
        assert torch.equal(*bn_crelu)
    else:  # the export's feature statistics come from the CPU, the run model's from its device: rounding apart
        torch.testing.assert_close(*bn_crelu, rtol=1e-4, atol=1e-5)
    assert torch.equal(back.sample(3, seed=5), model.sample(3, seed=5))
    assert back.info["format_version"] == 1 and back.info["step"] == 2
    # ema.safetensors written by training loads too, with the same weights
    assert torch.equal(bigbigan.load(tiny_run / "ema.safetensors", device=device).encode(x), model.encode(x))


def test_half_precision_export_is_smaller_and_close(model, tiny_run, tmp_path, device):
    full = export_run(tiny_run, tmp_path / "f32", progress=False, stats_images=0)
    half = export_run(tiny_run, tmp_path / "bf16", dtype="bfloat16", progress=False, stats_images=0)
    s32, s16 = ((d / "model.safetensors").stat().st_size for d in (full, half))
    assert s16 < 0.6 * s32
    x = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    f, g = model.encode(x), bigbigan.load(half, device=device).encode(x)
    assert g.dtype == torch.float32 and torch.allclose(f, g, rtol=0.05, atol=0.05 * f.abs().max().item())


def test_bn_crelu_needs_statistics_and_can_fit_them(tiny_run, tmp_path, device):
    m = bigbigan.load(export_run(tiny_run, tmp_path / "nostats", stats_images=0, progress=False), device=device)
    x = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8)
    with pytest.raises(CheckpointError, match="fit_feature_statistics"):
        m.encode(x, "bn_crelu")
    stats = m.fit_feature_statistics(x)
    f = m.encode(x, "avepool")
    h = (f - f.mean(0)) / torch.sqrt(f.std(0) ** 2 + 1e-5)
    assert torch.allclose(stats.mean, f.mean(0))
    assert torch.allclose(m.encode(x, "bn_crelu"), torch.cat([h.clamp_min(0), (-h).clamp_min(0)], 1), atol=1e-5)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="not a file, a directory or the name of a shipped model"):
        bigbigan.load("no-such-model")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot read"):
        bigbigan.load(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="neither a run directory .* nor an exported model"):
        bigbigan.load(tmp_path)


def test_bad_inputs_are_refused_clearly(model):
    with pytest.raises(DataError, match="unknown feature"):
        model.encode(_rgb(), "pool5")
    with pytest.raises(DataError, match="unsupported input type"):
        model.encode(3.0)
    with pytest.raises(DataError, match="no images"):
        model.encode([])
    with pytest.raises(DataError, match="0..255"):
        model.encode(torch.full((1, 8, 8), 300, dtype=torch.int32))


def test_export_runs_the_prepare_hook_before_writing(tiny_run, tmp_path):
    """``prepare(cfg, G, E)`` (e.g. standing BN statistics) changes what is exported, statistics included."""
    def prepare(cfg, G, E):
        E.out_bn.running_mean.fill_(0.5)

    out = export_run(tiny_run, tmp_path / "prepared", prepare=prepare, progress=False)
    back = bigbigan.load(out)
    assert torch.all(back.E.out_bn.running_mean == 0.5)
    plain = bigbigan.load(tiny_run)
    assert not torch.equal(back.feature_stats.mean, plain.feature_stats.mean)
