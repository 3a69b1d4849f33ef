"""Evaluation tests work on tiny tensors: one intra-op thread avoids spin-waiting on a shared 2-core CPU."""

import pytest


@pytest.fixture(autouse=True)
def _single_thread(single_thread):
    """Every evaluation test runs with one intra-op thread (the shared ``single_thread`` fixture)."""


@pytest.fixture
def train_tiny():
    """``train_tiny(out, *overrides)``: a 4-step run of the ``tiny`` preset (digits) written to ``out``."""
    from bigbigan.presets import resolve
    from bigbigan.workflows import train as run_training

    def train(out, *extra):
        cfg = resolve("tiny", "base", ["train.steps=4", "data.train_val_size=100", "train.image_every=2", *extra])
        run_training(cfg, out, progress=False)

    return train
