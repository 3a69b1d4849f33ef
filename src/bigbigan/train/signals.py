"""SIGTERM / Ctrl-C as a request to stop at the next iteration boundary (then the trainer checkpoints)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class StopRequest:
    """Set by a caught signal: ``name`` is "SIGTERM" or "SIGINT", None while no signal has arrived."""

    def __init__(self) -> None:
        self.name: str | None = None

    def __bool__(self) -> bool:
        return self.name is not None

    def _catch(self, signum, frame) -> None:
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[StopRequest]:
    """Within the block, ``signals`` only set the yielded ``StopRequest``; the previous handlers come back after.

    Outside the main thread handlers cannot be installed: the block then runs without them.
    """
    request = StopRequest()
    previous = {}
    for sig in signals:
        try:
            previous[sig] = signal.signal(sig, request._catch)
        except ValueError:  # not the main thread
            pass
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
