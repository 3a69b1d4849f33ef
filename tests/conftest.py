"""Fixtures shared across test folders."""

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory made as a user makes one: ``bigbigan train --scale tiny --steps 2`` (digits)."""
    from bigbigan.cli import main

    run = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", "--scale", "tiny", "--steps", "2", "--out", str(run), "--no-progress"]) == 0
    return run
