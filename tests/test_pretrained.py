"""Shipped pretrained models: ``bigbigan.load(NAME)`` and the fixed linear-probe figure each one records.

The shipping machinery is tested end to end on a tiny run exported into a temporary pretrained folder; the real
shipped models (``src/bigbigan/pretrained/NAME``) are checked against their recorded figure when present.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import bigbigan
from bigbigan import checkpoint as bckpt
from bigbigan import model as bmodel
from bigbigan.data import DEFAULT_DIRS
from bigbigan.evaluation.fixed_probe import stratified_subset

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["fashion-mnist"]  # models the package is meant to carry
TOLERANCE = 0.005  # 5 of 1,000 test images: BLAS and thread-count rounding may flip a prediction or two


def _ship_module():
    spec = importlib.util.spec_from_file_location("ship_pretrained", ROOT / "benchmarks" / "ship_pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pytestmark = pytest.mark.usefixtures("single_thread")


def test_stratified_subset_takes_per_class_items_by_seed():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 0, 1])
    idx = stratified_subset(labels, 2, seed=0)
    assert torch.equal(torch.bincount(labels[idx]), torch.tensor([2, 2, 1]))
    assert torch.equal(idx, idx.sort().values)
    assert torch.equal(idx, stratified_subset(labels, 2, seed=0))
    assert any(not torch.equal(stratified_subset(labels, 2, seed=s), idx) for s in range(1, 6))


def test_ship_a_tiny_run_and_load_it_by_name(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(bckpt, "PRETRAINED_ROOT", tmp_path / "pretrained")
    ship = _ship_module()
    assert ship.main([str(tiny_run), "--name", "tiny-digits", "--train-per-class", "20", "--test-per-class",
                      "10", "--probe-steps", "100", "--no-progress"]) == 0
    folder = tmp_path / "pretrained" / "tiny-digits"
    assert sorted(p.name for p in folder.iterdir()) == ["card.md", "config.json", "metadata.json",
                                                       "model.safetensors"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["iterations"] == 2 and meta["data"] == "digits training split" and "CC BY 4.0" in meta["data_licence"]
    assert meta["probe"]["test_images"] == 100 and meta["probe"]["protocol"]["steps"] == 100
    assert bmodel.shipped_names() == ["tiny-digits"]
    model = bigbigan.load("tiny-digits")
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(model.encode(x), bigbigan.load(tiny_run).encode(x))
    recorded, measured = ship.check_shipped("tiny-digits")
    assert measured == pytest.approx(recorded, abs=TOLERANCE)
    assert "tiny-digits" in (folder / "card.md").read_text()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_recorded_probe(name):
    folder = bckpt.PRETRAINED_ROOT / name
    if not folder.is_dir():
        pytest.skip(f"no shipped model {name!r} in {bckpt.PRETRAINED_ROOT} yet "
                    f"(python benchmarks/ship_pretrained.py RUN --name {name} writes it)")
    if name == "fashion-mnist" and not Path(DEFAULT_DIRS["fashion-mnist"]).is_dir():  # the probe's test images
        pytest.skip("dataset-fashion-mnist not installed (scripts/test.sh installs it)")
    meta = json.loads((folder / "metadata.json").read_text())
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 20e6
    assert meta["probe"]["test_images"] == 1000
    recorded, measured = _ship_module().check_shipped(name)
    assert measured == pytest.approx(recorded, abs=TOLERANCE)
