"""Evaluation subsets on class-sorted folder data: `eval --train-limit` must see every class (issue 12, item 1)."""

import json

import numpy as np
import pytest
from PIL import Image

from bigbigan.cli import main

CLASSES = 10


def _write_classes(root, per_class):
    """Class k: 16x16 images of one grey level (trivially separable), one folder per class, sorted on disk."""
    for k in range(CLASSES):
        folder = root / f"class{k:02d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((16, 16, 3), 12 + 24 * k, np.uint8)).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("classes")
    _write_classes(data / "train", 40)
    _write_classes(data / "val", 5)
    run = tmp_path_factory.mktemp("runs") / "run"  # outside --data-dir (refused there)
    assert main(["train", "--scale", "tiny", "--data", "folder", "--data-dir", str(data), "--out", str(run),
                 "--steps", "2", "--no-progress", "--set", "data.train_val_size=100"]) == 0
    return run


def _linear(run, out, *extra):
    # BN+CReLU: a 2-step encoder's raw AvePool feature of a constant image scales with its grey level, which a
    # linear probe separates only for some initialisations; normalised, every class is separable.
    assert main(["eval", str(run), "--metrics", "linear", "--feature", "bn-crelu", "--probe-steps", "300",
                 "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_train_limit_samples_every_class_and_matches_the_full_probe(folder_run, tmp_path):
    full = _linear(folder_run, tmp_path / "full.json")
    limited = _linear(folder_run, tmp_path / "limited.json", "--train-limit", "100")
    # train_sub holds 300 class-sorted images: its first 100 cover 3-4 classes, a stratified 100 all 10.
    assert full["linear_bn_crelu_top1"] >= 0.9
    assert limited["linear_bn_crelu_top1"] == pytest.approx(full["linear_bn_crelu_top1"], abs=0.05)
    assert limited["subset_seed"] == 0 and limited["train_limit"] == 100
    feats = sorted(p.name for p in (folder_run / "features").iterdir())
    assert any("train_sub-100-s0-" in name for name in feats)  # the seed is part of the cache key
    again = _linear(folder_run, tmp_path / "seed1.json", "--train-limit", "100", "--subset-seed", "1")
    assert again["subset_seed"] == 1
    assert any("train_sub-100-s1-" in p.name for p in (folder_run / "features").iterdir())


def test_periodic_probe_and_fid_references_see_every_class(folder_run, tmp_path, monkeypatch):
    import torch

    from bigbigan.config import load_yaml
    from bigbigan.evaluation.generative import reference_features
    from bigbigan.evaluation.periodic import PeriodicEval

    cfg = load_yaml(folder_run / "config.yaml")
    probe = PeriodicEval(cfg, train_images=50)  # 50 of the 300 class-sorted train_sub images
    assert len(probe.train_src) == 50
    counts = torch.bincount(torch.from_numpy(probe.train_src.labels), minlength=CLASSES)
    assert counts.min() >= 3  # every class, in proportion (train_sub's classes are 27-33 images each)

    monkeypatch.setenv("BIGBIGAN_CACHE", str(tmp_path / "cache"))
    grey = reference_features(cfg, lambda x: x.mean(dim=(1, 2, 3))[:, None], 20, progress=False)  # [20, 1]
    levels = ((grey[:, 0] + 1) * 127.5 - 12) / 24  # back to the class index
    assert torch.bincount(levels.round().long(), minlength=CLASSES).tolist() == [2] * CLASSES
    assert [p.name.endswith("-20-s0.pt") for p in (tmp_path / "cache" / "inception").iterdir()] == [True]


def test_augmented_probe_runs_on_image_folders(folder_run, tmp_path):
    """The paper's augmented probe decodes and augments folder images one by one (it was skipped before). With
    tiny's flip augmentation a constant image is its own augmentation, so it must match the unaugmented probe
    (same zero init, seed and minibatches)."""
    out = tmp_path / "paper.json"
    assert main(["eval", str(folder_run), "--metrics", "linear,linear-paper", "--feature", "avepool",
                 "--probe-steps", "100", "--train-limit", "100", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "linear_paper_note" not in res
    assert res["linear_paper_avepool_top1"] == pytest.approx(res["linear_avepool_top1"], abs=0.05)
    assert res["linear_paper_avepool_train_val_top1"] == pytest.approx(res["linear_avepool_train_val_top1"], abs=0.05)
