"""`bigbigan eval` and `bigbigan report` on a tiny run, and periodic evaluation with the best checkpoint."""

import base64
import io
import json
import re

import pytest
from PIL import Image

from bigbigan.checkpoint import best_checkpoint, list_checkpoints
from bigbigan.cli import main


def test_eval_writes_table_and_json_and_report_embeds_loadable_images(tmp_path, capsys, train_tiny):
    run = tmp_path / "run"
    train_tiny(run)
    assert main(["eval", str(run), "--metrics", "linear,linear-paper,knn,recon", "--probe-steps", "50", "--json",
                 str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "e.json").read_text())
    assert "linear_avepool_top1" in out and "knn_d1_k25_top1" in out
    # digits has 10 classes (chance 0.1): even a 4-step encoder's features carry the class (measured 0.36-0.75);
    # a probe that does not learn, or labels out of step with features, stays near chance
    for key in ("linear_avepool", "linear_paper_avepool", "linear_bn_crelu", "knn_d1_k5", "knn_d2_k50"):
        assert 0.2 < res[f"{key}_top1"] <= res[f"{key}_top5"], key
    assert 0.8 < res["rel_l1"] < 1.2  # about 1 for an untrained G and E (App. B); 0 or 2 would be a broken ratio
    assert res["knn_d1_k5_top1"] > 0.3  # digits, 10 classes: k-NN on even a barely trained encoder beats chance
    for name in ("neighbours.png", "filters.png", "reconstructions.png", "interpolations.png"):
        assert (run / "eval" / name).is_file(), name
    (run / "eval.json").write_text((tmp_path / "e.json").read_text())
    assert main(["report", str(run)]) == 0
    html = (run / "report" / "index.html").read_text()
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(srcs) >= 6  # curves, samples, reconstructions, interpolations, neighbours, filters
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert "linear_avepool_top1" in html


@pytest.mark.inception  # the default metrics include fid, whose requirement is checked before the run
def test_eval_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert "neither a run directory nor a checkpoint" in capsys.readouterr().err


def test_periodic_eval_logs_metrics_and_marks_best_checkpoint(tmp_path, train_tiny):
    run = tmp_path / "run"
    train_tiny(run, "train.eval_every=2", "train.keep_ckpts=1")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    # the training session's wall clock at each evaluation: the time-to-accuracy axis
    assert 0 < lines[0]["minutes"] < lines[1]["minutes"] < 5
    # train_val holds 100 images here: an accuracy is a whole number of them, and beats chance (0.1) by far
    assert all(0.2 < r["train_val_top1"] and (r["train_val_top1"] * 100) % 1 < 1e-6 for r in lines)
    best = best_checkpoint(run)
    assert best["value"] == max(r["train_val_top1"] for r in lines)
    kept = [p.name for _, p in list_checkpoints(run)]
    assert best["checkpoint"] in kept  # rotation (keep 1) never deletes the best


