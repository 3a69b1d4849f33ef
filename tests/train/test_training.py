"""Training: tiny runs of several variants, exact resume (also after SIGKILL), atomic checkpoints, SIGTERM,
NaN detection, and refusal of malicious checkpoint files."""

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from bigbigan.checkpoint import CheckpointError, list_checkpoints, load_file, load_latest
from bigbigan.data import build_stream
from bigbigan.files import atomic_save
from bigbigan.presets import resolve
from bigbigan.train.loop import Trainer, TrainingError
from bigbigan.workflows import train as run_training

FAST = ["train.image_every=1000", "train.log_every=1", "train.ckpt_every=1000", "data.train_val_size=100"]


def tiny(variant="base", *extra):
    return resolve("tiny", variant, FAST + list(extra))


def params(state):
    return {f"{m}.{k}": v for m in ("G", "D", "E") if m in state for k, v in state[m].items()}


@pytest.mark.parametrize("variant", ["base", "no-unaries", "deterministic-e", "no-e-gan", "high-res-e-256"])
def test_tiny_run_trains_and_checkpoints(tmp_path, variant, device):
    summary = run_training(tiny(variant, "train.steps=2"), tmp_path, progress=False, device=str(device))
    assert summary["step"] == 2
    state = load_latest(tmp_path)
    assert state["step"] == 2 and ("E" in state) == (variant != "no-e-gan")
    lines = (tmp_path / "stats.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "loss/D" in lines[0]
    assert (tmp_path / "ema.safetensors").is_file() and (tmp_path / "config.yaml").is_file()


def test_training_changes_weights_and_ema_lags(tmp_path, device):
    cfg = tiny("base", "train.steps=3")
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    g0 = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    trainer.fit()
    g1 = trainer.G.state_dict()
    assert any(not torch.equal(g0[k], g1[k]) for k in g0 if "weight" in k)
    ema = trainer.ema_G.model.state_dict()
    assert any(not torch.equal(ema[k], g1[k]) for k in g1 if k.endswith("weight"))


def test_resume_continues_bitwise_identically(tmp_path, device):
    # On CUDA the `device` fixture turns on deterministic algorithms: the two runs must then agree bit for bit.
    full = run_training(tiny("base", "train.steps=4"), tmp_path / "a", progress=False, device=str(device))
    run_training(tiny("base", "train.steps=2"), tmp_path / "b", progress=False, device=str(device))
    run_training(tiny("base", "train.steps=4"), tmp_path / "b", progress=False, device=str(device))
    a, b = load_latest(tmp_path / "a"), load_latest(tmp_path / "b")
    assert full["step"] == b["step"] == 4
    for k, v in params(a).items():
        assert torch.equal(v, params(b)[k]), k
    assert torch.equal(a["G_ema"]["model"]["linear.weight"], b["G_ema"]["model"]["linear.weight"])


def _cli(out, steps, *extra):
    # --device cpu: bitwise resume after a kill (a GPU's kernels are not deterministic by default; the `device`
    # fixture's resume test covers CUDA with deterministic algorithms on)
    return [sys.executable, "-m", "bigbigan", "train", "--scale", "tiny", "--out", str(out), "--steps", str(steps),
            "--no-progress", "--device", "cpu", "--set", "train.ckpt_every=1", "--set", "train.image_every=1000",
            "--set", "data.train_val_size=100", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli(tmp_path / "ref", 8), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_cli(tmp_path / "run", 8), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list_checkpoints(tmp_path / "run")) < 1:
        time.sleep(0.05)
    while time.time() < deadline and list_checkpoints(tmp_path / "run")[-1][0] < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = list_checkpoints(tmp_path / "run")[-1][0]
    assert killed_at < 8, "the run finished before it could be killed"
    subprocess.run(_cli(tmp_path / "run", 8), check=True, env=env, capture_output=True)
    a, b = load_latest(tmp_path / "ref"), load_latest(tmp_path / "run")
    assert b["step"] == 8
    for k, v in params(a).items():
        assert torch.equal(v, params(b)[k]), k


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    proc = subprocess.Popen(_cli(tmp_path, 100000, "--set", "train.ckpt_every=100000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "stats.jsonl").is_file():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM, after saving: a scheduler sees an interrupted run
    assert "SIGTERM" in out + err
    state = load_latest(tmp_path)
    assert state is not None and state["step"] >= 1


def test_kill_during_checkpoint_write_keeps_previous_checkpoint(tmp_path, monkeypatch, device):
    cfg = tiny("base", "train.steps=1")
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    trainer.fit()
    good = list_checkpoints(tmp_path)
    assert [s for s, _ in good] == [1]

    def dying_save(obj, f, *a, **k):  # writes part of the file, then the process "dies"
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    trainer.step = 2
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    monkeypatch.undo()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    assert load_latest(tmp_path)["step"] == 1


def test_atomic_write_text_keeps_the_old_file_when_the_write_dies(tmp_path, monkeypatch):
    from pathlib import Path

    from bigbigan.files import atomic_write_text

    target = tmp_path / "eval.json"
    atomic_write_text(target, '{"old": 1}')
    real = Path.write_text

    def dying_write(self, text, *a, **k):  # half the text reaches the disk, then the process "dies"
        real(self, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", dying_write)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, '{"new": 2, "more": 3}')
    monkeypatch.undo()
    assert target.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]  # no temporary file left behind
    atomic_write_text(target, '{"new": 2}')
    assert target.read_text() == '{"new": 2}'


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path, device):
    cfg = tiny("base", "train.steps=6", "train.ckpt_every=2")
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    original = trainer.phase_loss

    def poisoned(phase, batch):
        loss = original(phase, batch)
        return loss * float("nan") if trainer.step >= 3 else loss

    trainer.phase_loss = poisoned
    with pytest.raises(TrainingError, match="non-finite"):
        trainer.fit()
    state = load_latest(tmp_path)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in params(state).values() if v.is_floating_point())


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "checkpoints" / "ckpt-00000001.pt"
    path.parent.mkdir()
    with open(path, "wb") as f:
        pickle.dump({"config": {}, "step": 1, "x": Evil()}, f)
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_file(path)
    assert not (tmp_path / "pwned").exists()
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint"):
        assert load_latest(tmp_path) is None
    assert not (tmp_path / "pwned").exists()


def test_resume_with_other_settings_is_refused(tmp_path):
    from bigbigan.cli import main

    assert main(["train", "--scale", "tiny", "--out", str(tmp_path), "--steps", "1", "--no-progress"]) == 0
    assert main(["train", "--scale", "tiny", "--out", str(tmp_path), "--steps", "2", "--no-progress",
                 "--set", "optim.lr_g=1"]) == 2


def test_a_checkpoint_from_another_kind_of_device_resumes_with_reseeded_noise(tmp_path):
    """A run written on a GPU continues on a CPU (and back): the generators' states differ in kind (CUDA keeps a
    16-byte Philox state), so the noise is re-seeded from (seed, step) and the run says so, instead of a
    traceback from Generator.set_state."""
    run_training(tiny("base", "train.steps=2"), tmp_path, progress=False, device="cpu")
    step, path = list_checkpoints(tmp_path)[-1]
    state = load_file(path)
    state["noise_rng"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator's state
    atomic_save(state, path)
    logged = []
    summary = run_training(tiny("base", "train.steps=3"), tmp_path, progress=False, device="cpu",
                           log=lambda *a, **k: logged.append(" ".join(map(str, a))))
    assert step == 2 and summary["step"] == 3 and load_latest(tmp_path)["step"] == 3
    assert any("another kind of device" in line and "re-seeded" in line for line in logged), logged


def test_atomic_save_roundtrip(tmp_path):
    atomic_save({"config": {}, "step": 3, "t": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(load_file(tmp_path / "x.pt")["t"], torch.arange(3))


def test_bf16_iteration_on_cpu(tmp_path):
    cfg = tiny("base", "train.steps=2", "train.precision=bf16")
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), progress=False)
    g0 = trainer.G.linear.weight.clone()
    trainer.fit()
    state = load_latest(tmp_path)
    assert state["step"] == 2
    assert all(v.dtype == torch.float32 for v in params(state).values() if v.is_floating_point())  # fp32 weights
    assert not torch.equal(g0, trainer.G.linear.weight)
    assert all(torch.isfinite(v).all() for v in params(state).values() if v.is_floating_point())


def test_fused_adam_is_opt_in_on_cpu(tmp_path):
    plain = Trainer(tiny("base"), tmp_path / "a", stream=build_stream(tiny("base")), progress=False)
    assert plain.opt_d.defaults["foreach"] and not plain.opt_d.defaults["fused"]
    cfg = tiny("base", "optim.fused_adam=true", "train.steps=1")
    fused = Trainer(cfg, tmp_path / "b", stream=build_stream(cfg), progress=False)
    assert fused.opt_d.defaults["fused"] and fused.opt_ge.defaults["fused"]
    before = [p.detach().clone() for p in fused.D.parameters()]
    fused.train_iteration()
    assert any(not torch.equal(a, p) for a, p in zip(before, fused.D.parameters()))
