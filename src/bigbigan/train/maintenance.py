"""What ``Trainer.fit`` runs around the iterations: maintenance sections (after an iteration, when due), the
progress bar and the ranks' agreement to stop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from tqdm import tqdm

from .signals import StopRequest

Hook = Callable[..., object]  # a maintenance hook: called with the trainer, its result is ignored


@dataclass(frozen=True)
class Section:
    """One maintenance section of ``fit``: ``run()`` after every iteration whose step ``due`` accepts."""

    name: str
    due: Callable[[int], bool]
    run: Callable[[], object]


@contextlib.contextmanager
def progress_bar(t, initial: int, enabled: bool) -> Iterator[tqdm | None]:
    """A tqdm bar over the run's iterations (``t``: the ``train`` config section), or None when not ``enabled``."""
    bar = None
    if enabled:
        # Under a time budget the step target is often a placeholder: count iterations without a bogus ETA.
        bar = tqdm(total=None if t.minutes else t.steps, initial=initial, unit="it", dynamic_ncols=True,
                   desc=f"train ({t.minutes:g} min)" if t.minutes else "train")
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def stop_agreed(stop: StopRequest, world: int, device: torch.device) -> bool:
    """Whether a signal asked any rank to stop (every rank stops at the same iteration)."""
    flag = bool(stop)
    if world > 1:
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t)
        flag = bool(t.item() > 0)
    return flag
