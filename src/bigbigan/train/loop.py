"""The BigBiGAN training loop (App. A): ``d_steps`` D updates, then one joint E+G update, per iteration.

One phase abstraction serves every variant: ``phase_loss("D" | "EG", batch)`` computes the phase's loss from
one forward of G, E and D; the loop walks the phases, steps the phase's optimiser and updates the EMA after
the E+G phase. The trainer alone owns optimisers, DDP and autocast.

Exactness: every random draw (z_fake, E's reparameterisation noise, data order and crops) comes from
generators whose state is checkpointed, and is drawn for the global batch and sliced by rank, so a resumed run
continues bitwise as if uninterrupted and 1 process matches N processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .. import dist as bdist
from ..config import Config, save_yaml, to_dict
from ..nets import build_discriminator, build_encoder, build_generator
from ..nets.prior import sample_prior
from ..objective import Scores, d_accuracy, discriminator_loss, encoder_generator_loss
from ..rundir import truncate_jsonl
from .checkpoint import (
    CheckpointError,
    config_differences,
    export_safetensors,
    list_checkpoints,
    load_latest,
    save_checkpoint,
)
from .ema import EMA
from .standing import ema_standing_stats
from .stats import Stats


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, say); the message is one line for the user."""


class EncoderGenerator(nn.Module):
    """G and E as one module, so that DDP synchronises their gradients in the joint E+G update."""

    def __init__(self, G: nn.Module, E: nn.Module | None) -> None:
        super().__init__()
        self.G = G
        self.E = E

    def forward(self, z_fake: Tensor, x_e: Tensor, eps: Tensor | None):
        x_fake = self.G(z_fake)
        enc = self.E(x_e, eps) if self.E is not None else None
        return x_fake, enc


@dataclass
class Batch:
    x: Tensor  # [B, C, R, R] real images for D (and G's resolution)
    x_e: Tensor  # [B, C, Re, Re] the same crops at E's resolution
    y: Tensor  # [B] labels (unused by training; kept for diagnostics)


def build_models(cfg: Config):
    """(G, D, E or None) from a configuration."""
    m = cfg.model
    return build_generator(m), build_discriminator(m, tuple(cfg.objective.terms)), build_encoder(m)


