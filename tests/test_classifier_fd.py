"""benchmarks/classifier_fd.py: the small classifier's feature space and the distances taken in it."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import classifier_fd


def test_features_and_distances_separate_shifted_sets():
    torch.manual_seed(0)
    net = classifier_fd.SmallClassifier()
    x = torch.rand(64, 1, 32, 32) * 2 - 1
    f = classifier_fd.features(net, x, batch=16)
    assert f.shape == (64, 128) and (f >= 0).all()  # post-ReLU penultimate features, batched like whole
    assert torch.allclose(f, classifier_fd.features(net, x, batch=64), atol=1e-6)
    a, b = torch.randn(400, 8), torch.randn(400, 8)
    same = classifier_fd.distances(a, b)
    shifted = classifier_fd.distances(a, b + 1.0)
    assert same["cfd"] < 0.5 and shifted["cfd"] > 7.0  # a unit shift in 8 dims adds 8 to the FD
    assert shifted["ckid"] > same["ckid"]


def test_score_without_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier_fd, "WEIGHTS", tmp_path / "none.safetensors")
    with pytest.raises(SystemExit, match="run `python benchmarks/classifier_fd.py train` first"):
        classifier_fd.load_classifier()
