"""Evaluation tests work on tiny tensors: one intra-op thread avoids spin-waiting on a shared 2-core CPU."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def train_tiny():
    """``train_tiny(out, *overrides)``: a 4-step run of the ``tiny`` preset (digits) written to ``out``."""
    from bigbigan.presets import resolve
    from bigbigan.workflows import train as run_training

    def train(out, *extra):
        cfg = resolve("tiny", "base", ["train.steps=4", "data.train_val_size=100", "train.image_every=2", *extra])
        run_training(cfg, out, progress=False)

    return train