def test_eval_inception_score_with_user_weights(tmp_path, capsys, train_tiny):
    """IS end to end through `bigbigan eval --metrics is --inception-weights`, on weights generated here."""
    import torch

    from bigbigan.evaluation.inception import InceptionLogits

    run = tmp_path / "run"
    train_tiny(run)
    torch.manual_seed(0)
    weights = tmp_path / "pt_inception-generated.pth"
    torch.save(InceptionLogits().state_dict(), weights)
    out = tmp_path / "is.json"
    assert main(["eval", str(run), "--metrics", "is", "--fid-samples", "20", "--inception-weights", str(weights),
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    # by hand: exp(E_x KL(p(y|x) || p(y))) on each of 10 chunks of 2 of the same 20 samples (seed 0)
    from bigbigan.evaluation.features import load_models
    from bigbigan.evaluation.generative import generate

    loaded = load_models(run)
    fake = generate(loaded.G, 20, z_dim=loaded.cfg.model.z_dim, prior=loaded.cfg.model.prior, seed=0)
    with torch.no_grad():
        p = InceptionLogits.load(str(weights))(fake).double()  # [20, 1008]
    scores = []
    for chunk in p.split(2):
        kl = (chunk * (chunk.log() - chunk.mean(0, keepdim=True).log())).sum(1).mean()
        scores.append(kl.exp())
    scores = torch.stack(scores)
    assert abs(res["is"] - float(scores.mean())) < 1e-4
    assert abs(res["is_std"] - float(scores.std(unbiased=False))) < 1e-4
    assert main(["eval", str(run), "--metrics", "is", "--fid-samples", "20", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["is"] is None and "--inception-weights" in res["is_note"]


def test_eval_linear_paper_alone_encodes_no_train_sub_features(tmp_path, monkeypatch, train_tiny):
    """The augmented probe encodes fresh training crops itself: the 50K train_sub features would be wasted."""
    from bigbigan.evaluation import run as eval_run

    run = tmp_path / "run"
    train_tiny(run)
    splits = []
    real = eval_run.cached_features
    monkeypatch.setattr(eval_run, "cached_features", lambda loaded, split, **kw: (splits.append(split),
                                                                                   real(loaded, split, **kw))[1])
    assert main(["eval", str(run), "--metrics", "linear-paper", "--probe-steps", "20", "--json",
                 str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert "train_sub" not in splits and {"train_val", "test"} <= set(splits)
    assert 0 < res["linear_paper_avepool_top1"] <= 1 and res["feature_dim"] > 0
    splits.clear()
    assert main(["eval", str(run), "--metrics", "linear", "--probe-steps", "20", "--json",
                 str(tmp_path / "e2.json")]) == 0
    assert "train_sub" in splits  # the fast probe trains on it


def test_eval_of_an_export_and_a_shipped_name_equals_eval_of_the_run(tmp_path, monkeypatch, train_tiny):
    """`bigbigan eval` takes what `bigbigan.load` takes: an exported directory gives the run's own figures and
    keeps its results inside the export; a shipped name writes to ./eval-NAME, never into the package."""
    from bigbigan import checkpoint as bckpt
    from bigbigan.export import export_run

    run = tmp_path / "run"
    train_tiny(run)
    args = ["--metrics", "linear,recon", "--probe-steps", "50"]
    assert main(["eval", str(run), *args, "--json", str(tmp_path / "run.json")]) == 0
    exported = export_run(run, tmp_path / "export", stats_images=0)
    assert main(["eval", str(exported), *args]) == 0
    ref = json.loads((tmp_path / "run.json").read_text())
    got = json.loads((exported / "eval.json").read_text())
    assert got["run_dir"] == str(exported) and got["step"] == ref["step"] == 4
    for key in ("linear_avepool_top1", "linear_bn_crelu_top1", "rel_l1"):
        assert got[key] == ref[key], key
    assert (exported / "eval" / "reconstructions.png").is_file()
    assert main(["eval", str(run / "ema.safetensors"), *args, "--json", str(tmp_path / "ema.json")]) == 0
    ema = json.loads((tmp_path / "ema.json").read_text())
    assert ema["run_dir"] == str(run) and ema["step"] == 4  # the step travels in the file's metadata
    assert ema["linear_avepool_top1"] == ref["linear_avepool_top1"]

    monkeypatch.setattr(bckpt, "PRETRAINED_ROOT", tmp_path / "pretrained")
    (tmp_path / "pretrained").mkdir()
    exported.rename(tmp_path / "pretrained" / "tiny")
    monkeypatch.chdir(tmp_path)
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in (tmp_path / "pretrained").rglob("*"))
    assert main(["eval", "tiny", *args]) == 0
    shipped = json.loads((tmp_path / "eval-tiny" / "eval.json").read_text())
    assert shipped["linear_avepool_top1"] == ref["linear_avepool_top1"]
    assert (tmp_path / "eval-tiny" / "eval" / "reconstructions.png").is_file()
    after = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in (tmp_path / "pretrained").rglob("*"))
    assert after == before  # nothing written into the shipped model's folder
