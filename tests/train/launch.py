"""Test-only launcher: ``python launch.py [--plain-bn] [--fail-at RANK:STEP] BIGBIGAN_ARGS...`` (also under
torchrun) injects test behaviour by monkeypatching, then runs the ``bigbigan`` command line.

--plain-bn        BatchNorm uses per-replica statistics (cross-replica BN sees a world of 1): the test that
                  shows cross-replica BN matters compares against it.
--fail-at R:S     rank R exits abruptly (status 17) once it has finished iteration S, on torchrun's first
                  attempt only: the test of elastic restarts (--max-restarts) shows the restarted job resumes.
"""

import os
import sys

from bigbigan import cli
from bigbigan.nets import layers
from bigbigan.train.loop import Trainer


def _fail_at(rank: int, step: int) -> None:
    iterate = Trainer.train_iteration

    def train_iteration(self) -> None:
        iterate(self)
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if first_attempt and self.info.rank == rank and self.step == step:
            os._exit(17)

    Trainer.train_iteration = train_iteration


def main(argv: list[str]) -> int:
    while argv and argv[0].startswith("--") and argv[0] in ("--plain-bn", "--fail-at"):
        flag = argv.pop(0)
        if flag == "--plain-bn":
            layers._world = lambda: 1
        else:
            rank, step = (int(v) for v in argv.pop(0).split(":"))
            _fail_at(rank, step)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
