"""The BigBiGAN training loop (App. A): ``d_steps`` D updates, then one joint E+G update, per iteration.

The trainer is its state (models, EMA, optimisers, noise generator, data stream), one phase abstraction and one
loop. ``phase_loss("D" | "EG", batch)`` computes a phase's loss from one forward of G, E and D for every
variant; ``train_iteration`` walks the phases, steps each phase's optimiser and updates the EMA after the E+G
phase; ``fit`` repeats iterations and, after each, runs the maintenance sections that are due (log,
pictures, checkpoint, evaluation), as a list. Pictures and evaluation are hooks the caller passes in: the
trainer knows nothing of evaluation. The trainer alone owns optimisers, DDP and autocast.

Exactness: every random draw (z_fake, E's reparameterisation noise, data order and crops) comes from
generators whose state is checkpointed, and is drawn for the global batch and sliced by rank, so a resumed run
continues bitwise as if uninterrupted and 1 process matches N processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import dist as bdist
from ..checkpoint import (
    CheckpointError,
    config_differences,
    export_safetensors,
    list_checkpoints,
    load_latest,
    save_checkpoint,
)
from ..config import Config, save_yaml, to_dict
from ..data.seeding import mix_seed
from ..files import truncate_jsonl
from ..nets import Scores, build_models, sample_prior
from ..objective import d_accuracy, discriminator_loss, discriminator_terms, encoder_generator_loss
from ..runtime import warn_if_slow_bf16
from ..standing import ema_standing_stats
from .ema import EMA
from .maintenance import Hook, Section, progress_bar, stop_agreed
from .setup import EncoderGenerator, build_optimisers, forward_modules
from .signals import stop_signals
from .stats import Stats


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, say); the message is one line for the user."""


@dataclass
class Batch:
    x: Tensor  # [B, C, R, R] real images for D (and G's resolution)
    x_e: Tensor  # [B, C, Re, Re] the same crops at E's resolution
    y: Tensor  # [B] labels (unused by training; kept for diagnostics)


