"""BigBiGAN in PyTorch: adversarial representation learning (Donahue & Simonyan, 2019).

``bigbigan.load(PATH)`` gives a trained model (``bigbigan.model.BigBiGAN``) with ``encode``, ``sample`` and
``reconstruct``; torch is imported only when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .model import BigBiGAN


def load(path: Any, **kwargs: Any) -> BigBiGAN:
    """``bigbigan.model.load``: a run directory, checkpoint, exported directory or shipped name -> BigBiGAN."""
    from .model import load as _load

    return _load(path, **kwargs)
