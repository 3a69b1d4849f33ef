"""The trainer's pictures hook: grids of EMA samples from fixed z and EMA reconstructions G(E(x)) of fixed real
images, written to ``RUN_DIR/images/`` every ``train.image_every`` iterations and at the end of training."""

from __future__ import annotations

import torch
from torch import Tensor

from ..nets import sample_prior
from .pictures import reconstruction_grid, save_grid


class TrainingGrids:
    """``TrainingGrids()(trainer)`` writes ``samples-STEP.png`` and ``recon-STEP.png`` (rank 0).

    The fixed z (seed 1234) and the 32 real images are drawn at the first call and kept, so successive grids
    show the same latents and images; the real images are peeked from the training stream without disturbing
    it (a resumed run stays bitwise identical). A training-time diagnostic, written by rank 0 alone: it uses the
    EMA models' copied running statistics, not standing statistics (whose pass needs every rank); evaluation
    pictures use standing statistics.
    """

    def __init__(self) -> None:
        self.fixed: tuple[Tensor, Tensor] | None = None

    @torch.no_grad()
    def __call__(self, trainer) -> None:
        m = trainer.cfg.model
        if self.fixed is None:
            g = torch.Generator(device=trainer.device).manual_seed(1234)
            z = sample_prior(m.prior, (64, m.z_dim), g, trainer.device)
            self.fixed = (z, trainer.peek_images(32))
        z, x_e = self.fixed
        out = trainer.run_dir / "images"
        out.mkdir(parents=True, exist_ok=True)
        G = trainer.ema_G.model
        save_grid(G(z).float().cpu(), out / f"samples-{trainer.step:08d}.png", nrow=8)
        if trainer.ema_E is not None:
            rec = G(trainer.ema_E.model(x_e).mu).float().cpu()
            x_show = torch.nn.functional.interpolate(x_e.float().cpu(), size=rec.shape[-2:], mode="bilinear",
                                                     antialias=True, align_corners=False)
            reconstruction_grid(x_show, rec, out / f"recon-{trainer.step:08d}.png", ncol=8)