class Trainer:
    """Owns models, EMA, optimisers, data stream, noise generator and the run directory."""

    def __init__(self, cfg: Config, run_dir: str | Path, *, stream, device: torch.device | str = "cpu",
                 progress: bool = True, log=print) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.info = bdist.info()
        self.device = torch.device(device)
        self.stream = stream
        self.progress = progress
        self.log = log if self.info.is_main else (lambda *a, **k: None)
        o, t = cfg.optim, cfg.train
        if o.batch_size % self.info.world:
            raise TrainingError(
                f"optim.batch_size={o.batch_size} does not divide over {self.info.world} processes"
            )
        self.local_batch = o.batch_size // self.info.world
        torch.manual_seed(t.seed)  # initial weights: identical on every rank
        G, D, E = build_models(cfg)
        self.G, self.D, self.E = (m.to(self.device) if m is not None else None for m in (G, D, E))
        if t.channels_last:
            for m in self.modules():
                m.to(memory_format=torch.channels_last)
        self.ema_G = EMA(self.G, o.ema_decay, o.ema_start)
        self.ema_E = EMA(self.E, o.ema_decay, o.ema_start) if self.E is not None else None
        adam = {"betas": (o.beta1, o.beta2), "eps": o.adam_eps}
        if self.device.type == "cuda" or o.fused_adam:  # fused on CPU is opt-in: not bitwise equal to foreach
            adam["fused"] = True
        else:
            adam["foreach"] = True
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, **adam)
        groups = [{"params": list(self.G.parameters()), "lr": o.lr_g}]
        if self.E is not None:  # E updated with G's step, with its own learning rate (Sec. 3.1, "up E LR")
            groups.append({"params": list(self.E.parameters()), "lr": o.lr_g * o.e_lr_mult})
        self.opt_ge = torch.optim.Adam(groups, **adam)
        self._phase_params = {"D": list(self.D.parameters()), "EG": [p for g in groups for p in g["params"]]}
        self.GE = EncoderGenerator(self.G, self.E)
        self.ge_fwd: nn.Module = self.GE
        self.d_fwd: nn.Module = self.D
        if self.info.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ge_fwd = DDP(self.GE, device_ids=ids, broadcast_buffers=False)
            self.d_fwd = DDP(self.D, device_ids=ids, broadcast_buffers=False)
        if t.compile:
            self.ge_fwd = torch.compile(self.ge_fwd)
            self.d_fwd = torch.compile(self.d_fwd)
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(t.seed + 1)
        self.step = 0
        self.stats = Stats(self.run_dir, main=self.info.is_main)
        self._bad = torch.zeros((), dtype=torch.bool, device=self.device)
        self._stop_signal: str | None = None
        self.fixed = None  # fixed z and real images for the periodic grids
        self.on_evaluate = None  # callable(trainer) -> dict of metrics, set by the caller

    # ---- state -----------------------------------------------------------------------------------------------

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.G, self.D, self.E) if m is not None]

    def state_dict(self) -> dict:
        s = {
            "config": to_dict(self.cfg),
            "step": self.step,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema_G.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "opt_ge": self.opt_ge.state_dict(),
            "noise_rng": self.noise.get_state(),
            "torch_rng": torch.get_rng_state(),
            "data": self.stream.state_dict(),
        }
        if self.E is not None:
            s["E"] = self.E.state_dict()
            s["E_ema"] = self.ema_E.state_dict()
        return s

    def load_state_dict(self, s: dict) -> None:
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.ema_G.load_state_dict(s["G_ema"])
        if self.E is not None:
            self.E.load_state_dict(s["E"])
            self.ema_E.load_state_dict(s["E_ema"])
        self.opt_d.load_state_dict(s["opt_d"])
        self.opt_ge.load_state_dict(s["opt_ge"])
        self.noise.set_state(s["noise_rng"])
        torch.set_rng_state(s["torch_rng"])
        self.stream.load_state_dict(s["data"])
        self.step = int(s["step"])

    def resume(self) -> bool:
        """Load the run's latest checkpoint, if any (every rank reads the same file)."""
        state = load_latest(self.run_dir)
        if state is None:
            return False
        differ = config_differences(state["config"], to_dict(self.cfg))
        if differ:  # another variant's checkpoint would fail in load_state_dict with a traceback
            raise CheckpointError(
                f"the latest checkpoint of {self.run_dir} was trained with other settings ({differ}); "
                "resume with the run's own settings or use a new --out"
            )
        self.load_state_dict(state)
        if self.info.is_main:  # the logs restart where the checkpoint does: no step is logged twice
            for name in ("stats.jsonl", "metrics.jsonl"):
                truncate_jsonl(self.run_dir / name, self.step)
        return True

    def save(self) -> Path | None:
        """Checkpoint the current step (rank 0 writes); refuses to save non-finite weights."""
        if bool(self._bad):
            raise TrainingError(f"non-finite loss before step {self.step}; not saving over the last good checkpoint")
        path = None
        if self.info.is_main:
            path = save_checkpoint(self.run_dir, self.step, self.state_dict(), self.cfg.train.keep_ckpts)
        bdist.barrier()
        return path

    def eval_models(self) -> tuple[nn.Module, nn.Module | None]:
        """The EMA G and E as evaluated: copies with standing statistics (``eval.standing_stats_batches``), or
        the EMA models themselves when that is 0. Call on every rank (cross-replica BN reduces over all)."""
        G = self.ema_G.model
        E = self.ema_E.model if self.ema_E is not None else None
        if self.cfg.eval.standing_stats_batches == 0:
            return G, E
        G, E = copy.deepcopy(G), copy.deepcopy(E)  # the EMA's own buffers keep tracking the live network
        ema_standing_stats(self.cfg, G, E, device=self.device)
        return G, E

    def export(self, path: str | Path | None = None,
               models: tuple[nn.Module, nn.Module | None] | None = None) -> Path:
        """The evaluated EMA G and E (``models``, default ``eval_models()``) as safetensors (``G.`` / ``E.``
        prefixed keys) for inference."""
        G, E = models if models is not None else self.eval_models()
        tensors = {f"G.{k}": v for k, v in G.state_dict().items()}
        if E is not None:
            tensors.update({f"E.{k}": v for k, v in E.state_dict().items()})
        return export_safetensors(path or self.run_dir / "ema.safetensors", tensors, to_dict(self.cfg))

    # ---- one iteration ---------------------------------------------------------------------------------------

    def _autocast(self):
        if self.cfg.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _draw(self, shape: tuple[int, int], prior: str = "gaussian") -> Tensor:
        """Noise for the global batch, this rank's slice (so N processes draw what 1 process draws)."""
        full = sample_prior(prior, (self.cfg.optim.batch_size, shape[1]), self.noise, self.device)
        r = self.info.rank
        return full[r * self.local_batch : (r + 1) * self.local_batch]

    def next_batch(self) -> Batch:
        x, x_e, y = next(self.stream)
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        x_e = x if x_e is None else x_e.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        return Batch(x, x_e, y)

    def phase_loss(self, phase: str, batch: Batch) -> Tensor:
        """The loss of ``phase`` ("D" or "EG") on ``batch``, reporting its statistics."""
        m = self.cfg.model
        z_fake = self._draw((0, m.z_dim), m.prior)
        eps = self._draw((0, m.z_dim)) if (self.E is not None and self.E.stochastic) else None
        n = batch.x.shape[0]
        with self._autocast():
            if phase == "D":
                with torch.no_grad():
                    x_fake = self.G(z_fake)
                    z_real = self.E(batch.x_e, eps).z if self.E is not None else None
                scores = self.d_fwd(torch.cat([batch.x, x_fake.to(batch.x.dtype)]),
                                    torch.cat([z_real, z_fake]) if z_real is not None else None)
            else:
                x_fake, enc = self.ge_fwd(z_fake, batch.x_e, eps)
                z_real = enc.z if enc is not None else None
                scores = self.D(torch.cat([batch.x, x_fake.to(batch.x.dtype)]),
                                torch.cat([z_real.to(z_fake.dtype), z_fake]) if z_real is not None else None)
        real = Scores(*(s[:n] if s is not None else None for s in scores))
        fake = Scores(*(s[n:] if s is not None else None for s in scores))
        mode = self.cfg.objective.d_loss
        if phase == "D":
            loss = discriminator_loss(real, fake, mode)
            for name, r, f in zip(Scores._fields, real, fake):
                if r is not None:
                    self.stats.report(f"loss/D/{name}/real", torch.relu(1 - r.float()).mean())
                    self.stats.report(f"loss/D/{name}/fake", torch.relu(1 + f.float()).mean())
            for name, acc in d_accuracy(real, fake).items():
                self.stats.report(f"acc/D/{name}", acc)
            self.stats.report("loss/D", loss)
        else:
            loss = encoder_generator_loss(real, fake, mode)
            self.stats.report("loss/EG", loss)
            if enc is not None and enc.sigma is not None:
                self.stats.report("E/sigma/mean", enc.sigma.mean())
                self.stats.report("E/sigma/min", enc.sigma.min())
            if enc is not None:
                self.stats.report("E/mu/std", enc.mu.float().std())
        self._bad |= ~torch.isfinite(loss.detach())
        return loss

    def _step_phase(self, phase: str) -> None:
        d_phase = phase == "D"
        self.D.requires_grad_(d_phase)  # D's weights get no gradient in the E+G phase (nor are they synced)
        opt = self.opt_d if d_phase else self.opt_ge
        opt.zero_grad(set_to_none=True)
        loss = self.phase_loss(phase, self.next_batch())
        loss.backward()
        # Measure only: get_total_norm is clip_grad_norm_'s norm without its pass multiplying every gradient by 1.
        grads = [p.grad for p in self._phase_params[phase] if p.grad is not None]
        gnorm = torch.nn.utils.get_total_norm(grads, foreach=True)
        self.stats.report(f"grad_norm/{phase}", gnorm)
        opt.step()

    def train_iteration(self) -> None:
        for _ in range(self.cfg.optim.d_steps):
            self._step_phase("D")
        self._step_phase("EG")
        self.D.requires_grad_(True)
        self.ema_G.update(self.G)
        if self.ema_E is not None:
            self.ema_E.update(self.E)
        self.step += 1

    # ---- the loop --------------------------------------------------------------------------------------------

    def _handle_signal(self, signum, frame) -> None:
        self._stop_signal = signal.Signals(signum).name

    def _should_stop_by_signal(self) -> bool:
        stop = self._stop_signal is not None
        if self.info.world > 1:  # every rank stops at the same iteration
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            dist.all_reduce(flag)
            stop = bool(flag.item() > 0)
        return stop

    def _check_finite(self) -> None:
        if bool(self._bad):
            kept = list_checkpoints(self.run_dir)
            where = (f"the last good checkpoint ({kept[-1][1].name}) is kept" if kept
                     else "no checkpoint was written (none existed yet)")
            raise TrainingError(
                f"non-finite loss (NaN/Inf) between steps {self._last_good} and {self.step}; training stopped, "
                f"{where} (try a lower learning rate)"
            )
        self._last_good = self.step

    def fit(self) -> dict:
        """Train until ``train.steps`` iterations or ``train.minutes``; always checkpoint at the end."""
        t = self.cfg.train
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(self.cfg, self.run_dir / "config.yaml")
        old_handlers = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                old_handlers[sig] = signal.signal(sig, self._handle_signal)
            except ValueError:  # not the main thread
                pass
        start = time.monotonic()
        start_step = self.step
        self._last_good = self.step
        deadline = start + 60 * t.minutes if t.minutes else math.inf
        bar = None
        if self.progress and self.info.is_main:
            from tqdm import tqdm

            # Under a time budget the step target is often a placeholder: count iterations without a bogus ETA.
            bar = tqdm(total=None if t.minutes else t.steps, initial=self.step, unit="it", dynamic_ncols=True,
                       desc=f"train ({t.minutes:g} min)" if t.minutes else "train")
        reason = "steps"
        try:
            for m in self.modules():
                m.train()
            while self.step < t.steps:
                if time.monotonic() >= deadline:
                    reason = "minutes"
                    break
                if self._should_stop_by_signal():
                    reason = self._stop_signal or "signal"
                    break
                self.train_iteration()
                if t.compile and self.step == start_step + 1:
                    self.log(f"torch.compile: first iteration (compilation included) took "
                             f"{time.monotonic() - start:.1f} s")
                self._maybe_inject_fault()
                if bar is not None:
                    bar.update(1)
                if self.step % t.log_every == 0:
                    self._check_finite()
                    rec = self.stats.flush(self.step, self._rates(start, start_step))
                    if bar is not None:
                        bar.set_postfix({k.split("/", 1)[1]: f"{rec[k]:.3f}" for k in ("loss/D", "loss/EG") if k in rec})
                if self.step % t.image_every == 0 and self.info.is_main:
                    self.save_grids()
                if t.eval_every and self.step % t.eval_every == 0 and self.on_evaluate is not None:
                    self._check_finite()
                    self.save()
                    self.on_evaluate(self)
                elif self.step % t.ckpt_every == 0:
                    self._check_finite()
                    self.save()
        finally:
            if bar is not None:
                bar.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        self._check_finite()
        path = self.save()
        models = self.eval_models()  # on every rank: the standing-statistics pass reduces across ranks
        if self.info.is_main:
            self.save_grids()
            self.export(models=models)
            self.stats.close()
        elapsed = time.monotonic() - start
        summary = {"step": self.step, "stopped_by": reason, "seconds": elapsed,
                   "iterations": self.step - start_step, "checkpoint": str(path) if path else None}
        self.log(f"stopped at step {self.step} ({reason}); {summary['iterations']} iterations in {elapsed:.0f} s; "
                 f"checkpoint {path}")
        return summary

    def _maybe_inject_fault(self) -> None:
        """BIGBIGAN_FAULT_INJECT="RANK:STEP" kills that rank at that step on torchrun's first attempt: the test
        of elastic restarts (--max-restarts) uses it to show that a restarted job resumes and finishes."""
        spec = os.environ.get("BIGBIGAN_FAULT_INJECT")
        if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
            return
        rank, step = (int(v) for v in spec.split(":"))
        if rank == self.info.rank and step == self.step:
            os._exit(17)

    def _rates(self, start: float, start_step: int) -> dict:
        dt = max(time.monotonic() - start, 1e-9)
        its = (self.step - start_step) / dt
        imgs = its * self.cfg.optim.batch_size * (self.cfg.optim.d_steps + 1)
        lrs = {"lr/D": self.opt_d.param_groups[0]["lr"], "lr/G": self.opt_ge.param_groups[0]["lr"]}
        if self.E is not None:
            lrs["lr/E"] = self.opt_ge.param_groups[1]["lr"]
        return {"perf/it_per_s": its, "perf/img_per_s": imgs, "time/minutes": dt / 60, **lrs}

    # ---- pictures ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def save_grids(self) -> None:
        """Samples of the EMA G from fixed z and EMA reconstructions G(E(x)) of fixed real images.

        A training-time diagnostic, written by rank 0 alone: it uses the EMA models' copied running statistics,
        not standing statistics (whose pass needs every rank); evaluation pictures use standing statistics."""
        from ..evaluation.pictures import reconstruction_grid, save_grid

        m = self.cfg.model
        if self.fixed is None:
            g = torch.Generator(device=self.device).manual_seed(1234)
            z = sample_prior(m.prior, (64, m.z_dim), g, self.device)
            xs = []
            while sum(b.shape[0] for b in xs) < 32:
                xs.append(self.next_batch_for_grid())
            self.fixed = (z, torch.cat(xs)[:32])
        z, x_e = self.fixed
        out = self.run_dir / "images"
        out.mkdir(parents=True, exist_ok=True)
        G = self.ema_G.model
        save_grid(G(z).float().cpu(), out / f"samples-{self.step:08d}.png", nrow=8)
        if self.ema_E is not None:
            rec = G(self.ema_E.model(x_e).mu).float().cpu()
            x_show = torch.nn.functional.interpolate(x_e.float().cpu(), size=rec.shape[-2:], mode="bilinear",
                                                     antialias=True, align_corners=False)
            reconstruction_grid(x_show, rec, out / f"recon-{self.step:08d}.png", ncol=8)

    def next_batch_for_grid(self) -> Tensor:
        """Real images for the reconstruction grid, drawn without disturbing the training stream."""
        state = self.stream.state_dict()
        x, x_e, _ = next(self.stream)
        self.stream.load_state_dict(state)
        return (x if x_e is None else x_e).to(self.device)
