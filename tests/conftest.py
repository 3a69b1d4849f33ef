"""Fixtures shared across test folders."""

import pytest
import torch


@pytest.fixture
def single_thread():
    """One intra-op thread for tests of tiny tensors: no OpenMP spin-waiting on a shared 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def single_thread_own_cache(single_thread, monkeypatch, tmp_path):
    """``single_thread`` plus a per-test FID/feature cache directory (BIGBIGAN_CACHE)."""
    monkeypatch.setenv("BIGBIGAN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory made as a user makes one: ``bigbigan train --scale tiny --steps 2`` (digits)."""
    from bigbigan.cli import main

    run = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", "--scale", "tiny", "--steps", "2", "--out", str(run), "--no-progress"]) == 0
    return run
