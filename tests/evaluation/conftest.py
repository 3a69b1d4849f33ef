"""Evaluation tests work on tiny tensors: one intra-op thread avoids spin-waiting on a shared 2-core CPU."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