class Trainer:
    """Owns models, EMA, optimisers, data stream, noise generator and the run directory.

    ``pictures(trainer)`` (rank 0) and ``evaluate(trainer)`` (every rank) are the caller's maintenance hooks:
    pictures every ``train.image_every`` iterations and at the end, evaluation every ``train.eval_every``
    iterations right after a checkpoint of that step. Without them the trainer writes neither.
    """

    def __init__(self, cfg: Config, run_dir: str | Path, *, stream, device: torch.device | str = "cpu",
                 progress: bool = True, log=print, pictures: Hook | None = None,
                 evaluate: Hook | None = None) -> None:
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
        if self.info.is_main and t.precision == "bf16":
            warn_if_slow_bf16("training", self.device.type, "--precision fp32 (train.precision=fp32)")
        torch.manual_seed(t.seed)  # initial weights: identical on every rank
        G, D, E = build_models(cfg)
        self.G, self.D, self.E = (m.to(self.device) if m is not None else None for m in (G, D, E))
        if t.channels_last:
            for m in self.modules():
                m.to(memory_format=torch.channels_last)
        self.ema_G = EMA(self.G, o.ema_decay, o.ema_start)
        self.ema_E = EMA(self.E, o.ema_decay, o.ema_start) if self.E is not None else None
        self.opt_d, self.opt_ge, self._phase_params = build_optimisers(cfg, self.G, self.D, self.E, self.device)
        self.GE = EncoderGenerator(self.G, self.E)
        self.ge_fwd, self.d_fwd = forward_modules(self.GE, self.D, self.info.world, self.device, t.compile)
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(t.seed + 1)
        self.step = 0
        self.stats = Stats(self.run_dir, main=self.info.is_main)
        self._bad = torch.zeros((), dtype=torch.bool, device=self.device)
        self.pictures = pictures
        self.evaluate = evaluate
        self._bar = None  # the progress bar while ``fit`` runs (rank 0, progress=True)
        self._start = (time.monotonic(), 0)  # (time, step) at which ``fit`` started: the rates' origin

    @property
    def minutes(self) -> float:
        """Wall-clock minutes since this ``fit`` started (evaluation and checkpoints included)."""
        return (time.monotonic() - self._start[0]) / 60

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
        self.step = int(s["step"])
        self._load_noise_state(s["noise_rng"])
        torch.set_rng_state(s["torch_rng"])
        self.stream.load_state_dict(s["data"])

    def _load_noise_state(self, state: torch.Tensor) -> None:
        """The noise generator's saved state; for a checkpoint written on another kind of device (a CPU generator
        keeps a 5,056-byte Mersenne Twister state, a CUDA one a 16-byte Philox state) the noise is re-seeded from
        (seed, step) instead: the run continues, though not as it would have on the device that wrote it (no
        device reproduces another's random stream anyway)."""
        if state.numel() == self.noise.get_state().numel():
            self.noise.set_state(state)
            return
        self.noise.manual_seed(mix_seed(self.cfg.train.seed, self.step))
        self.log(f"the checkpoint of step {self.step} was written on another kind of device: its noise generator "
                 f"cannot continue on {self.device.type}, so the noise is re-seeded from (seed, step)")

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
        return export_safetensors(path or self.run_dir / "ema.safetensors", tensors, to_dict(self.cfg), step=self.step)

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

    def _scores(self, phase: str, batch: Batch) -> tuple[Scores, Scores, object]:
        """D's scores of the real pairs (x, E(x)) and the fake pairs (G(z), z), and E's output (E+G phase)."""
        m = self.cfg.model
        z_fake = self._draw((0, m.z_dim), m.prior)
        eps = self._draw((0, m.z_dim)) if (self.E is not None and self.E.stochastic) else None
        n = batch.x.shape[0]
        enc = None
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
        return real, fake, enc

    def phase_loss(self, phase: str, batch: Batch) -> Tensor:
        """The loss of ``phase`` ("D" or "EG") on ``batch``, reporting its statistics."""
        real, fake, enc = self._scores(phase, batch)
        mode = self.cfg.objective.d_loss
        if phase == "D":
            terms = discriminator_terms(real, fake, mode)
            loss = discriminator_loss(real, fake, mode, terms)
            for name, value in terms.items():  # what the objective computes, per term (loss/D/x/real, ...)
                self.stats.report(f"loss/D/{name}", value)
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

    def peek_images(self, n: int) -> Tensor:
        """``n`` real images at E's resolution from the stream's next batches, drawn without disturbing it (for
        picture hooks; a batch smaller than ``n`` is followed by the next one, not repeated)."""
        state = self.stream.state_dict()
        xs: list[Tensor] = []
        while sum(x.shape[0] for x in xs) < n:
            x, x_e, _ = next(self.stream)
            xs.append(x if x_e is None else x_e)
        self.stream.load_state_dict(state)
        return torch.cat(xs)[:n].to(self.device)

    # ---- the loop --------------------------------------------------------------------------------------------

    def maintenance(self) -> list[Section]:
        """The sections ``fit`` runs after an iteration, in order: a checkpoint is written before evaluation
        of the same step (evaluation may mark it the best)."""
        t = self.cfg.train

        def eval_due(step: int) -> bool:
            return self.evaluate is not None and t.eval_every > 0 and step % t.eval_every == 0

        sections = [Section("log", lambda step: step % t.log_every == 0, self._log)]
        if self.pictures is not None and self.info.is_main:
            sections.append(Section("pictures", lambda step: step % t.image_every == 0,
                                    lambda: self.pictures(self)))
        sections.append(Section("checkpoint", lambda step: step % t.ckpt_every == 0 or eval_due(step),
                                self._checkpoint))
        if self.evaluate is not None:
            sections.append(Section("evaluation", eval_due, lambda: self.evaluate(self)))
        return sections

    def fit(self) -> dict:
        """Train until ``train.steps`` iterations or ``train.minutes``; always checkpoint at the end."""
        t = self.cfg.train
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(self.cfg, self.run_dir / "config.yaml")
        sections = self.maintenance()
        with stop_signals() as stop, progress_bar(t, self.step, self.progress and self.info.is_main) as bar:
            self._bar = bar
            start = time.monotonic()
            self._start = (start, self.step)
            self._last_good = self.step
            deadline = start + 60 * t.minutes if t.minutes else math.inf
            reason = "steps"
            for m in self.modules():
                m.train()
            while self.step < t.steps:
                if time.monotonic() >= deadline:
                    reason = "minutes"
                    break
                if stop_agreed(stop, self.info.world, self.device):
                    reason = stop.name or "signal"
                    break
                self.train_iteration()
                if t.compile and self.step == self._start[1] + 1:
                    self.log(f"torch.compile: first iteration (compilation included) took "
                             f"{time.monotonic() - start:.1f} s")
                if self._bar is not None:
                    self._bar.update(1)
                for section in sections:
                    if section.due(self.step):
                        section.run()
        self._bar = None
        return self._finish(reason)

    def _finish(self, reason: str) -> dict:
        """The end of ``fit``: a last checkpoint, pictures, the safetensors export and a summary."""
        self._check_finite()
        path = self.save()
        models = self.eval_models()  # on every rank: the standing-statistics pass reduces across ranks
        if self.info.is_main:
            if self.pictures is not None:
                self.pictures(self)
            self.export(models=models)
            self.stats.close()
        start, start_step = self._start
        elapsed = time.monotonic() - start
        summary = {"step": self.step, "stopped_by": reason, "seconds": elapsed,
                   "iterations": self.step - start_step, "checkpoint": str(path) if path else None}
        self.log(f"stopped at step {self.step} ({reason}); {summary['iterations']} iterations in {elapsed:.0f} s; "
                 f"checkpoint {path}")
        return summary

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

    def _log(self) -> None:
        self._check_finite()
        rec = self.stats.flush(self.step, self._rates())
        if self._bar is not None:
            self._bar.set_postfix({k.split("/", 1)[1]: f"{rec[k]:.3f}" for k in ("loss/D", "loss/EG") if k in rec})

    def _checkpoint(self) -> None:
        self._check_finite()
        self.save()

    def _rates(self) -> dict:
        start, start_step = self._start
        dt = max(time.monotonic() - start, 1e-9)
        its = (self.step - start_step) / dt
        imgs = its * self.cfg.optim.batch_size * (self.cfg.optim.d_steps + 1)
        lrs = {"lr/D": self.opt_d.param_groups[0]["lr"], "lr/G": self.opt_ge.param_groups[0]["lr"]}
        if self.E is not None:
            lrs["lr/E"] = self.opt_ge.param_groups[1]["lr"]
        return {"perf/it_per_s": its, "perf/img_per_s": imgs, "time/minutes": dt / 60, **lrs}
