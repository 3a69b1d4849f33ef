"""A run directory is a record that cannot lie (issue 14): content-keyed feature caches, 16-bit images, eval.json
merged and kept on failure, ablate never extends a finished training, logs consistent after a resume."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bigbigan.checkpoint import list_checkpoints
from bigbigan.cli import main

FAST = ["--no-progress", "--set", "data.train_val_size=100", "--set", "train.image_every=1000"]


pytestmark = pytest.mark.usefixtures("single_thread_own_cache")


def train(out, steps, *extra):
    argv = ["train", "--scale", "tiny", "--out", str(out), "--steps", str(steps), *FAST, *extra]
    assert main(argv) == 0


# ---- 1. the feature cache is keyed by content -------------------------------------------------------------


def test_feature_cache_follows_the_weights_not_the_path(tmp_path):
    from bigbigan.evaluation.features import cached_features, extract_features, load_models

    run = tmp_path / "run"
    train(run, 2)
    first = cached_features(load_models(run), "test", limit=40, progress=False)[0]
    shutil.rmtree(run / "checkpoints")  # same path, same step, another model
    train(run, 2, "--seed", "7")
    loaded = load_models(run)
    again = cached_features(loaded, "test", limit=40, progress=False)[0]
    from bigbigan.data import open_source
    from bigbigan.data.subset import subset_source

    d = loaded.cfg.data
    source = open_source(d.source, d.data_dir, "test", train_val_size=d.train_val_size, seed=loaded.cfg.train.seed)
    fresh = extract_features(loaded.E, subset_source(source, 40, seed=0),  # the evaluation's seeded sample of 40
                             resolution=loaded.cfg.model.e_resolution, channels=1, progress=False)[0]
    assert not torch.equal(first, fresh)
    assert torch.equal(again, fresh)


# ---- 2. every Pillow mode decodes into the right 8-bit range ----------------------------------------------


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    b = io.BytesIO()
    image.save(b, format=fmt)
    return b.getvalue()


def test_16_bit_grey_png_is_scaled_not_clipped():
    from bigbigan.data.decode import decode_rgb

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0..65472
    data = _png(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    x = decode_rgb(data)
    expected = np.round(ramp / 257.0)  # 65535 / 255 = 257
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert np.abs(x[0].numpy().astype(int) - expected).max() <= 1
    assert abs(x.float().mean().item() - 127.4) < 0.5  # PIL's own convert("RGB") gives ~254.5


@pytest.mark.parametrize("mode,fmt", [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGB", "PNG"),
                                      ("RGBA", "PNG"), ("CMYK", "TIFF"), ("YCbCr", "TIFF"), ("LAB", "TIFF"),
                                      ("I;16", "PNG"), ("I", "TIFF")])
def test_every_mode_lands_in_the_8_bit_range_of_its_grey_value(mode, fmt):
    from bigbigan.data.decode import decode_rgb

    grey = 200  # one mid-grey image in every mode: decoded, it must be ~200 in all three channels
    if mode in ("I;16", "I"):  # 16-bit grey: 200 * 257 is 200 on the 8-bit scale
        image = Image.fromarray(np.full((8, 8), grey * 257, dtype=np.uint16 if mode == "I;16" else np.int32))
    else:
        image = Image.new("L", (8, 8), grey)
        image = image.convert(mode, dither=Image.Dither.NONE) if mode == "1" else image.convert(mode)
    x = decode_rgb(_png(image, fmt)).float()
    target = 255.0 if mode == "1" else grey  # 1-bit (undithered) thresholds at 128
    assert (x - target).abs().max() <= 3, (mode, x[:, 0, 0])


def test_float_image_is_refused_with_one_line_reason():
    from bigbigan.data.decode import DECODE_ERRORS, UnsupportedImage, decode_rgb

    data = _png(Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)), "TIFF")
    with pytest.raises(UnsupportedImage, match="mode F") as info:
        decode_rgb(data)
    assert isinstance(info.value, DECODE_ERRORS) and "\n" not in str(info.value)  # skipped like a corrupt file


# ---- 4. eval.json: merged by checkpoint, written when a later metric fails, beside the run -----------------


def test_eval_merges_figures_and_keeps_them_when_a_later_metric_fails(tmp_path, monkeypatch, capsys):
    import bigbigan.evaluation.run as er

    run = tmp_path / "run"
    train(run, 2)
    assert main(["eval", str(run), "--metrics", "recon"]) == 0
    assert main(["eval", str(run), "--metrics", "knn", "--train-limit", "200"]) == 0
    res = json.loads((run / "eval.json").read_text())
    assert "rel_l1" in res and "knn_d1_k5_top1" in res  # the second evaluation did not drop the first's figures
    ckpt = str(list_checkpoints(run)[-1][1])
    assert set(res["by_checkpoint"]) == {ckpt} and "rel_l1" in res["by_checkpoint"][ckpt]

    (run / "eval.json").unlink()

    def broken(*a, **k):
        raise RuntimeError("recon exploded")

    monkeypatch.setattr(er, "reconstruction_metrics", broken)
    with pytest.raises(RuntimeError, match="recon exploded"):
        main(["eval", str(run), "--metrics", "knn,recon", "--train-limit", "200"])
    res = json.loads((run / "eval.json").read_text())
    assert "knn_d1_k5_top1" in res and "recon exploded" in res["failed"]


def test_eval_of_a_checkpoint_file_writes_beside_it(tmp_path):
    run = tmp_path / "run"
    train(run, 1)
    elsewhere = tmp_path / "some" / "dir"
    elsewhere.mkdir(parents=True)
    shutil.copy(list_checkpoints(run)[-1][1], elsewhere / "model.pt")
    assert main(["eval", str(elsewhere / "model.pt"), "--metrics", "recon"]) == 0
    assert (elsewhere / "eval.json").is_file() and not (tmp_path / "some" / "eval.json").exists()
    assert main(["eval", str(run), "--metrics", "recon"]) == 0
    assert (run / "eval.json").is_file()  # a run's checkpoint: beside checkpoints/, as before


# ---- 5. ablate never extends a finished training ----------------------------------------------------------


@pytest.mark.slow  # trains, then FID through Inception
@pytest.mark.inception
def test_ablate_rerun_after_failed_evaluation_only_evaluates(tmp_path, monkeypatch, capsys):
    import bigbigan.ablate
    import bigbigan.evaluation.run as er
    from bigbigan.config import ConfigError

    real = er.evaluate
    calls = {"n": 0}

    def fails_once(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConfigError("evaluation failed")
        return real(*a, **k)

    monkeypatch.setattr(bigbigan.ablate, "evaluate", fails_once)
    argv = ["ablate", "--scale", "tiny", "--variants", "base", "--steps", "2", "--fid-samples", "10",
            "--probe-steps", "10", "--out", str(tmp_path / "abl"), "--set", "data.train_val_size=100",
            "--set", "train.image_every=1000"]
    assert main(argv) == 2
    run = tmp_path / "abl" / "base" / "seed0"
    stamps = {p.name: p.stat().st_mtime_ns for _, p in list_checkpoints(run)}
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for _, p in list_checkpoints(run)} == stamps  # not trained further
    assert json.loads((run / "eval.json").read_text())["step"] == 2


# ---- 7. logs never run ahead of the checkpoint; a torn last line is skipped ----------------------------------


def test_resume_drops_log_lines_past_the_checkpoint_and_readers_skip_a_torn_line(tmp_path):
    run = tmp_path / "run"
    train(run, 4, "--set", "train.log_every=1", "--set", "train.ckpt_every=2")
    for ckpt in list_checkpoints(run)[1:]:
        ckpt[1].unlink()  # as if killed after logging steps 3, 4 but before their checkpoint
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 5, "loss/D": 1.')  # torn by the kill
    from bigbigan.files import read_jsonl

    assert [r["step"] for r in read_jsonl(run / "stats.jsonl")] == [1, 2, 3, 4]
    assert main(["report", str(run)]) == 0
    assert main(["train", "--out", str(run), "--steps", "4", "--no-progress"]) == 0
    assert [r["step"] for r in read_jsonl(run / "stats.jsonl")] == [1, 2, 3, 4]


# ---- errors that need a run of their own --------------------------------------------------------------------


def test_nan_at_step_one_does_not_claim_a_good_checkpoint(tmp_path, device):
    from bigbigan.data import build_stream
    from bigbigan.presets import resolve
    from bigbigan.train.loop import Trainer, TrainingError

    cfg = resolve("tiny", "base", ["train.steps=3", "train.log_every=1", "data.train_val_size=100"])
    trainer = Trainer(cfg, tmp_path, stream=build_stream(cfg), device=device, progress=False)
    original = trainer.phase_loss
    trainer.phase_loss = lambda phase, batch: original(phase, batch) * float("nan")
    with pytest.raises(TrainingError) as info:
        trainer.fit()
    assert "no checkpoint was written" in str(info.value) and "is kept" not in str(info.value)
    assert list_checkpoints(tmp_path) == []


def test_every_numeric_config_field_has_a_range_and_refuses_nan():
    from bigbigan.config import RANGES, Config, ConfigError, numeric_fields, validate
    from bigbigan.presets import resolve

    choice_checked = {"model.resolution", "model.channels"}  # checked against a list of values
    missing = set(numeric_fields(Config())) - set(RANGES) - choice_checked
    assert not missing, missing
    for path, value in numeric_fields(resolve("tiny", "base", [])).items():
        if isinstance(value, float):
            cfg = resolve("tiny", "base", [])
            section, name = path.rsplit(".", 1)
            obj = cfg
            for part in section.split("."):
                obj = getattr(obj, part)
            setattr(obj, name, float("nan"))
            with pytest.raises(ConfigError, match=path):
                validate(cfg)


@pytest.mark.slow
def test_presets_into_a_closed_pipe_is_quiet():
    proc = subprocess.Popen([sys.executable, "-m", "bigbigan", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == "", err
